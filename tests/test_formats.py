"""Format versions of what is hashed and signed: version 2 is RFC 8785, version 1 (the
previous release's sorted compact JSON) still verifies, for chains, signatures and the
audit log alike, and tampering fails in both."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, event, text

from core.errors import IntegrityError
from core.timeutil import iso
from evidence.verify import verify_stream
from storage import audit
from storage.blob_keys import entry_key, segment_key, signature_key
from storage.blobs.protocol import sha256_file
from storage.catalog import Catalog, _sqlite_pragmas, upgrade
from storage.chain import GENESIS, ClosedSegment
from storage.models import AuditEvent, ManifestEntry, Signature
from storage.signing import (
    canonical_bytes,
    check_signature,
    format_version,
    legacy_canonical_json,
    signed_message,
    signing_key_id,
)
from storage.stores import Stores

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# Floats that are whole numbers, exponents, and keys whose code point order differs from
# their UTF-16 order (U+E000 sorts after U+1F600 in UTF-16, before it by code point).
RECORD: dict[str, Any] = {
    "duration": 10.0,
    "p": 0.1,
    "big": 1e21,
    "small": 5e-7,
    "text": "假一赔十 «ok» é",
    "\ue000": "private use",
    "\U0001f600": "emoji",
    "nested": {"z": [1, 2.5, -0.0], "a": None, "t": True},
}

RFC8785_BYTES = (
    '{"big":1e+21,"duration":10,"nested":{"a":null,"t":true,"z":[1,2.5,0]},"p":0.1,'
    '"small":5e-7,"text":"假一赔十 «ok» é","\U0001f600":"emoji","\ue000":"private use"}'
).encode()


def previous_release_json(value: Any) -> bytes:
    """How the previous release hashed and signed records (written out here, so a change
    to storage.signing's legacy form fails these tests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_rfc8785_bytes_match_the_library_and_differ_from_the_legacy_form() -> None:
    assert canonical_bytes(RECORD, 2) == rfc8785.dumps(RECORD) == RFC8785_BYTES
    legacy = canonical_bytes(RECORD, 1)
    assert legacy == legacy_canonical_json(RECORD) != RFC8785_BYTES
    assert b'"duration":10.0' in legacy and b'"big":1e+21' in legacy
    assert legacy.index("\ue000".encode()) < legacy.index("\U0001f600".encode())
    # Where the two agree (ASCII keys, integers, strings) their bytes are the same.
    plain = {"stream": "shop", "head_index": 5, "key_id": "0123456789abcdef"}
    assert canonical_bytes(plain, 1) == canonical_bytes(plain, 2)
    with pytest.raises(ValueError, match="unknown format version"):
        canonical_bytes(plain, 3)
    with pytest.raises(ValueError):
        canonical_bytes({"n": 2**60}, 2)  # not exact as an IEEE double: refused, not rounded


@pytest.mark.parametrize(
    ("record", "version"), [({}, 1), ({"v": 1}, 1), ({"v": 2}, 2), ({"v": 3}, None)]
)
def test_the_format_version_of_a_record(record: dict[str, Any], version: int | None) -> None:
    if version is None:
        with pytest.raises(ValueError, match="unknown format version 3"):
            format_version(record)
    else:
        assert format_version(record) == version
    for odd in (True, 2.0, "2", None):
        with pytest.raises(ValueError):
            format_version({"v": odd})


# -- chains ------------------------------------------------------------------------------
def segment_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"local-{n}.ts"
    path.write_bytes(os.urandom(2048) + f"segment {n}".encode())
    return path


def write_v1_chain(stores: Stores, tmp_path: Path, name: str) -> int:
    """Two segments and a signed head, stored as the previous release wrote them: "v": 1
    entries and a payload without "v", in the legacy form; the catalog adopts them."""
    prev = GENESIS
    for n, duration in enumerate((10.0, 9.966667)):
        path = segment_file(tmp_path, n)
        stores.blobs.put_file(segment_key(name, n), path, sha256_file(path))
        record = {
            "v": 1,
            "stream": name,
            "index": n,
            "prev": prev,
            "kind": "segment",
            "segment": {
                "seq": n,
                "key": segment_key(name, n),
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "start": f"2026-11-21T12:00:{10 * n:02d}.000Z",
                "duration": duration,
                "recovered": False,
                "capture": f"s/{n}",
            },
            "chained_at": "2026-11-21T12:00:20.000Z",
        }
        raw = previous_release_json(record)
        stores.blobs.put_bytes(entry_key(name, n), raw)
        prev = hashlib.sha256(raw).hexdigest()
    sid = stores.chain.open_stream(name)  # adopts the stored entries
    payload = {
        "stream": name,
        "head_index": 1,
        "head_sha256": prev,
        "signed_at": "2026-11-21T12:00:21.000Z",
        "key_id": stores.chain.signer.key_id,
    }
    message = previous_release_json(payload)
    signature = base64.b64encode(stores.chain.signer.private_key.sign(message)).decode()
    record_ = {"payload": payload, "signature": signature}
    stores.blobs.put_bytes(signature_key(name, 1), previous_release_json(record_))
    stores.catalog.add_signature(
        Signature(
            stream_id=sid,
            head_idx=1,
            head_sha256=prev,
            blob_key=signature_key(name, 1),
            signed_at=T0 + timedelta(seconds=21),
        )
    )
    stores.catalog.set_status(sid, "stopped")
    return sid


def write_v2_chain(stores: Stores, tmp_path: Path, name: str) -> int:
    sid = stores.chain.open_stream(name)
    for n, duration in enumerate((10.0, 9.966667)):
        path = segment_file(tmp_path, n)
        start = T0 + timedelta(seconds=10 * n)
        closed = ClosedSegment(
            path, sha256_file(path), path.stat().st_size, start, duration, f"s/{n}"
        )
        stores.chain.append_segment(sid, name, closed)
    head = stores.catalog.head(sid)
    assert head is not None
    stores.chain.append_end(sid, name, "stopped", head.ends_at)  # as every clean stop
    stores.chain.sign_head(sid, name)
    stores.catalog.set_status(sid, "stopped")
    return sid


def verify(stores: Stores, name: str) -> Any:
    return verify_stream(stores.catalog, stores.blobs, stores.settings.signing_keys_dir, name)


def rewrite_blob(stores: Stores, key: str, data: bytes) -> None:
    """Change stored evidence behind LiveWitness's back (write-once files are read-only)."""
    path = stores.settings.blobs_dir / key
    path.chmod(0o644)
    path.write_bytes(data)


def test_v1_and_v2_chains_both_verify(stores: Stores, tmp_path: Path) -> None:
    old = write_v1_chain(stores, tmp_path, "old")
    new = write_v2_chain(stores, tmp_path, "new")
    for name, head in (("old", 1), ("new", 2)):  # the new chain ends with its end entry
        report = verify(stores, name)
        assert (report.segments, report.signatures, report.signed_head) == (2, 1, head), name
        assert report.recorded_seconds == pytest.approx(19.966667)

    old_entry = stores.blobs.get_bytes(entry_key("old", 0))
    assert b'"v":1' in old_entry and b'"duration":10.0' in old_entry
    for idx, row in enumerate(stores.catalog.entries(new)):
        raw = stores.blobs.get_bytes(entry_key("new", idx))
        record = json.loads(raw)
        assert record["v"] == 2 and raw == rfc8785.dumps(record)  # RFC 8785 as stored
        assert row.sha256 == hashlib.sha256(raw).hexdigest()  # the stored bytes are hashed
    assert b'"duration":10,' in stores.blobs.get_bytes(entry_key("new", 0))
    # The catalog holds what the stored bytes say, for both formats.
    assert [s.duration for s in stores.catalog.segments(old)] == [10.0, 9.966667]
    assert [s.duration for s in stores.catalog.segments(new)] == [10.0, 9.966667]

    signed = json.loads(stores.blobs.get_bytes(signature_key("new", 2)))
    assert signed["payload"]["v"] == 2
    assert "v" not in json.loads(stores.blobs.get_bytes(signature_key("old", 1)))["payload"]


@pytest.mark.parametrize("name", ["old", "new"])
def test_tampering_fails_in_both_formats(stores: Stores, tmp_path: Path, name: str) -> None:
    (write_v1_chain if name == "old" else write_v2_chain)(stores, tmp_path, name)
    entry = entry_key(name, 0)
    original = stores.blobs.get_bytes(entry)
    record = json.loads(original)
    version = format_version(record)
    record["segment"]["recovered"] = True  # re-written in its own canonical form
    for changed in (canonical_bytes(record, version), original.replace(b"}", b"} ", 1)):
        rewrite_blob(stores, entry, changed)
        with pytest.raises(IntegrityError) as caught:
            verify(stores, name)
        assert caught.value.artifact == entry
    rewrite_blob(stores, entry, original)
    verify(stores, name)

    key = signature_key(name, 1 if name == "old" else 2)  # after "new"'s end entry
    record = json.loads(stores.blobs.get_bytes(key))
    record["payload"]["signed_at"] = "2026-11-21T13:00:00.000Z"
    rewrite_blob(stores, key, json.dumps(record).encode())
    with pytest.raises(IntegrityError) as caught:
        verify(stores, name)
    assert (caught.value.artifact, caught.value.problem) == (
        key,
        "signature does not verify with this data directory's key",
    )


def test_an_entry_of_an_unknown_format_is_named(stores: Stores, tmp_path: Path) -> None:
    sid = write_v2_chain(stores, tmp_path, "shop")
    stores.catalog.set_status(sid, "recording")  # only the entry is in question here
    head = stores.catalog.entries(sid)[-1]
    record = json.loads(stores.blobs.get_bytes(head.blob_key))
    raw = rfc8785.dumps({**record, "v": 3})
    rewrite_blob(stores, head.blob_key, raw)
    with stores.catalog.session() as session:
        session.get_one(ManifestEntry, head.id).sha256 = hashlib.sha256(raw).hexdigest()
    with pytest.raises(IntegrityError) as caught:
        verify(stores, "shop")
    assert caught.value.problem == "manifest entry has an unknown format version"


# -- signatures --------------------------------------------------------------------------
def v1_record(key: Ed25519PrivateKey, payload: dict[str, Any]) -> dict[str, Any]:
    message = previous_release_json(payload)
    return {"payload": payload, "signature": base64.b64encode(key.sign(message)).decode()}


def test_v1_and_v2_signatures_both_check_and_tampering_fails(stores: Stores) -> None:
    signer = stores.chain.signer
    payload = {
        "stream": "店铺",  # non-ASCII and a float: the two forms differ
        "head_index": 3,
        "head_sha256": "ab" * 32,
        "signed_at": "2026-11-21T12:00:21.000Z",
        "key_id": signer.key_id,
        "duration": 30.0,
    }
    old = v1_record(signer.private_key, payload)
    new = signer.sign(payload)
    assert new["payload"] == {**payload, "v": 2}
    assert signed_message(new["payload"]) == rfc8785.dumps(new["payload"])
    assert signed_message(old["payload"]) == legacy_canonical_json(payload)
    assert signed_message(old["payload"]) != rfc8785.dumps(payload)
    for record in (old, new):
        assert check_signature(record, signer.public_key)
        changed = {**record, "payload": {**record["payload"], "head_index": 4}}
        assert not check_signature(changed, signer.public_key)
        wrong = base64.b64encode(Ed25519PrivateKey.generate().sign(b"x")).decode()
        assert not check_signature({**record, "signature": wrong}, signer.public_key)
        assert not check_signature({**record, "signature": "not base64!"}, signer.public_key)
    # The version is signed too: a v2 record read as v1 (or as a version to come) fails.
    downgraded = {k: v for k, v in new["payload"].items() if k != "v"}
    assert not check_signature({**new, "payload": downgraded}, signer.public_key)
    unknown = {**new, "payload": {**new["payload"], "v": 3}}
    assert not check_signature(unknown, signer.public_key)
    assert not check_signature({"payload": [], "signature": new["signature"]}, signer.public_key)
    other = Ed25519PrivateKey.generate()
    assert signing_key_id(other.public_key()) != signer.key_id
    assert not check_signature(new, other.public_key())


# -- the audit log -----------------------------------------------------------------------
def v1_event(previous: AuditEvent | None) -> AuditEvent:
    """An event as the previous release appended it: legacy bytes, no format version."""
    seq = previous.seq + 1 if previous else 1
    prev = previous.sha256 if previous else audit.GENESIS
    at = T0 + timedelta(seconds=seq)
    details = previous_release_json({"q": "假一赔十", "took": 1.0}).decode()
    body = {
        "seq": seq,
        "at": iso(at),
        "actor": "key 1 (anna, reviewer)",
        "role": "reviewer",
        "action": "search",
        "details": json.loads(details),
        "prev_sha256": prev,
    }
    digest = hashlib.sha256(previous_release_json(body)).hexdigest()
    return AuditEvent(
        seq=seq,
        at=at,
        actor=body["actor"],
        role="reviewer",
        action="search",
        details=details,
        prev_sha256=prev,
        sha256=digest,
    )


def test_an_audit_log_of_both_formats_verifies_and_tampering_fails(stores: Stores) -> None:
    catalog = stores.catalog
    catalog.append_audit(v1_event)
    catalog.append_audit(v1_event)
    audit.record(catalog, "key 2 (case, case-system)", "case-system", "export", {"s": 10.0})
    audit.record(catalog, "key 2 (case, case-system)", "case-system", "export", {"s": "店"})
    check = audit.verify_audit(catalog)
    assert (check.events, check.ok, check.problem) == (4, True, None)
    events = list(catalog.audit_events())
    assert [e.format_version for e in events] == [None, None, 2, 2]
    assert [audit.event_json(e)["v"] for e in events] == [1, 1, 2, 2]
    assert events[2].details == '{"s":10}'  # RFC 8785 details, stored as hashed
    shown = audit.event_json(events[2])
    body = {k: v for k, v in shown.items() if k != "sha256"}
    assert hashlib.sha256(rfc8785.dumps(body)).hexdigest() == events[2].sha256

    for seq, column, value in [
        (2, "details", '{"q":"别的","took":1.0}'),
        (3, "format_version", None),
    ]:
        with catalog.session() as session:
            row = session.query(AuditEvent).filter_by(seq=seq).one()
            saved = getattr(row, column)
            setattr(row, column, value)
        check = audit.verify_audit(catalog)
        assert (check.ok, check.first_bad_seq) == (False, seq), column
        with catalog.session() as session:
            setattr(session.query(AuditEvent).filter_by(seq=seq).one(), column, saved)
        assert audit.verify_audit(catalog).ok


def test_audit_rows_from_before_the_format_column_verify_as_version_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine, "0006")
    row = v1_event(None)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO audit_events (seq, at, actor, role, action, details, prev_sha256,"
                " sha256) VALUES (1, :at, :actor, 'reviewer', 'search', :details, :prev, :sha)"
            ),
            {
                "at": row.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "actor": row.actor,
                "details": row.details,
                "prev": row.prev_sha256,
                "sha": row.sha256,
            },
        )
    engine.dispose()
    catalog = Catalog(url)  # upgrades through 0007
    try:
        (old,) = catalog.audit_events()
        assert old.format_version is None and old.at == row.at
        audit.record(catalog, "cli", "admin", "key.create", {"key": 1})
        check = audit.verify_audit(catalog)
        assert (check.events, check.ok, check.problem) == (2, True, None)
    finally:
        catalog.close()
