"""The evidence chain and verify: every kind of tampering is detected and named."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import ConfigError, ImmutableBlobError, IntegrityError
from core.settings import Settings
from evidence.verify import verify_stream
from storage.blob_keys import entry_key, segment_key, signature_key
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.signing import PRIVATE_NAME
from storage.stores import Stores, open_stores

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def closed(tmp_path: Path, n: int, start: datetime, payload: bytes | None = None) -> ClosedSegment:
    path = tmp_path / f"local-{n}.ts"
    path.write_bytes(payload or os.urandom(4096) + f"segment {n}".encode())
    return ClosedSegment(path, sha256_file(path), path.stat().st_size, start, 10.0, f"s/{n}")


def build_chain(stores: Stores, tmp_path: Path, name: str = "shop") -> int:
    """Three segments, a gap, two more segments; head signed."""
    sid = stores.chain.open_stream(name, "rtmp://example/live")
    for n in range(3):
        stores.chain.append_segment(sid, name, closed(tmp_path, n, T0 + timedelta(seconds=10 * n)))
    stores.chain.append_gap(
        sid, name, T0 + timedelta(seconds=30), T0 + timedelta(seconds=45), "drop"
    )
    for n in range(3, 5):
        start = T0 + timedelta(seconds=45 + 10 * (n - 3))
        stores.chain.append_segment(sid, name, closed(tmp_path, n, start))
    stores.chain.append_end(sid, name, "stopped", T0 + timedelta(seconds=65))
    stores.chain.sign_head(sid, name)
    stores.catalog.set_status(sid, "stopped")
    return sid


def verify(stores: Stores, name: str = "shop") -> object:
    return verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, name)


def blob_path(settings: Settings, key: str) -> Path:
    return settings.blobs_dir / key


def rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def test_chain_links_entries_and_verifies(stores: Stores, tmp_path: Path) -> None:
    sid = build_chain(stores, tmp_path)
    entries = stores.catalog.entries(sid)
    assert [e.kind for e in entries] == ["segment"] * 3 + ["gap"] + ["segment"] * 2 + ["end"]
    assert entries[0].prev_sha256 == "0" * 64
    for before, after in itertools.pairwise(entries):
        assert after.prev_sha256 == before.sha256
    assert [j.segment_seq for j in stores.catalog.jobs(sid)] == [0, 1, 2, 3, 4]
    report = verify(stores)
    assert (report.segments, report.gaps, report.signatures) == (5, 1, 1)  # type: ignore[attr-defined]
    assert report.recorded_seconds == 50.0  # type: ignore[attr-defined]
    assert report.gap_seconds == 15.0  # type: ignore[attr-defined]


def test_appending_the_same_segment_twice_is_a_no_op(stores: Stores, tmp_path: Path) -> None:
    sid = stores.chain.open_stream("shop")
    segment = closed(tmp_path, 0, T0)
    first = stores.chain.append_segment(sid, "shop", segment)
    again = stores.chain.append_segment(sid, "shop", segment)
    assert first.seq == again.seq == 0
    assert len(stores.catalog.entries(sid)) == 1


def test_identical_bytes_later_in_a_stream_are_a_new_segment(
    stores: Stores, tmp_path: Path
) -> None:
    """A looped clip repeats byte for byte; each capture is still its own segment."""
    sid = stores.chain.open_stream("shop")
    payload = b"same bytes" * 100
    stores.chain.append_segment(sid, "shop", closed(tmp_path, 0, T0, payload))
    later = closed(tmp_path, 1, T0 + timedelta(seconds=10), payload)
    stores.chain.append_segment(sid, "shop", later)
    segments = stores.catalog.segments(sid)
    assert [s.seq for s in segments] == [0, 1]
    assert segments[0].sha256 == segments[1].sha256


def test_stored_evidence_is_never_overwritten(stores: Stores, tmp_path: Path) -> None:
    build_chain(stores, tmp_path)
    with pytest.raises(ImmutableBlobError):
        stores.blobs.put_bytes(segment_key("shop", 0), b"something else")
    verify(stores)


def test_entries_stored_but_not_catalogued_are_adopted_at_reopen(
    settings: Settings, tmp_path: Path
) -> None:
    """A crash between storing an entry and indexing it: the next open repairs the index."""
    stores = open_stores(settings)
    sid = stores.chain.open_stream("shop")
    stores.chain.append_segment(sid, "shop", closed(tmp_path, 0, T0))
    stores.chain.append_segment(sid, "shop", closed(tmp_path, 1, T0 + timedelta(seconds=10)))
    stores.close()
    # Forget the second entry in the catalog, as if the process died right after storing it.
    stores = open_stores(settings)
    with stores.catalog.session() as s:
        from sqlalchemy import delete

        from storage.models import Job, ManifestEntry, Segment

        s.execute(delete(ManifestEntry).where(ManifestEntry.idx == 1))
        s.execute(delete(Segment).where(Segment.seq == 1))
        s.execute(delete(Job).where(Job.segment_seq == 1))
    stores.close()
    stores = open_stores(settings)
    sid = stores.chain.open_stream("shop")
    assert [e.idx for e in stores.catalog.entries(sid)] == [0, 1]
    assert [s.seq for s in stores.catalog.segments(sid)] == [0, 1]
    assert [j.segment_seq for j in stores.catalog.jobs(sid)] == [0, 1]
    stores.chain.append_end(sid, "shop", "stopped", T0 + timedelta(seconds=20))
    stores.chain.sign_head(sid, "shop")
    stores.catalog.set_status(sid, "stopped")
    verify(stores)
    stores.close()


def artifacts(sid: int, stores: Stores) -> list[str]:
    keys = [segment_key("shop", s.seq) for s in stores.catalog.segments(sid)]
    keys += [entry_key("shop", e.idx) for e in stores.catalog.entries(sid)]
    keys += [signature_key("shop", s.head_idx) for s in stores.catalog.signatures(sid)]
    return keys


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_anywhere_is_named(stores: Stores, tmp_path: Path, where: str) -> None:
    sid = build_chain(stores, tmp_path)
    for key in artifacts(sid, stores):
        path = blob_path(stores.settings, key)
        original = path.read_bytes()
        offset = {"first": 0, "middle": len(original) // 2, "last": len(original) - 1}[where]
        flipped = bytearray(original)
        flipped[offset] ^= 0x01
        rewrite(path, bytes(flipped))
        with pytest.raises(IntegrityError) as caught:
            verify(stores)
        assert caught.value.artifact == key, (key, str(caught.value))
        rewrite(path, original)
    verify(stores)


def test_every_single_byte_of_an_entry_is_covered(stores: Stores, tmp_path: Path) -> None:
    sid = build_chain(stores, tmp_path)
    key = entry_key("shop", 2)
    path = blob_path(stores.settings, key)
    original = path.read_bytes()
    for offset in range(len(original)):
        flipped = bytearray(original)
        flipped[offset] ^= 0x20
        rewrite(path, bytes(flipped))
        with pytest.raises(IntegrityError) as caught:
            verify(stores)
        assert caught.value.artifact == key
    rewrite(path, original)
    assert sid


@pytest.mark.parametrize("kind", ["segment", "entry", "signature"])
def test_a_deleted_artifact_is_named(stores: Stores, tmp_path: Path, kind: str) -> None:
    build_chain(stores, tmp_path)
    key = {
        "segment": segment_key("shop", 3),
        "entry": entry_key("shop", 4),
        "signature": signature_key("shop", 6),
    }[kind]
    blob_path(stores.settings, key).unlink()
    with pytest.raises(IntegrityError) as caught:
        verify(stores)
    assert caught.value.artifact == key


def test_reordered_entries_are_detected(stores: Stores, tmp_path: Path) -> None:
    build_chain(stores, tmp_path)
    first = blob_path(stores.settings, entry_key("shop", 1))
    second = blob_path(stores.settings, entry_key("shop", 2))
    a, b = first.read_bytes(), second.read_bytes()
    rewrite(first, b)
    rewrite(second, a)
    with pytest.raises(IntegrityError) as caught:
        verify(stores)
    assert caught.value.artifact == entry_key("shop", 1)


def test_reordering_entries_and_their_index_together_breaks_the_links(
    stores: Stores, tmp_path: Path
) -> None:
    """Even an attacker who also rewrites the catalog cannot reorder: the prev hashes break."""
    sid = build_chain(stores, tmp_path)
    first = blob_path(stores.settings, entry_key("shop", 1))
    second = blob_path(stores.settings, entry_key("shop", 2))
    a, b = first.read_bytes(), second.read_bytes()
    rewrite(first, b)
    rewrite(second, a)
    from storage.blobs.protocol import sha256_bytes
    from storage.models import ManifestEntry

    with stores.catalog.session() as s:
        rows = {r.idx: r for r in s.query(ManifestEntry).filter_by(stream_id=sid)}
        rows[1].sha256, rows[2].sha256 = sha256_bytes(b), sha256_bytes(a)
    with pytest.raises(IntegrityError) as caught:
        verify(stores)
    assert caught.value.artifact == entry_key("shop", 1)
    assert "out of place" in caught.value.problem or "link" in caught.value.problem


def test_a_signature_from_another_key_is_rejected(stores: Stores, tmp_path: Path) -> None:
    build_chain(stores, tmp_path)
    key = signature_key("shop", 6)
    path = blob_path(stores.settings, key)
    record = json.loads(path.read_bytes())
    from storage.signing import Signer

    forged = Signer(tmp_path / "other-keys").sign(record["payload"])
    rewrite(path, json.dumps(forged).encode())
    with pytest.raises(IntegrityError) as caught:
        verify(stores)
    assert caught.value.artifact == key


def test_an_unsigned_head_of_a_stopped_stream_fails(stores: Stores, tmp_path: Path) -> None:
    sid = build_chain(stores, tmp_path)
    stores.chain.append_segment(sid, "shop", closed(tmp_path, 9, T0 + timedelta(minutes=5)))
    with pytest.raises(IntegrityError) as caught:
        verify(stores)
    assert caught.value.artifact == entry_key("shop", 7)
    stores.chain.sign_head(sid, "shop")
    with pytest.raises(IntegrityError, match="no end entry"):  # signed, but never ended
        verify(stores)
    stores.chain.append_end(sid, "shop", "stopped", T0 + timedelta(minutes=5, seconds=10))
    stores.chain.sign_head(sid, "shop")
    verify(stores)


def test_a_stage_without_the_deployments_key_refuses_to_make_its_own(
    stores: Stores, tmp_path: Path
) -> None:
    build_chain(stores, tmp_path)
    key_id = stores.chain.signer.key_id
    # Another host: the same catalog and blob store, but its keys directory is empty.
    other = tmp_path / "other-host"
    other.mkdir()
    (other / "blobs").symlink_to(stores.settings.blobs_dir)
    settings = Settings(home=other, catalog_url=stores.settings.catalog_dsn)
    with pytest.raises(ConfigError, match=f"signed with key {key_id}: copy the deployment"):
        open_stores(settings)
    assert not (other / "keys" / PRIVATE_NAME).exists()
    # With the deployment's keys copied there it opens and verifies.
    shutil.copytree(stores.settings.signing_keys_dir, other / "keys", dirs_exist_ok=True)
    with open_stores(settings) as stores:
        assert stores.chain.signer.key_id == key_id
        verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, "shop")
