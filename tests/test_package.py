"""Evidence packages end to end: built from real recorded segments and stored
transcripts, checked by verify_package, by the CLI and by the README's own sha256sum and
openssl commands; every kind of tampering is named."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import zipfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.routes.evidence import transcript_window
from core.errors import IntegrityError, InvalidInputError, LiveWitnessError, NotFoundError
from core.settings import Settings
from core.timeutil import parse_iso
from core.transcript import SegmentTranscript, assemble_words, utterances_of
from evidence.package import PackageInfo, build_package
from evidence.package_verify import verify_package
from storage.models import Segment, Transcript
from storage.signing import Signer, rfc8785_json, signed_message, signing_key_info
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process, run_cli
from tests.support.media import assert_plays, mp4_boxes
from tests.support.moments import T0, append_after_gap, one_line, record
from tests.support.packages import members, reseal
from transcriber.protocol import Word
from transcriber.worker import build_document, store_transcript

SINCE = T0 + timedelta(seconds=8.5)
UNTIL = T0 + timedelta(seconds=19.0)
SAID = ("假一赔十全场包邮", "七天无理由退货")  # at 1 s and 4 s into every segment


@dataclass
class Packaged:
    stores: Stores
    segments: list[Segment]
    zip: Path
    info: PackageInfo


def add_transcripts(stores: Stores, name: str, segments: list[Segment]) -> None:
    """Store a transcript per segment the way workers do: one word per character."""
    stream = stores.catalog.get_stream(name)
    for segment in segments:
        words = [
            Word(char, at + 0.2 * i, at + 0.2 * i + 0.18, 0.9, number)
            for number, (at, text) in enumerate(zip((1.0, 4.0), SAID, strict=True))
            for i, char in enumerate(text)
        ]
        document = build_document(name, segment, words, 0.0, 0.0, T0, "test", "zh")
        store_transcript(stores, stream, segment.seq, document)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory, test_video: Path) -> Iterator[Packaged]:
    root = tmp_path_factory.mktemp("package")
    stores = open_stores(Settings(home=root / "home"))
    segments = record(stores, test_video)
    add_transcripts(stores, "shop", segments)
    out = root / "evidence.zip"
    info = build_package(stores, "shop", SINCE, UNTIL, out, requested_by="case-7@reviewer")
    yield Packaged(stores, segments, out, info)
    stores.close()


def rewrite_zip(src: Path, dst: Path, changes: dict[str, bytes | None]) -> Path:
    """A copy of a zip with some members replaced (None: removed); CRCs are recomputed,
    so only LiveWitness's own checks can notice."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = changes.get(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info, data)
    return dst


def flipped(data: bytes, where: str) -> bytes:
    at = {"first": 0, "middle": len(data) // 2, "last": len(data) - 1}[where]
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# -- what a package holds ----------------------------------------------------------------
def test_a_fresh_package_verifies_and_holds_the_evidence(packaged: Packaged) -> None:
    stores, info = packaged.stores, packaged.info
    report = verify_package(packaged.zip)
    assert report.anchor is None and not report.trusted  # consistent; nothing pinned
    covering = [s for s in packaged.segments if s.seq in info.segments]
    assert report.stream == "shop" and (report.since, report.until) == (SINCE, UNTIL)
    assert report.requested_by == "case-7@reviewer"
    assert report.segments == info.segments == [1, 2, 3]
    # The recording ended: its last entry, the session's end entry, is signed.
    head = len(packaged.segments)
    assert report.entries == info.entries == (covering[0].entry_idx, head)
    assert report.key_id == info.key_id == stores.chain.signer.key_id
    assert info.sha256 == hashlib.sha256(packaged.zip.read_bytes()).hexdigest()

    files = members(packaged.zip)
    with zipfile.ZipFile(packaged.zip) as archive:
        assert archive.namelist()[0] == "README.txt"
    sig = f"signatures/{head:08d}"
    assert set(files) == {
        "README.txt",
        "package.json",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "public_key.pem",
        "clip.mp4",
        "transcript.json",
        "transcript.srt",
        *(f"segments/{s.seq:08d}.ts" for s in covering),
        *(f"manifest/{i:08d}.json" for i in range(covering[0].entry_idx, head + 1)),
        f"{sig}.json",
        f"{sig}.msg",
        f"{sig}.sig",
    }
    for segment in covering:  # byte for byte as stored
        assert files[f"segments/{segment.seq:08d}.ts"] == stores.blobs.get_bytes(segment.blob_key)
    for entry in stores.catalog.entries(stores.catalog.get_stream("shop").id):
        if entry.idx >= covering[0].entry_idx:
            assert files[f"manifest/{entry.idx:08d}.json"] == stores.blobs.get_bytes(entry.blob_key)
    record_ = json.loads(files[f"{sig}.json"])
    assert files[f"{sig}.json"] == stores.blobs.get_bytes(
        f"streams/shop/signatures/{head:08d}.json"
    )
    assert record_["payload"]["v"] == 2  # RFC 8785, docs/formats.md
    assert (
        files[f"{sig}.msg"]
        == signed_message(record_["payload"])
        == rfc8785.dumps(record_["payload"])
    )
    assert files[f"{sig}.sig"] == base64.b64decode(record_["signature"])
    assert len(files[f"{sig}.sig"]) == 64
    assert files["public_key.pem"] == stores.chain.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sums = files["SHA256SUMS"].decode().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == sorted(
        set(files) - {"SHA256SUMS", "SHA256SUMS.sig"}
    )
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256(files[name]).hexdigest() == digest

    description = json.loads(files["package.json"])
    assert description["signed_head"]["index"] == head
    assert (
        description["signed_head"]["sha256"]
        == hashlib.sha256(files[f"manifest/{head:08d}.json"]).hexdigest()
    )
    assert description["requested_by"] == "case-7@reviewer"
    assert set(description["files"]) == set(files) - {"package.json"}


def test_the_clip_covers_the_range_and_plays(
    packaged: Packaged, ffmpeg: str, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(members(packaged.zip)["clip.mp4"])
    boxes = mp4_boxes(clip)
    assert boxes.index("moov") < boxes.index("mdat")
    assert_plays(ffmpeg, clip)
    info = packaged.info.clip
    assert not info.reencoded
    assert info.start <= SINCE and (SINCE - info.start).total_seconds() <= 2.1
    assert info.duration == pytest.approx((UNTIL - info.start).total_seconds(), abs=0.15)


def test_the_transcript_holds_whole_utterances_with_times_and_offsets(packaged: Packaged) -> None:
    files = members(packaged.zip)
    transcript = json.loads(files["transcript.json"])
    utterances = transcript["utterances"]
    starts = [parse_iso(u["start"]) for u in utterances]
    # Every utterance that overlaps the range, whole: the first begins before it.
    assert [u["text"] for u in utterances] == [*SAID, *SAID]
    assert starts[0] < SINCE < parse_iso(utterances[0]["end"]) and starts[-1] < UNTIL
    clip_start = parse_iso(transcript["clip"]["start"])
    assert transcript["stream_start"] == "2026-11-20T12:00:00.000Z"
    for utterance, start in zip(utterances, starts, strict=True):
        assert start == T0 + timedelta(seconds=utterance["offset"])
        assert utterance["clip_offset"] == pytest.approx(
            (start - clip_start).total_seconds(), abs=0.002
        )
        assert len(utterance["words"]) == len(utterance["text"])
        for word in utterance["words"]:
            assert parse_iso(word["start"]) == T0 + timedelta(seconds=word["offset"])
            assert {"clip_offset", "end_offset", "p"} <= set(word)
    assert all(s["transcribed"] and s["model"] == "test" for s in transcript["segments"])

    blocks = files["transcript.srt"].decode().strip().split("\n\n")
    assert len(blocks) == len(utterances)
    number, times, text = blocks[0].split("\n")
    assert number == "1" and text == utterances[0]["text"]
    # It began before the clip's first frame: the subtitle shows from the start.
    assert utterances[0]["clip_offset"] < 0 and times.startswith("00:00:00,000 --> ")
    number, times, text = blocks[1].split("\n")
    second = utterances[1]["clip_offset"]
    assert times.startswith(f"00:00:{int(second):02d},{round(second % 1 * 1000):03d} --> ")


# -- tampering ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_any_file_is_named(
    packaged: Packaged, tmp_path: Path, where: str
) -> None:
    files = members(packaged.zip)
    assert len(files) >= 15
    for name, data in files.items():
        changed = rewrite_zip(packaged.zip, tmp_path / "bad.zip", {name: flipped(data, where)})
        with pytest.raises(IntegrityError) as caught:
            verify_package(changed)
        assert caught.value.artifact == name, (name, str(caught.value))
        one_line(caught.value)


def test_damage_inside_the_zip_is_named(packaged: Packaged, tmp_path: Path) -> None:
    """A byte changed in the zip file itself, not rewritten: the zip's CRC catches it."""
    with zipfile.ZipFile(packaged.zip) as archive:
        info = archive.getinfo("segments/00000002.ts")
        assert info.compress_type == zipfile.ZIP_STORED
        header = packaged.zip.read_bytes()[info.header_offset : info.header_offset + 30]
    data_at = info.header_offset + 30 + int.from_bytes(header[26:28], "little")
    data_at += int.from_bytes(header[28:30], "little") + info.file_size // 2
    raw = bytearray(packaged.zip.read_bytes())
    raw[data_at] ^= 0x01
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as caught:
        verify_package(damaged)
    assert caught.value.artifact == "segments/00000002.ts"


def test_resealed_changes_are_caught_by_the_chain(packaged: Packaged, tmp_path: Path) -> None:
    """Even with SHA256SUMS signed again, segments, links and the head must agree."""
    signer = packaged.stores.chain.signer
    files = members(packaged.zip)
    first, head = packaged.info.entries
    cases: list[tuple[dict[str, bytes | None], str, str]] = [
        (
            {"segments/00000002.ts": flipped(files["segments/00000002.ts"], "middle")},
            "segments/00000002.ts",
            "does not match its manifest entry",
        ),
        (
            {
                f"manifest/{first + 1:08d}.json": files[f"manifest/{first + 1:08d}.json"].replace(
                    b'"chained_at":"2', b'"chained_at":"1'
                )
            },
            f"manifest/{first + 2:08d}.json",
            "does not link to the entry before it",
        ),
        ({f"manifest/{first + 1:08d}.json": None}, f"manifest/{first + 1:08d}.json", "is missing"),
        (
            {
                f"manifest/{head:08d}.json": files[f"manifest/{head:08d}.json"].replace(
                    b'"v":2', b'"v":3'
                )
            },
            f"manifest/{head:08d}.json",
            "has an unknown format version",
        ),
        ({"segments/00000002.ts": None}, "segments/00000002.ts", "is missing"),
        (
            {f"signatures/{head:08d}.msg": b"{}"},
            f"signatures/{head:08d}.msg",
            "is not the message signed",
        ),
        (
            {f"signatures/{head:08d}.json": json.dumps({"payload": {}, "signature": ""}).encode()},
            f"signatures/{head:08d}.json",
            "does not verify",
        ),
    ]
    for number, (changes, artifact, problem) in enumerate(cases):
        resealed = reseal(packaged.zip, tmp_path / f"resealed-{number}.zip", changes, signer)
        with pytest.raises(IntegrityError) as caught:
            verify_package(resealed)
        assert (caught.value.artifact, problem in caught.value.problem) == (artifact, True), str(
            caught.value
        )


def test_a_package_forged_with_another_key_fails_when_the_key_is_pinned(
    packaged: Packaged, tmp_path: Path
) -> None:
    forger = Signer(tmp_path / "forger-keys")
    files = members(packaged.zip)
    head = packaged.info.entries[1]
    record_ = forger.sign(json.loads(files[f"signatures/{head:08d}.json"])["payload"])
    record_["payload"]["key_id"] = forger.key_id
    record_ = forger.sign(record_["payload"])
    description = json.loads(files["package.json"])
    description["key_id"] = forger.key_id
    forged = reseal(
        packaged.zip,
        tmp_path / "forged.zip",
        {
            f"signatures/{head:08d}.json": rfc8785_json(record_),
            f"signatures/{head:08d}.msg": rfc8785_json(record_["payload"]),
            f"signatures/{head:08d}.sig": base64.b64decode(record_["signature"]),
            "public_key.pem": forger.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "package.json": json.dumps(description).encode(),
        },
        forger,
    )
    assert verify_package(forged).key_id == forger.key_id  # consistent in itself...
    with pytest.raises(IntegrityError) as caught:  # ...but not by the installation's key
        verify_package(forged, packaged.stores.chain.signer.public_key)
    assert caught.value.artifact == "public_key.pem"


# -- the README, by hand -----------------------------------------------------------------
def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True)


@pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="openssl is not on PATH, so the README's openssl steps cannot be run here",
)
def test_the_readme_procedure_works_with_standard_tools(packaged: Packaged, tmp_path: Path) -> None:
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(packaged.zip) as archive:
        archive.extractall(root)
    readme = (root / "README.txt").read_text()
    commands = [line.split("$ ", 1)[1] for line in readme.splitlines() if line.startswith("    $ ")]
    assert len(commands) == 7
    outputs = []
    for command in commands:
        result = sh(command, root)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        outputs.append(result.stdout)
    assert outputs[0].strip() == packaged.info.key_id
    assert "Signature Verified Successfully" in outputs[1]
    checked = outputs[2].splitlines()
    assert len(checked) == len(members(packaged.zip)) - 2 and all(
        line.endswith(": OK") for line in checked
    )
    assert outputs[3:6] == ["segments OK\n", "chain OK\n", "signed head OK\n"]
    assert "Signature Verified Successfully" in outputs[6]
    head = packaged.info.entries[1]
    # The command as the issue spells it, on the files the package carries.
    exact = sh(
        "openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin"
        f" -in signatures/{head:08d}.msg -sigfile signatures/{head:08d}.sig",
        root,
    )
    assert exact.returncode == 0 and "Signature Verified Successfully" in exact.stdout

    # The same commands fail on changed files.
    segment = root / "segments" / "00000002.ts"
    original = segment.read_bytes()
    segment.write_bytes(flipped(original, "middle"))
    assert sh(commands[2], root).returncode != 0  # sha256sum -c
    failed = sh(commands[3], root)
    assert failed.returncode != 0 and "segments/00000002.ts is NOT in the manifest" in failed.stdout
    segment.write_bytes(original)
    entry = root / "manifest" / f"{packaged.info.entries[0]:08d}.json"
    entry.write_bytes(entry.read_bytes().replace(b'"chained_at":"2', b'"chained_at":"1'))
    failed = sh(commands[4], root)
    assert failed.returncode != 0 and "does NOT link" in failed.stdout
    message = root / "signatures" / f"{head:08d}.msg"
    message.write_bytes(message.read_bytes().replace(b'"stream":"shop"', b'"stream":"shoq"'))
    assert sh(commands[6], root).returncode != 0


# -- the CLI -----------------------------------------------------------------------------
def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr + result.stdout
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_cli_verify_package(packaged: Packaged, tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"  # verifying needs no data directory of its own
    key_id = packaged.info.key_id
    ok = run_cli(home, "verify-package", "--key-id", key_id.upper(), str(packaged.zip))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK ") and "segments 1-3" in ok.stdout
    assert f"(trusted: key id {key_id})" in ok.stdout

    clip = members(packaged.zip)["clip.mp4"]
    bad = rewrite_zip(packaged.zip, tmp_path / "bad.zip", {"clip.mp4": flipped(clip, "middle")})
    failed = run_cli(home, "verify-package", str(bad))
    assert failed.returncode == 1
    assert stderr_lines(failed) == ["FAILED clip.mp4: does not match its SHA-256 in SHA256SUMS"]

    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(packaged.zip.read_bytes()[: packaged.zip.stat().st_size // 2])
    result = run_cli(home, "verify-package", str(truncated))
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and "is not a LiveWitness evidence package" in lines[0], lines

    as_json = cli_in_process(
        home, "verify-package", str(packaged.zip), "--json", "--key-id", key_id
    )
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["segments"] == [1, 2, 3]
    assert json.loads(as_json.stdout)["ok"] is True
    text = tmp_path / "notes.txt"
    text.write_text("not a package\n")
    plain_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    for path, fragment in [
        (text, "is not a LiveWitness evidence package"),
        (plain_zip, "it has no package.json"),
        (tmp_path / "missing.zip", "no such file"),
    ]:
        result_ = cli_in_process(home, "verify-package", str(path))
        assert result_.exit_code == 2
        assert result_.stderr.count("\n") == 1 and fragment in result_.stderr, result_.stderr


def test_cli_package(packaged: Packaged, tmp_path: Path) -> None:
    out = tmp_path / "cli.zip"
    home = packaged.stores.settings.home
    result = run_cli(
        home, "package", "--stream", "shop", "--since", "2026-11-20T20:00:08.5+08:00",
        "--until", "2026-11-20T12:00:19Z", "-o", str(out), "--requested-by", "cli-user",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = verify_package(out, packaged.stores.chain.signer.public_key)
    assert (report.since, report.until, report.requested_by) == (SINCE, UNTIL, "cli-user")
    # The finished export says where it is, its size and how to check it.
    key_id = signing_key_info(packaged.stores.chain.signer.public_key).key_id
    size = out.stat().st_size
    assert f"wrote {out} ({size / 1e6:.1f} MB)" in result.stdout, (size, result.stdout)
    assert f"livewitness verify-package --key-id {key_id} {out}" in result.stdout
    reversed_range = cli_in_process(
        home, "package", "--stream", "shop", "--since", "2026-11-20T12:00:19Z",
        "--until", "2026-11-20T12:00:08Z", "-o", str(out),
    )  # fmt: skip
    assert reversed_range.exit_code == 2
    assert reversed_range.stderr.count("\n") == 1 and "must be after" in reversed_range.stderr


# -- bad requests and live streams -------------------------------------------------------
@pytest.mark.parametrize(
    ("stream", "since", "until", "error", "fragment"),
    [
        ("nope", SINCE, UNTIL, NotFoundError, "no stream named 'nope'"),
        ("shop", UNTIL, SINCE, InvalidInputError, "must be after"),
        ("shop", SINCE, SINCE, InvalidInputError, "empty time range"),
        ("shop", T0 - timedelta(hours=3), T0 - timedelta(hours=2), InvalidInputError, "nothing"),
        ("shop", T0, T0 + timedelta(hours=2), InvalidInputError, "at most 3600s"),
        ("shop", datetime(2026, 11, 20), UNTIL, InvalidInputError, "no time zone"),  # noqa: DTZ001
    ],
)
def test_bad_requests_get_one_readable_line(
    packaged: Packaged,
    tmp_path: Path,
    stream: str,
    since: datetime,
    until: datetime,
    error: type[LiveWitnessError],
    fragment: str,
) -> None:
    out = tmp_path / "never.zip"
    with pytest.raises(error) as caught:
        build_package(packaged.stores, stream, since, until, out)
    assert fragment in one_line(caught.value)
    assert not out.exists()


def test_a_head_not_yet_signed_is_signed_for_the_package(
    stores: Stores, test_video: Path, tmp_path: Path
) -> None:
    """New segments after the last signature (a live stream): the package signs the head,
    and a gap inside the range travels with it as an entry."""
    record(stores, test_video)
    again = append_after_gap(stores, tmp_path, "shop", gap_seconds=20.0)
    stream_id = stores.catalog.get_stream("shop").id
    stores.catalog.set_status(stream_id, "recording")
    signed_before = [s.head_idx for s in stores.catalog.signatures(stream_id)]
    head = again.entry_idx
    assert head not in signed_before

    out = tmp_path / "live.zip"
    info = build_package(
        stores,
        "shop",
        again.starts_at - timedelta(seconds=25),
        again.starts_at + timedelta(seconds=3),
        out,
    )
    assert [s.head_idx for s in stores.catalog.signatures(stream_id)] == [*signed_before, head]
    assert info.entries[1] == head
    files = members(out)
    gap = json.loads(files[f"manifest/{head - 1:08d}.json"])
    assert gap["kind"] == "gap" and gap["gap"]["reason"] == "source dropped: test"
    transcript = json.loads(files["transcript.json"])
    assert transcript["utterances"] == [] and not any(
        s["transcribed"] for s in transcript["segments"]
    )
    assert verify_package(out).segments == info.segments


def test_a_moments_transcript_reads_only_the_segments_around_it(
    packaged: Packaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = packaged.stores
    stream = stores.catalog.get_stream("shop")
    everything = utterances_of(
        assemble_words(
            SegmentTranscript.from_json(json.loads(t.body))
            for t in stores.catalog.transcripts(stream.id)
        )
    )
    asked: list[set[int] | None] = []
    read_transcripts = stores.catalog.transcripts

    def spy(stream_id: int, seqs: Collection[int] | None = None) -> Sequence[Transcript]:
        asked.append(None if seqs is None else set(seqs))
        return read_transcripts(stream_id, seqs)

    monkeypatch.setattr(stores.catalog, "transcripts", spy)
    assert len(packaged.segments) >= 5
    for start, end in [(-30.0, 3.0), (5.0, 7.5), (11.9, 12.1), (20.0, 29.0), (40.0, 70.0)]:
        window = transcript_window(stores, "shop", start, end)
        wanted = [u for u in everything if u.end_offset > start and u.offset <= end]
        assert [(u.text, u.offset) for u in window] == [(u.text, u.offset) for u in wanted]
        assert all(len(u.words) == len(u.text) for u in window)
    # Each window read its covering segments' transcripts and their neighbours', never
    # the whole stream's; past the recording nothing was read.
    assert asked and None not in asked
    assert all(len(seqs) <= 4 for seqs in asked if seqs is not None)


# -- pinned trust ------------------------------------------------------------------------
def jcs_or_legacy(value: object, version: int) -> bytes:
    """A record's bytes as a writer of format ``version`` makes them (1: the previous
    release), written out with the libraries rather than with LiveWitness's helpers."""
    if version == 2:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rebuilt(
    src: Path,
    dst: Path,
    key: Ed25519PrivateKey,
    version: int = 2,
    segments: dict[int, bytes] | None = None,
    said: tuple[str, str] | None = None,
) -> Path:
    """A package rebuilt as whoever holds its files and ``key`` could: segments replaced
    (their entries rewritten and every later entry re-chained), what was said rewritten,
    the head re-signed, public_key.pem, package.json, README.txt and SHA256SUMS made to
    match and signed. Entries and the signed payload are written in format ``version``."""
    files = members(src)
    segments = segments or {}
    public = key.public_key()
    raw_key = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw_key).hexdigest()[:16]
    old_key_id = json.loads(files["package.json"])["key_id"]
    for seq, data in segments.items():
        files[f"segments/{seq:08d}.ts"] = data
    prev: str | None = None
    for name in sorted(n for n in files if n.startswith("manifest/")):
        record = json.loads(files[name])
        record["v"] = version
        if record["kind"] == "segment" and record["segment"]["seq"] in segments:
            data = segments[record["segment"]["seq"]]
            record["segment"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        if prev is not None:
            record["prev"] = prev
        files[name] = jcs_or_legacy(record, version)
        prev = hashlib.sha256(files[name]).hexdigest()
    (record_name,) = [n for n in files if n.startswith("signatures/") and n.endswith(".json")]
    payload = dict(json.loads(files[record_name])["payload"], head_sha256=prev, key_id=key_id)
    payload.pop("v")
    if version == 2:
        payload["v"] = 2
    message = jcs_or_legacy(payload, version)
    signature = key.sign(message)
    files[record_name] = jcs_or_legacy(
        {"payload": payload, "signature": base64.b64encode(signature).decode()}, version
    )
    files[record_name.replace(".json", ".msg")] = message
    files[record_name.replace(".json", ".sig")] = signature
    files["public_key.pem"] = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    description = json.loads(files["package.json"])
    description["key_id"] = key_id
    description["signed_head"]["sha256"] = prev
    for segment in description["segments"]:
        if segment["seq"] in segments:
            data = segments[segment["seq"]]
            segment.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    files["package.json"] = (json.dumps(description, ensure_ascii=False, indent=2) + "\n").encode()
    if said is not None:
        for name in ("transcript.json", "transcript.srt"):
            files[name] = files[name].decode().replace(*said).encode()
    files["README.txt"] = files["README.txt"].replace(old_key_id.encode(), key_id.encode())
    listed = sorted(n for n in files if n not in ("SHA256SUMS", "SHA256SUMS.sig"))
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in listed).encode()
    files["SHA256SUMS"] = sums
    files["SHA256SUMS.sig"] = key.sign(sums)
    with zipfile.ZipFile(dst, "w") as archive:
        for name in sorted(files, key=lambda n: n != "README.txt"):
            archive.writestr(name, files[name])
    return dst


@pytest.fixture(scope="module")
def forged(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The package with segment 2 swapped for segment 3's bytes and the transcript
    rewritten, re-chained and re-signed throughout with a key of the forger's own."""
    key = Ed25519PrivateKey.generate()
    files = members(packaged.zip)
    out = rebuilt(
        packaged.zip,
        tmp_path_factory.mktemp("forged") / "forged.zip",
        key,
        segments={2: files["segments/00000003.ts"]},
        said=(SAID[0], "全场一折包邮送"),
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return out, hashlib.sha256(raw).hexdigest()[:16]


def installation_pem(packaged: Packaged, tmp_path: Path) -> Path:
    path = tmp_path / "installation.pem"
    path.write_bytes(
        packaged.stores.chain.signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_a_forged_package_is_consistent_but_never_ok_without_an_anchor(
    packaged: Packaged, forged: tuple[Path, str], tmp_path: Path
) -> None:
    path, forger_id = forged
    report = verify_package(path)  # every check inside the package passes...
    assert (report.key_id, report.anchor, report.trusted) == (forger_id, None, False)
    assert SAID[0] not in members(path)["transcript.json"].decode()
    home = tmp_path / "elsewhere"
    result = run_cli(home, "verify-package", str(path))  # ...so only trust can tell
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNTRUSTED ") and forger_id in lines[0]
    assert not any(line.startswith("OK") for line in lines) and stderr_lines(result) == []
    as_json = cli_in_process(home, "verify-package", "--json", str(path))
    assert as_json.exit_code == 3
    shown = json.loads(as_json.stdout)
    assert (shown["ok"], shown["trusted"], shown["consistent"]) == (False, False, True)
    assert (shown["key_id"], shown["anchor"]) == (forger_id, None)
    # The genuine package, unpinned, is not OK either: nothing vouches for its signer.
    genuine = cli_in_process(home, "verify-package", str(packaged.zip))
    assert genuine.exit_code == 3 and genuine.stdout.startswith("UNTRUSTED ")


def test_a_forged_package_fails_against_the_installations_key(
    packaged: Packaged, forged: tuple[Path, str], tmp_path: Path
) -> None:
    path, forger_id = forged
    home = tmp_path / "elsewhere"
    pem = installation_pem(packaged, tmp_path)
    installation_id = packaged.stores.chain.signer.key_id
    with pytest.raises(IntegrityError) as caught:
        verify_package(path, packaged.stores.chain.signer.public_key)
    assert caught.value.artifact == "public_key.pem"
    for anchor in (["--public-key", str(pem)], ["--key-id", installation_id]):
        failed = run_cli(home, "verify-package", *anchor, str(path))
        assert failed.returncode == 1, (anchor, failed.stdout, failed.stderr)
        (line,) = stderr_lines(failed)
        assert line.startswith(f"FAILED public_key.pem: is key {forger_id}, not the trusted key")
        assert "OK" not in failed.stdout
        genuine = cli_in_process(home, "verify-package", *anchor, str(packaged.zip))
        assert genuine.exit_code == 0 and genuine.stdout.startswith("OK "), genuine.stdout
    # --key-id pins whichever key it names: the forger's own id accepts the forgery.
    theirs = cli_in_process(home, "verify-package", "--key-id", forger_id, str(path))
    assert theirs.exit_code == 0 and f"trusted: key id {forger_id}" in theirs.stdout
    refused = cli_in_process(home, "verify-package", "--key-id", forger_id, str(packaged.zip))
    assert refused.exit_code == 1 and "public_key.pem" in refused.stderr


def test_a_trust_store_setting_pins_the_key(
    packaged: Packaged, forged: tuple[Path, str], tmp_path: Path
) -> None:
    path, forger_id = forged
    other = Ed25519PrivateKey.generate().public_key()
    store = tmp_path / "trusted.pem"
    store.write_bytes(
        b"# installations whose packages we accept\n"
        + other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        + installation_pem(packaged, tmp_path).read_bytes()
    )
    home = tmp_path / "elsewhere"
    setting = {"LIVEWITNESS_TRUSTED_SIGNING_KEYS": str(store)}
    genuine = run_cli(home, "verify-package", str(packaged.zip), **setting)
    assert genuine.returncode == 0 and f"(trusted: trust store {store})" in genuine.stdout
    failed = run_cli(home, "verify-package", str(path), **setting)
    assert failed.returncode == 1 and stderr_lines(failed)[0].startswith("FAILED public_key.pem")
    # An explicit anchor is used instead of the setting.
    forger = run_cli(home, "verify-package", "--key-id", forger_id, str(path), **setting)
    assert forger.returncode == 0, forger.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--key-id", "xyz"], "is not a signing key id"),
        (["--key-id", "0123456789abcdef0"], "is not a signing key id"),
        (["--key-id", "0123456789abcdef", "--public-key", "k.pem"], "not both"),
        (["--public-key", "missing.pem"], "cannot read public keys from missing.pem"),
        (["--public-key", "notes.txt"], "holds no PEM public key"),
    ],
)
def test_bad_anchors_get_one_line_and_exit_2(
    packaged: Packaged,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a key\n")
    result = cli_in_process(tmp_path / "home", "verify-package", *args, str(packaged.zip))
    assert result.exit_code == 2, result.stdout
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_a_package_in_the_previous_releases_format_still_verifies(
    packaged: Packaged, tmp_path: Path
) -> None:
    """Entries with "v": 1 and a payload without "v", hashed and signed in the legacy
    form, as packages made before RFC 8785 are."""
    signer = packaged.stores.chain.signer
    old = rebuilt(packaged.zip, tmp_path / "old.zip", signer.private_key, version=1)
    files = members(old)
    head = packaged.info.entries[1]
    assert b'"v":1' in files[f"manifest/{head:08d}.json"]
    assert b'"v"' not in files[f"signatures/{head:08d}.msg"]
    report = verify_package(old, signer.public_key)
    assert (report.trusted, report.key_id, report.segments) == (True, signer.key_id, [1, 2, 3])
    # Tampering is caught as in the new format: a changed entry breaks the next link.
    first = packaged.info.entries[0]
    name = f"manifest/{first + 1:08d}.json"
    changed = files[name].replace(b'"chained_at":"2', b'"chained_at":"1')
    assert changed != files[name]
    resealed = reseal(old, tmp_path / "old-resealed.zip", {name: changed}, signer)
    with pytest.raises(IntegrityError) as caught:
        verify_package(resealed, signer.public_key)
    assert caught.value.artifact == f"manifest/{first + 2:08d}.json"


def test_the_published_signing_key_is_the_one_packages_carry(packaged: Packaged) -> None:
    home = packaged.stores.settings.home
    key_id = packaged.info.key_id
    pem = members(packaged.zip)["public_key.pem"].decode()
    shown = run_cli(home, "keys", "signing")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"key id {key_id} (Ed25519)\n{pem}"
    as_json = cli_in_process(home, "keys", "signing", "--json")
    assert json.loads(as_json.stdout) == {
        "key_id": key_id,
        "algorithm": "Ed25519",
        "public_key_pem": pem,
    }
    with running_api(packaged.stores) as api, api.client() as anonymous:
        served = anonymous.get("/api/v1/signing-key")
    assert served.status_code == 200
    assert served.json() == {"key_id": key_id, "algorithm": "Ed25519", "public_key_pem": pem}
