"""On-screen text: a stream with a price sticker and a banner burnt into its video is
ingested into real segments, two OCR workers read it (RapidOCR, PP-OCRv4 from its
wheel), and the text is found at the right time, its keyframes stored, chained and
verified, readable over the API (audited)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import IntegrityError
from core.jobs import OCR_JOB
from core.screen import ReadLine, SampledFrame, ScreenLine, join_segments, merge_frames
from core.settings import Settings
from core.text import search_form
from evidence.verify import verify_stream
from storage.stores import Stores, open_stores
from tests.support.screen import BANNER, PRICE, STICKER_FROM, make_screen_video
from transcriber.ocr.pool import open_reader
from transcriber.ocr.worker import OcrResult, OcrWorker

STREAM = "screen-shop"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVERY = 5.0  # the default sampling interval: "the right time" is within one of it


@pytest.fixture(scope="module")
def read(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stores, list[OcrResult]]]:
    """15 s of video ingested as 5 s segments, read by two OCR workers at once."""
    from recorder.recorder import StreamRecorder

    home = tmp_path_factory.mktemp("ocr") / "home"
    stores = open_stores(Settings(home=home, ocr_enabled=True, ocr_every_seconds=EVERY))
    video = make_screen_video(stores.settings.ffmpeg, home.parent / "screen.mp4")
    StreamRecorder(
        stores.settings, stores.chain, STREAM, str(video), segment_seconds=5, started_at=T0
    ).run()
    reader = open_reader(stores)
    results: list[OcrResult] = []
    lock = threading.Lock()

    def keep(result: OcrResult) -> None:
        with lock:
            results.append(result)

    workers = [OcrWorker(stores, reader, name=f"ocr-test-{n}") for n in range(2)]
    threads = [
        threading.Thread(
            target=w.run, args=(threading.Event(),), kwargs={"until_empty": True, "on_result": keep}
        )
        for w in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    yield stores, results
    stores.close()


def lines_of(stores: Stores) -> list[ScreenLine]:
    stream = stores.catalog.get_stream(STREAM)
    return stores.catalog.screen_text(stream.id, STREAM)


def test_two_workers_read_each_segment_once(read: tuple[Stores, list[OcrResult]]) -> None:
    stores, results = read
    stream = stores.catalog.get_stream(STREAM)
    segments = stores.catalog.segments(stream.id)
    assert len(segments) >= 3
    assert sorted(r.seq for r in results) == [s.seq for s in segments]  # none twice
    jobs = stores.catalog.jobs(stream.id, OCR_JOB)
    assert [j.status for j in jobs] == ["done"] * len(segments)
    assert all(j.attempts == 1 for j in jobs)
    entries = [e for e in stores.catalog.entries(stream.id) if e.kind == "keyframes"]
    assert sorted(e.segment_seq for e in entries) == [s.seq for s in segments]


def test_sticker_price_and_banner_are_found_at_the_right_time(
    read: tuple[Stores, list[OcrResult]],
) -> None:
    stores, _ = read
    lines = lines_of(stores)
    banner = [line for line in lines if search_form(BANNER) in line.search]  # 假1赔10
    price = [line for line in lines if "¥99" in line.search]
    assert len(banner) == 1, lines  # one record across every frame and segment cut
    assert banner[0].first_offset <= EVERY and banner[0].last_offset >= 10.0
    assert len(banner[0].segments) >= 3
    assert banner[0].first_seen_at == T0 + timedelta(seconds=banner[0].first_offset)
    assert len(price) == 1, lines
    assert PRICE in price[0].text or "¥99" in price[0].text
    # Not before it was shown, and within one sampling interval after.
    assert STICKER_FROM - 0.1 <= price[0].first_offset <= STICKER_FROM + EVERY
    assert price[0].confidence >= stores.settings.ocr_min_confidence
    x, y = price[0].box[0]
    assert 400 <= x <= 520 and 20 <= y <= 120  # top right, where it was burnt in


def test_keyframes_are_chained_and_verify_names_a_flipped_byte(
    read: tuple[Stores, list[OcrResult]],
) -> None:
    stores, _ = read
    stream = stores.catalog.get_stream(STREAM)
    keyframes = stores.catalog.keyframes(stream.id)
    assert keyframes and all(kf.blob_key.endswith(".jpg") for kf in keyframes)
    first = stores.blobs.get_bytes(keyframes[0].blob_key)
    assert first[:2] == b"\xff\xd8" and hashlib.sha256(first).hexdigest() == keyframes[0].sha256
    # Every line points at a chained keyframe of its first sighting.
    assert {line.keyframe_key for line in lines_of(stores)} <= {kf.blob_key for kf in keyframes}
    settings = stores.settings
    report = verify_stream(stores.catalog, stores.blobs, settings.signing_keys_dir, STREAM)
    assert report.keyframes == len(keyframes)

    target = keyframes[-1]
    path = settings.blobs_dir / target.blob_key
    original = path.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    path.chmod(0o600)
    try:
        path.write_bytes(bytes(flipped))
        with pytest.raises(IntegrityError) as failed:
            verify_stream(stores.catalog, stores.blobs, settings.signing_keys_dir, STREAM)
        assert target.blob_key in str(failed.value)
        assert "SHA-256" in str(failed.value)
    finally:
        path.write_bytes(original)
        path.chmod(0o400)
    verify_stream(stores.catalog, stores.blobs, settings.signing_keys_dir, STREAM)


def test_screen_text_over_the_api_is_audited_and_for_evidence_viewers(
    read: tuple[Stores, list[OcrResult]],
) -> None:
    from tests.support.apiserver import running_api

    stores, _ = read
    start, end = T0.isoformat(), (T0 + timedelta(seconds=30)).isoformat()
    with running_api(stores) as api, api.client("reviewer") as reviewer:
        got = reviewer.get(f"/api/v1/streams/{STREAM}/screen", params={"start": start, "end": end})
        assert got.status_code == 200, got.text
        found = {line["search"]: line for line in got.json()}
        assert any(search_form(BANNER) in text for text in found)
        price = next(line for text, line in found.items() if "¥99" in text)
        image = reviewer.get(price["keyframe_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:2] == b"\xff\xd8"
        actions = [e.action for e in stores.catalog.audit_events()]
        assert "screen.read" in actions and "keyframe.read" in actions
        # Later than the stream: nothing; a range backwards or a bad time: one clear 400.
        later = (T0 + timedelta(hours=1)).isoformat()
        empty = reviewer.get(f"/api/v1/streams/{STREAM}/screen", params={"start": later})
        assert empty.status_code == 200 and empty.json() == []
        backwards = reviewer.get(
            f"/api/v1/streams/{STREAM}/screen", params={"start": end, "end": start}
        )
        assert backwards.status_code == 400 and "before" in backwards.text
        bad = reviewer.get(f"/api/v1/streams/{STREAM}/screen", params={"start": "yesterday"})
        assert bad.status_code == 400
        assert reviewer.get(f"/api/v1/streams/{STREAM}/keyframes/{'0' * 64}.jpg").status_code == 404
        with api.client("compliance") as compliance:
            denied = compliance.get(f"/api/v1/streams/{STREAM}/screen")
            assert denied.status_code == 403


def test_a_package_holds_the_keyframes_and_checks_them(
    read: tuple[Stores, list[OcrResult]], tmp_path: Path
) -> None:
    import zipfile

    from evidence.package import build_package
    from evidence.package_verify import verify_package

    stores, _ = read
    stream = stores.catalog.get_stream(STREAM)
    keyframes = stores.catalog.keyframes(stream.id)
    out = tmp_path / "case.zip"
    info = build_package(stores, STREAM, T0, T0 + timedelta(seconds=15), out)
    with zipfile.ZipFile(out) as archive:
        held = sorted(n for n in archive.namelist() if n.startswith("keyframes/"))
        readme = archive.read("README.txt").decode()
        description = json.loads(archive.read("package.json"))
    assert len(held) == len(keyframes) and all(n.endswith(".jpg") for n in held)
    assert [k["file"] for k in description["keyframes"]] == sorted(held)
    assert "keyframes OK" in readme
    assert any(kind == "keyframes" for kind in _entry_kinds(out))
    report = verify_package(info.path, stores.chain.signer.public_key)
    assert report.keyframes == len(keyframes)


def _entry_kinds(package: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(package) as archive:
        return [
            json.loads(archive.read(n))["kind"]
            for n in archive.namelist()
            if n.startswith("manifest/")
        ]


def test_an_append_that_finds_its_place_taken_takes_the_next(stores: Stores) -> None:
    """An OCR worker and a recorder append to one chain: the write-once store refuses the
    second writer of a place, which then indexes the first's entry and appends after it."""
    from storage.blob_keys import entry_key
    from storage.blobs.protocol import sha256_bytes
    from storage.signing import FORMAT, canonical_bytes

    sid = stores.chain.open_stream("race")
    stores.chain.append_gap(sid, "race", T0, T0 + timedelta(seconds=1), "test")
    (first,) = stores.catalog.entries(sid)
    other = {  # what another process chained at index 1, not yet in this catalog
        "v": FORMAT,
        "stream": "race",
        "index": 1,
        "prev": first.sha256,
        "kind": "gap",
        "gap": {"from": "2026-11-20T12:00:01Z", "to": "2026-11-20T12:00:02Z", "reason": "other"},
        "chained_at": "2026-11-20T12:00:03Z",
    }
    raw = canonical_bytes(other, FORMAT)
    stores.blobs.put_bytes(entry_key("race", 1), raw)
    idx = stores.chain.append_gap(
        sid, "race", T0 + timedelta(seconds=2), T0 + timedelta(seconds=3), "mine"
    )
    entries = stores.catalog.entries(sid)
    assert idx == 2 and [e.reason for e in entries] == ["test", "other", "mine"]
    assert entries[2].prev_sha256 == sha256_bytes(raw)


# -- the merge rule, without OCR ------------------------------------------------------------
def _frame(second: float, *texts: str) -> SampledFrame:
    box = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    return SampledFrame(
        at=T0 + timedelta(seconds=second),
        offset=second,
        keyframe_key=f"k{second:g}",
        lines=tuple(ReadLine(text=t, box=box, confidence=0.9) for t in texts),
    )


def test_a_line_is_one_record_while_seen_on_consecutive_frames() -> None:
    first = merge_frames(
        "s", 0, [_frame(0, "包邮", "假一赔十"), _frame(5, "包邮"), _frame(9, "包邮", "假一赔十")]
    )
    records = [(line.text, line.first_offset, line.last_offset) for line in first]
    assert sorted(records) == sorted(
        [
            ("包邮", 0, 9),
            ("假一赔十", 0, 0),
            ("假一赔十", 9, 9),  # gone on the frame between: seen again is another record
        ]
    )
    baoyou = next(line for line in first if line.text == "包邮")
    gone = next(line for line in first if line.text == "假一赔十")
    assert baoyou.open_start and baoyou.open_end and not gone.open_end
    second = merge_frames("s", 1, [_frame(10, "包 邮"), _frame(15)])
    joined = join_segments([*first, *second])
    joined_baoyou = [line for line in joined if line.text == "包邮"]
    assert [(line.last_offset, line.segments) for line in joined_baoyou] == [(10, (0, 1))]
    assert len(joined) == 3
