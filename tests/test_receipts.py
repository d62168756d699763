"""Truncation is detectable: every signed head (a stream's chain head, the audit log's
head) is posted to the webhooks as a receipt, and a witness's receipts, the blob store
beyond the catalog, and the audit log's signed heads each catch a cut or a rewrite.

Chains are built the real way (segments stored and chained, heads signed) from random
bytes, with no media; the webhook receiver is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from compliance.alerts import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    verify_signature,
)
from core.settings import Settings
from core.timeutil import iso, utc_now
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage import audit
from storage.blob_keys import audit_head_key, entry_key, segment_key, signature_key
from storage.blobs.protocol import sha256_file
from storage.catalog import OutboxEvent
from storage.chain import ClosedSegment
from storage.receipts import parse_receipts
from storage.signing import FORMAT, canonical_bytes, check_signature
from storage.stores import Stores, open_stores
from tests.support.apiserver import running_api
from tests.support.cli import cli_in_process
from tests.support.searchdata import SHOP, T0, add_stream
from tests.support.webhook_receiver import Received, WebhookReceiver

SECRET = "a-witness-secret-0123456789"


@pytest.fixture
def witnessed(home: Path, receiver: WebhookReceiver) -> Iterator[Stores]:
    """Stores whose webhook is the receiver; the audit head is signed every 5 events."""
    with open_stores(Settings(home=home, audit_sign_every_events=5)) as opened:
        opened.catalog.add_webhook(receiver.url, SECRET)
        yield opened


def deliver(stores: Stores) -> int:
    notifier = WebhookNotifier(stores.catalog, stores.settings)
    try:
        return notifier.deliver_due()
    finally:
        notifier.close()


def append_segments(stores: Stores, tmp: Path, name: str, first: int, count: int) -> None:
    """Chain ``count`` segments of random bytes (10 s each) after ``first`` - 1."""
    stream_id = stores.chain.open_stream(name)
    for seq in range(first, first + count):
        path = tmp / f"{name}-{seq}-{os.urandom(4).hex()}.ts"
        path.write_bytes(os.urandom(512))
        closed = ClosedSegment(
            path,
            sha256_file(path),
            512,
            T0 + timedelta(seconds=10 * seq),
            10.0,
            f"test/{path.name}",
        )
        stores.chain.append_segment(stream_id, name, closed)


def record_stream(stores: Stores, tmp: Path) -> None:
    """Five entries, heads signed at 0 and 2 while live and at 4 when it stopped: four
    segments and the session's end entry, as every clean stop writes."""
    stream_id = stores.chain.open_stream("shop")
    stores.catalog.set_status(stream_id, "recording")
    for first, count in ((0, 1), (1, 2), (3, 1)):
        append_segments(stores, tmp, "shop", first, count)
        if first == 3:
            end_entry(stores, stream_id)
        stores.chain.sign_head(stream_id, "shop")
    stores.catalog.set_status(stream_id, "stopped")


def end_entry(stores: Stores, stream_id: int) -> None:
    head = stores.catalog.head(stream_id)
    assert head is not None
    stores.chain.append_end(stream_id, "shop", "stopped", head.ends_at)


def cut_back(stores: Stores, keep: int, *, blobs: bool = True) -> None:
    """What the opposing party did: drop the entries from ``keep`` on, their segments and
    signatures, from the blob store (when ``blobs``) and the catalog."""
    stream_id = stores.catalog.get_stream("shop").id
    heads = [s.head_idx for s in stores.catalog.signatures(stream_id)]
    if blobs:
        last = stores.catalog.head(stream_id)
        assert last is not None
        root = stores.settings.blobs_dir
        for idx in range(keep, last.idx + 1):
            (root / entry_key("shop", idx)).unlink()
            (root / segment_key("shop", idx)).unlink(missing_ok=True)  # none for the end
        for head in heads:
            if head >= keep:
                (root / signature_key("shop", head)).unlink()
    with sqlite3.connect(stores.settings.home / "catalog.sqlite3") as db:
        for table, column in (
            ("manifest_entries", "idx"),
            ("segments", "seq"),
            ("jobs", "segment_seq"),
            ("signatures", "head_idx"),
        ):
            db.execute(
                f"DELETE FROM {table} WHERE stream_id = ? AND {column} >= ?", (stream_id, keep)
            )
        db.execute(
            "DELETE FROM webhook_deliveries WHERE event = 'chain.head' AND subject = 'shop'"
            " AND CAST(summary AS INTEGER) >= ?",
            (keep,),
        )
        db.execute("DELETE FROM receipts WHERE subject = 'shop' AND head_idx >= ?", (keep,))


def head_payloads(received: list[Received], event: str) -> list[dict[str, Any]]:
    return [r.payload for r in received if r.payload["event"] == event]


def write_receipts(tmp: Path, received: list[Received]) -> Path:
    """The witness's file: every payload it got, one JSON line each."""
    path = tmp / "receipts.jsonl"
    path.write_text("".join(r.body.decode() + "\n" for r in received), encoding="utf-8")
    return path


# -- chain.head receipts -----------------------------------------------------------------
def test_every_signed_head_reaches_the_webhook_as_a_signed_receipt(
    witnessed: Stores, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    record_stream(witnessed, tmp_path)
    assert deliver(witnessed) == 3
    assert deliver(witnessed) == 0  # each receipt is posted once
    got = receiver.wait_for(3, timeout=10)
    heads = head_payloads(got, "chain.head")
    assert [h["head_index"] for h in heads] == [0, 2, 4]
    entries = witnessed.catalog.entries(witnessed.catalog.get_stream("shop").id)
    public_key = witnessed.chain.signer.public_key
    for head, received in zip(heads, got, strict=True):
        headers = {k.lower(): v for k, v in received.headers.items()}
        assert headers[EVENT_HEADER.lower()] == "chain.head"
        assert headers[DELIVERY_HEADER.lower()].isdigit()
        assert verify_signature(
            SECRET,
            headers[TIMESTAMP_HEADER.lower()],
            received.body,
            headers[SIGNATURE_HEADER.lower()],
        )
        assert head["stream"] == "shop" and head["key_id"] == witnessed.chain.signer.key_id
        assert head["head_sha256"] == entries[head["head_index"]].sha256
        assert head["blob_key"] == signature_key("shop", head["head_index"])
        # The record is the stored signature, byte for byte, and it verifies on its own.
        stored = witnessed.blobs.get_bytes(str(head["blob_key"]))
        assert canonical_bytes(head["signature"], FORMAT) == stored
        assert check_signature(head["signature"], public_key)
    deliveries = witnessed.catalog.deliveries(event="chain.head")
    assert [d.status for d in deliveries] == ["delivered"] * 3


def test_a_chain_cut_back_to_an_earlier_signed_head_fails_against_the_receipts(
    witnessed: Stores, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    home = witnessed.settings.home
    record_stream(witnessed, tmp_path)
    deliver(witnessed)
    receipts = write_receipts(tmp_path, receiver.wait_for(3, timeout=10))
    assert (
        cli_in_process(home, "verify", "--stream", "shop", "--receipts", str(receipts)).exit_code
        == 0
    )

    cut_back(witnessed, keep=3)  # back to the periodic signature of entry 2
    plain = cli_in_process(home, "verify", "--stream", "shop", "--json")
    with_receipts = cli_in_process(home, "verify", "--stream", "shop", "--receipts", str(receipts))
    assert with_receipts.exit_code == 1, with_receipts.output
    assert "FAILED" in with_receipts.output and "Traceback" not in with_receipts.output
    assert entry_key("shop", 4) in with_receipts.output  # the missing head, by name
    assert "chain.head 4 of 'shop'" in with_receipts.output
    assert "cut back to 3 entries" in with_receipts.output
    # The cut took the session's end entry with it: that alone fails plain verify.
    assert plain.exit_code == 1 and "no end entry" in plain.output, plain.output

    # The same receipts given to the API as a JSON array: 409 naming the head.
    array = json.dumps([json.loads(line) for line in receipts.read_text().splitlines()])
    with running_api(witnessed) as server, server.client("case-system") as client:
        refused = client.post("/api/v1/streams/shop/verify", json={"receipts": json.loads(array)})
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"] == "IntegrityError"
        assert entry_key("shop", 4) in refused.json()["error"]
        earlier = [r for r in json.loads(array) if r["head_index"] <= 2]
        kept = client.post("/api/v1/streams/shop/verify", json={"receipts": earlier})
        # The heads a witness holds up to 2 are all there; the missing end still fails.
        assert kept.status_code == 409 and "no end entry" in kept.json()["error"], kept.text
        bad = client.post(
            "/api/v1/streams/shop/verify", json={"receipts": [{"event": "chain.head"}]}
        )
        assert bad.status_code == 400 and "signed record" in bad.json()["error"]


def test_a_rewritten_chain_fails_against_the_receipts(
    witnessed: Stores, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    home = witnessed.settings.home
    record_stream(witnessed, tmp_path)
    deliver(witnessed)
    receipts = write_receipts(tmp_path, receiver.wait_for(3, timeout=10))
    cut_back(witnessed, keep=3)
    # Re-recorded from entry 3 with other bytes and signed again with the installation's
    # own key: a consistent chain, but not the one the witness saw.
    stream_id = witnessed.catalog.get_stream("shop").id
    append_segments(witnessed, tmp_path, "shop", 3, 1)
    end_entry(witnessed, stream_id)
    witnessed.chain.sign_head(stream_id, "shop")
    assert cli_in_process(home, "verify", "--stream", "shop").exit_code == 0
    rewritten = cli_in_process(home, "verify", "--stream", "shop", "--receipts", str(receipts))
    assert rewritten.exit_code == 1, rewritten.output
    assert entry_key("shop", 4) in rewritten.output and "rewritten" in rewritten.output


def test_deleted_catalog_rows_fail_verify_without_receipts(
    witnessed: Stores, tmp_path: Path
) -> None:
    home = witnessed.settings.home
    record_stream(witnessed, tmp_path)
    cut_back(witnessed, keep=3, blobs=False)  # the blobs stay: the store is immutable
    failed = cli_in_process(home, "verify", "--stream", "shop")
    assert failed.exit_code == 1, failed.output
    assert entry_key("shop", 3) in failed.output and "catalog rows were deleted" in failed.output
    # Only the last signature's row gone: its stored blob still names the lost head.
    other = tmp_path / "other"
    with open_stores(Settings(home=other)) as stores:
        record_stream(stores, tmp_path)
        with sqlite3.connect(other / "catalog.sqlite3") as db:
            db.execute("DELETE FROM signatures WHERE head_idx = 4")
    lost = cli_in_process(other, "verify", "--stream", "shop")
    assert lost.exit_code == 1 and signature_key("shop", 4) in lost.output, lost.output


def test_a_stream_still_recording_only_notes_unindexed_entries(
    witnessed: Stores, tmp_path: Path
) -> None:
    record_stream(witnessed, tmp_path)
    stream_id = witnessed.catalog.get_stream("shop").id
    cut_back(witnessed, keep=4, blobs=False)
    witnessed.catalog.set_status(stream_id, "recording")  # a crash mid-append, live
    done = cli_in_process(witnessed.settings.home, "verify", "--stream", "shop", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["notes"] == ["1 stored entries not yet indexed"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no receipts"),
        ("[1, 2", "is not a JSON array"),
        ('{"event": "chain.head"}\n', "line 1: chain.head receipt without its signed record"),
        ("{}\nnot json\n", "line 2 is not JSON"),
        ('["x"]', "item 1 is not a JSON object"),
        ('[{"event": "chain.head", "signature": {"payload": {}}}]', "item 1: head_index"),
    ],
)
def test_bad_receipt_files_are_one_line_and_exit_2(
    home: Path, tmp_path: Path, text: str, message: str
) -> None:
    with open_stores(Settings(home=home)) as stores:
        append_segments(stores, tmp_path, "shop", 0, 1)
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    done = cli_in_process(home, "verify", "--stream", "shop", "--receipts", str(path))
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1


def test_a_receipt_not_signed_by_this_installation_fails(
    witnessed: Stores, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    record_stream(witnessed, tmp_path)
    deliver(witnessed)
    payloads = head_payloads(receiver.wait_for(3, timeout=10), "chain.head")
    forged = next(p for p in payloads if p["head_index"] == 4)
    forged["signature"]["signature"] = base64.b64encode(
        Ed25519PrivateKey.generate().sign(b"something else")
    ).decode()
    path = tmp_path / "forged.json"
    path.write_text(json.dumps([forged]), encoding="utf-8")
    (receipt,) = parse_receipts(path.read_text(), str(path))
    assert receipt.head == 4
    done = cli_in_process(
        witnessed.settings.home, "verify", "--stream", "shop", "--receipts", str(path)
    )
    assert done.exit_code == 1 and "does not verify" in done.output, done.output


# -- the audit log's signed heads --------------------------------------------------------
def fill_audit(stores: Stores, count: int) -> audit.AuditLog:
    log = audit.AuditLog(stores.catalog, stores.blobs, stores.chain.signer, stores.settings)
    for n in range(count):
        log.record("key 1 (anna, reviewer)", "reviewer", "search", {"q": f"包邮 {n}"})
    return log


def check(stores: Stores) -> audit.AuditCheck:
    return audit.verify_audit(stores.catalog, stores.blobs, stores.chain.signer.public_key)


def test_audit_heads_are_signed_every_n_events_and_at_stop_and_posted(
    witnessed: Stores, receiver: WebhookReceiver
) -> None:
    log = fill_audit(witnessed, 12)
    assert [k for k in witnessed.blobs.list("audit/heads/")] == [
        audit_head_key(5),
        audit_head_key(10),
    ]
    stop = threading.Event()
    stop.set()
    log.follow(stop)  # a stopping API signs the head once more
    assert log.sign_head() is None  # and not twice
    assert deliver(witnessed) == 3
    heads = head_payloads(receiver.wait_for(3, timeout=10), "audit.head")
    assert [h["head_seq"] for h in heads] == [5, 10, 12]
    events = {e.seq: e.sha256 for e in witnessed.catalog.audit_events()}
    for head in heads:
        assert head["head_sha256"] == events[head["head_seq"]]
        assert check_signature(head["signature"], witnessed.chain.signer.public_key)
    result = check(witnessed)
    assert (result.ok, result.events, result.heads, result.signed_seq) == (True, 12, 3, 12)


def test_deleting_the_audit_logs_last_rows_fails(witnessed: Stores) -> None:
    fill_audit(witnessed, 10)
    with sqlite3.connect(witnessed.settings.home / "catalog.sqlite3") as db:
        db.execute("DELETE FROM audit_events WHERE seq = 10")
    assert audit.verify_audit(witnessed.catalog).ok  # the hash chain alone cannot tell
    result = check(witnessed)
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "events were deleted" in str(result.problem) and audit_head_key(10) in str(
        result.problem
    )


def test_rewriting_the_audit_log_with_recomputed_hashes_fails(witnessed: Stores) -> None:
    fill_audit(witnessed, 10)
    rows = list(witnessed.catalog.audit_events())
    prev = audit.GENESIS
    with sqlite3.connect(witnessed.settings.home / "catalog.sqlite3") as db:
        for row in rows:
            details = json.dumps({"q": "别的"}) if row.seq == 3 else row.details
            digest = audit.event_digest(
                row.seq,
                iso(row.at),
                row.actor,
                row.role,
                row.action,
                details,
                prev,
                row.format_version or 1,
            )
            db.execute(
                "UPDATE audit_events SET details = ?, prev_sha256 = ?, sha256 = ? WHERE seq = ?",
                (details, prev, digest, row.seq),
            )
            prev = digest
    assert audit.verify_audit(witnessed.catalog).ok  # a consistent chain again
    result = check(witnessed)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "rewritten" in str(result.problem)


def test_a_forged_audit_head_fails(witnessed: Stores) -> None:
    fill_audit(witnessed, 7)
    last = witnessed.catalog.last_audit_event()
    assert last is not None
    payload = {
        "log": "audit",
        "head_seq": last.seq,
        "head_sha256": last.sha256,
        "signed_at": iso(utc_now()),
        "key_id": witnessed.chain.signer.key_id,
        "v": FORMAT,
    }
    other_key = Ed25519PrivateKey.generate()
    forged = {
        "payload": payload,
        "signature": base64.b64encode(other_key.sign(canonical_bytes(payload, FORMAT))).decode(),
    }
    witnessed.blobs.put_bytes(audit_head_key(last.seq), canonical_bytes(forged, FORMAT))
    result = check(witnessed)
    assert (result.ok, result.first_bad_seq) == (False, 7)
    assert "forged" in str(result.problem)


def test_audit_verify_route_reports_the_heads_and_takes_receipts(
    witnessed: Stores, receiver: WebhookReceiver
) -> None:
    with running_api(witnessed) as server, server.client("admin") as admin:
        for n in range(6):  # audited: the fifth event's head is signed as it comes
            made = admin.post("/api/v1/keys", json={"role": "reviewer", "name": f"k{n}"})
            assert made.status_code == 201, made.text
        deliver(witnessed)
        receipts = head_payloads(receiver.wait_for(1, timeout=10), "audit.head")
        answer = admin.get("/api/v1/audit/verify").json()
        assert answer["ok"] is True and answer["heads"] == 1 and answer["signed_seq"] == 5
        with sqlite3.connect(witnessed.settings.home / "catalog.sqlite3") as db:
            db.execute("DELETE FROM audit_events WHERE seq >= 5")
        (witnessed.settings.blobs_dir / audit_head_key(5)).unlink()  # the local copy too
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True
        posted = admin.post("/api/v1/audit/verify", json={"receipts": receipts}).json()
        assert posted["ok"] is False and posted["first_bad_seq"] == 5
        assert "audit.head 5" in posted["problem"]


# -- today's alerts, through the generalised notifier ------------------------------------
def test_alert_payloads_are_posted_as_today(
    witnessed: Stores, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    add_stream(witnessed, tmp_path, "live", SHOP, utc_now() - timedelta(seconds=30))
    index = open_search_index(witnessed)
    try:
        Indexer(witnessed, index).index_pending()
    finally:
        index.close()
    alerts = list(witnessed.catalog.deliveries(event="banned_word"))
    assert alerts, "SHOP says 全网最低价: a banned word on a live stream"
    assert deliver(witnessed) == len(alerts)
    got = receiver.wait_for(len(alerts), timeout=10)
    for alert, received in zip(alerts, got, strict=True):
        headers = {k.lower(): v for k, v in received.headers.items()}
        assert headers[EVENT_HEADER.lower()] == "banned_word"
        assert headers[DELIVERY_HEADER.lower()].isdigit()
        assert received.body == alert.body.encode()  # the stored body, as before
        assert set(received.payload) == {
            "event",
            "stream",
            "streamer",
            "term",
            "category",
            "severity",
            "source",
            "heard",
            "match",
            "at",
            "offset",
            "end_offset",
            "text",
            "words",
            "lexicon_version",
            "link",
        }
        assert received.payload["event"] == "banned_word"


def test_no_single_delivery_stops_the_others_and_each_outcome_is_logged(
    witnessed: Stores, receiver: WebhookReceiver
) -> None:
    """A webhook URL httpx cannot even parse (registered before URLs were checked, or
    changed in the catalog) is an attempt that failed, logged and retried per the
    schedule, while the other webhooks get their events."""
    bad = witnessed.catalog.add_webhook("http://[::1/", "another-secret-0123456789ab")
    witnessed.catalog.queue_events(
        [OutboxEvent("banned_word", "shop", "全网最低价", '{"event": "banned_word"}')]
    )
    assert deliver(witnessed) == 1
    assert [r.payload for r in receiver.wait_for(1, timeout=10)] == [{"event": "banned_word"}]
    (failed,) = [d for d in witnessed.catalog.deliveries(bad.id) if d.event == "banned_word"]
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert failed.last_error is not None and failed.last_error.startswith("invalid URL")
    assert json.loads(failed.log)[0]["error"] == failed.last_error
    assert failed.next_attempt_at > failed.created_at  # backed off, not given up yet

    # Given up after the last attempt the schedule allows.
    last = witnessed.settings.model_copy(update={"webhook_max_attempts": 2})
    notifier = WebhookNotifier(
        witnessed.catalog, last, clock=lambda: utc_now() + timedelta(hours=1)
    )
    try:
        notifier.deliver_due()
    finally:
        notifier.close()
    (failed,) = [d for d in witnessed.catalog.deliveries(bad.id) if d.event == "banned_word"]
    assert (failed.status, failed.attempts) == ("failed", 2)
