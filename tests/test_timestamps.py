"""Trusted time: every signed head is stamped by real RFC 3161 TSAs on 127.0.0.1 (openssl
ts -reply, tests/support/tsa.py); tokens are checked on arrival, stored and indexed,
checked by verify and packaged so that the README's own openssl commands verify them.
TSAs that are down, answer garbage, stamp another message or chain to another CA give no
token, are counted and asked again later, and recording never waits for them."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ConfigError, IntegrityError
from core.settings import Settings
from evidence.package import build_package
from evidence.package_verify import verify_package
from evidence.verify import VerifyReport, verify_stream
from storage.audit import AuditLog, verify_audit
from storage.blobs.protocol import sha256_bytes
from storage.metrics import metrics_registry
from storage.models import Signature
from storage.stores import Stores, open_stores
from storage.timestamping import Stamper, stamped_bytes, tsa_id, tsa_label
from tests.support.cli import run_cli
from tests.support.media import free_port
from tests.support.moments import T0, one_line, record
from tests.support.packages import members, reseal
from tests.support.tsa import LocalTsa, TsaPki, closed_url, make_tsa_pki

SINCE = T0 + timedelta(seconds=8.5)
UNTIL = T0 + timedelta(seconds=19.0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TsaPki:
    return make_tsa_pki(tmp_path_factory.mktemp("tsa-pki"))


@pytest.fixture(scope="module")
def tsa(pki: TsaPki) -> Iterator[LocalTsa]:
    with LocalTsa(pki) as running:
        yield running


def tsa_settings(home: Path, pki: TsaPki | None, *urls: str, **more: object) -> Settings:
    return Settings(
        home=home,
        tsa_urls=list(urls),
        tsa_ca_bundle=pki.ca_pem if pki else None,
        **more,  # type: ignore[arg-type]
    )


def sign_new_head(stores: Stores, name: str = "shop") -> Signature:
    """One more (gap) entry on the stream's chain, and its head signed."""
    sid = stores.chain.open_stream(name)
    head = stores.catalog.head(sid)
    start = T0 if head is None else head.ends_at
    stores.chain.append_gap(sid, name, start, start + timedelta(seconds=10), "test")
    signature = stores.chain.sign_head(sid, name)
    assert signature is not None
    return signature


def verify(stores: Stores, ca: Path | None, name: str = "shop") -> VerifyReport:
    return verify_stream(
        stores.catalog,
        stores.blobs,
        stores.settings.signing_keys_dir,
        name,
        tsa_ca_bundle=ca,
    )


def ts_verify(data: Path, token: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(data), "-in", str(token), "-CAfile", str(ca)],
        capture_output=True,
        text=True,
    )


def sample(stores: Stores, name: str, labels: dict[str, str]) -> float:
    value = metrics_registry(stores.catalog).get_sample_value(name, labels)
    return value or 0.0


def failures(stores: Stores, url: str, reason: str) -> float:
    labels = {"tsa": tsa_label(url), "reason": reason}
    return sample(stores, "livewitness_timestamp_failures_total", labels)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll until ``condition`` holds; fails (not a speed check) after a generous limit."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)


def flip_in_tst_info(raw: bytes, when: str) -> bytes:
    """The token with one bit changed in its genTime: inside what the TSA signed."""
    at = raw.index(when.encode())
    return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]


def rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


# -- stamping ----------------------------------------------------------------------------
def test_a_signed_head_is_stamped_checked_stored_and_indexed(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        first = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        assert stamper.stamp_pending() == 1
        asked = tsa.requests
        assert stamper.stamp_pending() == 0 and tsa.requests == asked  # once per head

        (row,) = stores.catalog.timestamp_tokens(first.stream_id)
        key = f"streams/shop/timestamps/{first.head_idx:08d}.{tsa_id(tsa.url)}.tsr"
        assert (row.head_idx, row.blob_key, row.tsa_url) == (first.head_idx, key, tsa.url)
        raw = stores.blobs.get_bytes(key)
        message = stamped_bytes(stores.blobs.get_bytes(first.blob_key))
        assert json.loads(message)["head_sha256"] == first.head_sha256
        assert row.sha256 == sha256_bytes(raw)
        assert row.imprint == hashlib.sha256(message).hexdigest()
        assert row.gen_time.tzinfo == UTC
        assert abs(row.gen_time - first.signed_at) < timedelta(minutes=5)
        assert sample(stores, "livewitness_timestamps_stored_total", {"tsa": tsa_label(tsa.url)})

        # OpenSSL alone agrees: the token stamps the signed bytes and chains to the CA.
        (tmp_path / "head.msg").write_bytes(message)
        (tmp_path / "head.tsr").write_bytes(raw)
        checked = ts_verify(tmp_path / "head.msg", tmp_path / "head.tsr", pki.ca_pem)
        assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr

        second = sign_new_head(stores)
        assert stamper.stamp_pending() == 1
        report = verify(stores, pki.ca_pem)
        assert (report.timestamps, report.stamped_head) == (2, second.head_idx)
        assert report.stamped_at is not None and report.stamped_at >= row.gen_time
        stamper.close()


def test_every_tsa_is_asked_and_bad_answers_are_counted_not_stored(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    other_ca = make_tsa_pki(tmp_path / "other-pki", "Other TSA")
    with (
        LocalTsa(pki, mode="garbage") as garbage,
        LocalTsa(pki, mode="mismatch") as mismatch,
        LocalTsa(pki, mode="refused") as refused,
        LocalTsa(other_ca) as untrusted,
    ):
        down = closed_url()
        urls = (down, garbage.url, mismatch.url, refused.url, untrusted.url, tsa.url)
        settings = tsa_settings(tmp_path / "home", pki, *urls)
        with open_stores(settings) as stores:
            signature = sign_new_head(stores)
            stamper = Stamper(settings, stores.catalog, stores.blobs)
            assert stamper.stamp_pending() == 1
            stamper.close()
            (row,) = stores.catalog.timestamp_tokens(signature.stream_id)
            assert row.tsa_url == tsa.url
            assert list(stores.blobs.list("streams/shop/timestamps/")) == [row.blob_key]
            bad = (garbage, mismatch, refused, untrusted)
            assert [t.requests for t in bad] == [1, 1, 1, 1]
            assert failures(stores, down, "unreachable") == 1
            assert failures(stores, garbage.url, "garbage") == 1
            assert failures(stores, mismatch.url, "mismatch") == 1
            assert failures(stores, refused.url, "refused") == 1
            assert failures(stores, untrusted.url, "untrusted") == 1
            assert failures(stores, tsa.url, "mismatch") == 0


def test_a_failing_tsa_is_asked_again_after_a_doubling_bounded_wait(
    tmp_path: Path, pki: TsaPki
) -> None:
    now = [0.0]
    with LocalTsa(pki, mode="garbage") as flaky:
        settings = tsa_settings(
            tmp_path / "home",
            pki,
            flaky.url,
            tsa_retry_initial_seconds=5.0,
            tsa_retry_max_seconds=20.0,
        )
        with open_stores(settings) as stores:
            signature = sign_new_head(stores)
            stamper = Stamper(settings, stores.catalog, stores.blobs, clock=lambda: now[0])
            # Waits of 5, 10, 20, then 20 again (bounded): asked at 0, 5, 15, 35 and 55.
            asked_at = []
            for tick in range(0, 600):
                now[0] = tick / 10
                before = flaky.requests
                stamper.stamp_pending()
                if flaky.requests != before:
                    asked_at.append(now[0])
            assert asked_at == [0.0, 5.0, 15.0, 35.0, 55.0]
            assert failures(stores, flaky.url, "garbage") == 5

            flaky.mode = "ok"  # it comes back: the next try after the wait gets the token
            now[0] = 74.9
            assert stamper.stamp_pending() == 0
            now[0] = 75.0
            assert stamper.stamp_pending() == 1
            stamper.close()
            (row,) = stores.catalog.timestamp_tokens(signature.stream_id)
            assert row.head_idx == signature.head_idx


def test_recording_goes_on_while_the_tsa_is_down_and_the_token_arrives_once_it_is_up(
    tmp_path: Path, pki: TsaPki, test_video: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tsr"
    settings = tsa_settings(
        tmp_path / "home",
        pki,
        url,
        tsa_retry_initial_seconds=0.2,
        tsa_retry_max_seconds=0.5,
    )
    with open_stores(settings) as stores:
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        stop = threading.Event()
        stamping = threading.Thread(target=stamper.follow, args=(stop,), daemon=True)
        stamping.start()
        later = LocalTsa(pki, port=port)
        try:
            segments = record(stores, test_video)  # the TSA is down all the while
            stream = stores.catalog.get_stream("shop")
            head = stores.catalog.head(stream.id)
            assert len(segments) == 5 and head is not None
            assert [s.head_idx for s in stores.catalog.signatures(stream.id)] == [head.idx]
            wait_for(lambda: failures(stores, url, "unreachable") >= 1, 30, "a failed try")
            assert stores.catalog.timestamp_tokens(stream.id) == []

            later.start()
            wait_for(lambda: bool(stores.catalog.timestamp_tokens(stream.id)), 60, "the token")
        finally:
            stop.set()
            stamping.join(30)
            later.stop()
        assert not stamping.is_alive()
        (row,) = stores.catalog.timestamp_tokens(stream.id)
        assert row.head_idx == head.idx  # the stopped stream's last head, still its head
        report = verify(stores, pki.ca_pem)
        assert (report.timestamps, report.stamped_head, report.signed_head) == (
            1,
            head.idx,
            head.idx,
        )


def test_a_tsa_password_is_sent_but_never_stored(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    secret_url = tsa.url.replace("http://", "http://lw:s3cret@")
    settings = tsa_settings(tmp_path / "home", pki, secret_url)
    with open_stores(settings) as stores:
        signature = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        assert stamper.stamp_pending() == 1
        stamper.close()
        assert tsa.authorization == "Basic " + base64.b64encode(b"lw:s3cret").decode()
        (row,) = stores.catalog.timestamp_tokens(signature.stream_id)
        assert row.tsa_url == tsa.url and row.tsa_id == tsa_id(tsa.url)  # a TSA, same id
        assert tsa_label(secret_url) == tsa_label(tsa.url)  # logs and metrics


# -- verify ------------------------------------------------------------------------------
def test_verify_names_a_changed_missing_or_untrusted_token(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        stamper.stamp_pending()
        stamper.close()
        (row,) = stores.catalog.timestamp_tokens(stores.catalog.get_stream("shop").id)
        path = settings.blobs_dir / row.blob_key
        original = path.read_bytes()
        assert verify(stores, pki.ca_pem).timestamps == 1

        # A changed bit inside what the TSA signed: its signature no longer verifies.
        rewrite(path, flip_in_tst_info(original, row.gen_time.strftime("%Y%m%d%H%M%S")))
        with pytest.raises(IntegrityError) as caught:
            verify(stores, pki.ca_pem)
        assert caught.value.artifact == row.blob_key
        assert "time-stamp token" in one_line(caught.value)
        # A flipped byte anywhere is named too (the index holds the token's SHA-256).
        for at in range(0, len(original), max(1, len(original) // 25)):
            rewrite(path, original[:at] + bytes([original[at] ^ 0xFF]) + original[at + 1 :])
            with pytest.raises(IntegrityError) as caught:
                verify(stores, None)
            assert caught.value.artifact == row.blob_key, at
        rewrite(path, original)

        # Against another CA it does not verify; without a CA it is checked against its head.
        other = make_tsa_pki(tmp_path / "other-pki", "Other TSA")
        with pytest.raises(IntegrityError, match="does not verify against the TSA CA"):
            verify(stores, other.ca_pem)
        unchained = verify(stores, None)
        assert unchained.timestamps == 1
        assert any("not against a TSA CA" in note for note in unchained.notes)

        path.unlink()
        with pytest.raises(IntegrityError) as caught:
            verify(stores, pki.ca_pem)
        assert (caught.value.artifact, caught.value.problem) == (
            row.blob_key,
            "time-stamp token is missing",
        )


def test_cli_verify_reports_the_tokens_and_names_a_changed_one(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    home = tmp_path / "home"
    settings = tsa_settings(home, pki, tsa.url)
    with open_stores(settings) as stores:
        signature = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        stamper.stamp_pending()
        stamper.close()
        (row,) = stores.catalog.timestamp_tokens(signature.stream_id)
    ca = {"LIVEWITNESS_TSA_CA_BUNDLE": str(pki.ca_pem)}
    ok = run_cli(home, "verify", "--stream", "shop", **ca)
    assert ok.returncode == 0, ok.stderr
    assert (
        f"1 time-stamps, 0 listed in the chain (head {signature.head_idx} stamped at" in ok.stdout
    )
    path = settings.blobs_dir / row.blob_key
    rewrite(path, flip_in_tst_info(path.read_bytes(), row.gen_time.strftime("%Y%m%d%H%M%S")))
    failed = run_cli(home, "verify", "--stream", "shop", **ca)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    (line,) = [line for line in failed.stderr.splitlines() if line.strip()]
    assert line.startswith(f"FAILED {row.blob_key}: time-stamp token ")


def test_a_token_over_another_head_is_named(tmp_path: Path, pki: TsaPki, tsa: LocalTsa) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        first = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        stamper.stamp_pending()
        second = sign_new_head(stores)  # not stamped: no TSA is asked again here
        stamper.close()
        (row,) = stores.catalog.timestamp_tokens(first.stream_id)
        moved = row.blob_key.replace(f"/{first.head_idx:08d}.", f"/{second.head_idx:08d}.")
        stores.blobs.put_bytes(moved, stores.blobs.get_bytes(row.blob_key))
        with pytest.raises(IntegrityError) as caught:
            verify(stores, pki.ca_pem)
        assert caught.value.artifact == moved
        assert "does not stamp the SHA-256 of the signed head" in caught.value.problem


# -- settings ----------------------------------------------------------------------------
def test_tsa_settings_take_http_urls_only_and_a_readable_ca_bundle(tmp_path: Path) -> None:
    listed = Settings(home=tmp_path, tsa_urls="http://a.test/tsr, https://b.test:8443/x")  # type: ignore[arg-type]
    assert listed.tsa_urls == ["http://a.test/tsr", "https://b.test:8443/x"]
    assert Settings(home=tmp_path, tsa_urls='["https://a.test/"]').tsa_urls == ["https://a.test/"]  # type: ignore[arg-type]
    assert Settings(home=tmp_path).tsa_urls == []  # the embedded default stays offline
    for bad in ("file:///etc/passwd", "ftp://tsa.test/", "https://", "tsa.test/tsr"):
        with pytest.raises(ValidationError, match="http:// or https://"):
            Settings(home=tmp_path, tsa_urls=[bad])

    missing = tsa_settings(tmp_path / "home", None, "http://127.0.0.1:9/tsr")
    missing = missing.model_copy(update={"tsa_ca_bundle": tmp_path / "nowhere.pem"})
    with open_stores(missing) as stores, pytest.raises(ConfigError) as caught:
        Stamper(missing, stores.catalog, stores.blobs)
    assert "nowhere.pem" in one_line(caught.value)
    (tmp_path / "empty.pem").write_text("no certificates here\n")
    empty = missing.model_copy(update={"tsa_ca_bundle": tmp_path / "empty.pem"})
    with open_stores(empty) as stores, pytest.raises(ConfigError, match="holds no PEM"):
        Stamper(empty, stores.catalog, stores.blobs)


def test_serve_and_recorder_start_a_stamper_only_where_tsas_are_configured(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    from cli.serve import _stage_stamper

    with open_stores(Settings(home=tmp_path / "offline")) as stores:
        assert _stage_stamper(stores) == []
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        ((name, follow),) = _stage_stamper(stores)
        stop = threading.Event()
        stage = threading.Thread(target=follow, args=(stop,), daemon=True)
        stage.start()
        signature = sign_new_head(stores)  # wakes it: no need to wait for a rescan
        try:
            wait_for(
                lambda: bool(stores.catalog.timestamp_tokens(signature.stream_id)), 20, "a token"
            )
        finally:
            stop.set()
            stage.join(30)
        assert name == "stamper" and not stage.is_alive()


# -- tokens in the chain, audit heads, witnesses ------------------------------------------
def test_the_next_entry_lists_a_token_and_a_removed_listed_token_fails_verify(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        first = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        assert stamper.stamp_pending() == 1
        (row,) = stores.catalog.timestamp_tokens(first.stream_id)
        assert row.referenced_idx is None  # no entry after the head yet
        second = sign_new_head(stores)
        entry = json.loads(
            (settings.blobs_dir / "streams/shop/manifest/00000001.json").read_bytes()
        )
        assert entry["timestamps"] == [
            {
                "head_index": first.head_idx,
                "tsa_id": tsa_id(tsa.url),
                "blob_key": row.blob_key,
                "sha256": row.sha256,
                "gen_time": row.gen_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
        ]
        (listed,) = stores.catalog.timestamp_tokens(first.stream_id, first.head_idx)
        assert listed.referenced_idx == second.head_idx
        assert stamper.stamp_pending() == 1  # the new head
        stamper.close()
        report = verify(stores, pki.ca_pem)
        assert (report.timestamps, report.timestamps_referenced) == (2, 1)
        third = sign_new_head(stores)  # lists the second head's token only
        entry = json.loads(
            (settings.blobs_dir / "streams/shop/manifest/00000002.json").read_bytes()
        )
        assert [ref["head_index"] for ref in entry["timestamps"]] == [second.head_idx]
        assert third.head_idx == 2

        # Removed from the store and the index alike: only the chain can tell.
        with sqlite3.connect(settings.home / "catalog.sqlite3") as db:
            db.execute("DELETE FROM timestamp_tokens WHERE id = ?", (row.id,))
        (settings.blobs_dir / row.blob_key).unlink()
        with pytest.raises(IntegrityError) as caught:
            verify(stores, pki.ca_pem)
        assert caught.value.artifact == row.blob_key
        assert "listed in entry 1 is missing" in one_line(caught.value)


def test_audit_heads_are_stamped_and_audit_verification_checks_their_tokens(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        log = AuditLog(stores.catalog, stores.blobs, stores.chain.signer, settings)
        for n in range(3):
            log.record("key 1 (anna, reviewer)", "reviewer", "search", {"q": f"包邮 {n}"})
        head = log.sign_head()
        assert head is not None
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        assert stamper.stamp_pending() == 1
        stamper.close()
        (row,) = stores.catalog.timestamp_tokens(None)
        assert (row.log, row.stream_id, row.head_idx) == ("audit", None, head.seq)
        assert row.blob_key == f"audit/timestamps/{head.seq:012d}.{tsa_id(tsa.url)}.tsr"
        path = settings.blobs_dir / row.blob_key
        # The token stamps the audit head's signed bytes: openssl says so too.
        message = tmp_path / "head.msg"
        message.write_bytes(stamped_bytes(stores.blobs.get_bytes(head.where)))
        assert ts_verify(message, path, pki.ca_pem).returncode == 0

        key = stores.chain.signer.public_key
        check = verify_audit(stores.catalog, stores.blobs, key, tsa_ca_bundle=pki.ca_pem)
        assert check.ok and check.timestamps == 1, check
        original = path.read_bytes()
        rewrite(path, flip_in_tst_info(original, row.gen_time.strftime("%Y%m%d%H%M%S")))
        check = verify_audit(stores.catalog, stores.blobs, key, tsa_ca_bundle=pki.ca_pem)
        assert not check.ok and row.blob_key in str(check.problem), check
        rewrite(path, original)
        path.unlink()
        check = verify_audit(stores.catalog, stores.blobs, key)
        assert not check.ok and row.blob_key in str(check.problem), check


def test_witnesses_get_each_token_as_a_timestamp_event(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    settings = tsa_settings(tmp_path / "home", pki, tsa.url)
    with open_stores(settings) as stores:
        stores.catalog.add_webhook("http://127.0.0.1:9/witness", "a-witness-secret-0123456789")
        signature = sign_new_head(stores)
        stamper = Stamper(settings, stores.catalog, stores.blobs)
        stamper.stamp_pending()
        stamper.stamp_pending()  # nothing new: no second event
        stamper.close()
        (row,) = stores.catalog.timestamp_tokens(signature.stream_id)
        (delivery,) = stores.catalog.deliveries(event="timestamp")
        body = json.loads(delivery.body)
        assert (delivery.subject, body["stream"], body["head_index"]) == (
            "shop",
            "shop",
            signature.head_idx,
        )
        assert body["head_sha256"] == signature.head_sha256
        assert base64.b64decode(body["token"]) == stores.blobs.get_bytes(row.blob_key)
        assert body["token_sha256"] == row.sha256 and body["imprint"] == row.imprint
        head = stores.blobs.get_bytes(signature.blob_key)
        assert body["imprint"] == hashlib.sha256(stamped_bytes(head)).hexdigest()


def test_ingest_stamps_the_heads_it_signs_without_serve(
    tmp_path: Path, pki: TsaPki, tsa: LocalTsa, test_video: Path
) -> None:
    home = tmp_path / "home"
    env = {
        "LIVEWITNESS_TSA_URLS": json.dumps([tsa.url]),
        "LIVEWITNESS_TSA_CA_BUNDLE": str(pki.ca_pem),
    }
    done = run_cli(
        home,
        "ingest",
        str(test_video),
        "--stream",
        "shop",
        "--started-at",
        "2026-11-20T10:00:00Z",
        **env,
    )
    assert done.returncode == 0, done.stderr
    with open_stores(tsa_settings(home, pki, tsa.url)) as stores:
        stream = stores.catalog.get_stream("shop")
        last = stores.catalog.signatures(stream.id)[-1]
        assert stores.catalog.timestamp_tokens(stream.id, last.head_idx), "the last head is stamped"
        assert verify(stores, pki.ca_pem).stamped_head == last.head_idx


# -- evidence packages -------------------------------------------------------------------
@dataclass
class Stamped:
    stores: Stores
    zip: Path
    head: int


@pytest.fixture(scope="module")
def stamped(
    tmp_path_factory: pytest.TempPathFactory, pki: TsaPki, tsa: LocalTsa, test_video: Path
) -> Iterator[Stamped]:
    root = tmp_path_factory.mktemp("stamped-package")
    settings = tsa_settings(root / "home", pki, tsa.url)
    stores = open_stores(settings)
    record(stores, test_video)
    stamper = Stamper(settings, stores.catalog, stores.blobs)
    assert stamper.stamp_pending() == 1
    stamper.close()
    out = root / "evidence.zip"
    info = build_package(stores, "shop", SINCE, UNTIL, out)
    yield Stamped(stores, out, info.entries[1])
    stores.close()


def test_a_package_carries_the_tokens_of_its_signed_head(stamped: Stamped) -> None:
    files = members(stamped.zip)
    token = f"timestamps/{stamped.head:08d}.1.tsr"
    assert {n for n in files if n.startswith("timestamps/")} == {token, "timestamps/tsa-ca.pem"}
    stream = stamped.stores.catalog.get_stream("shop")
    (row,) = stamped.stores.catalog.timestamp_tokens(stream.id)
    assert row.head_idx == stamped.head
    assert files[token] == stamped.stores.blobs.get_bytes(row.blob_key)  # as stored
    description = json.loads(files["package.json"])
    assert description["timestamps"]["tsa_ca"] == "timestamps/tsa-ca.pem"
    (listed,) = description["timestamps"]["tokens"]
    assert (listed["file"], listed["serial"]) == (token, row.serial)
    report = verify_package(stamped.zip)
    assert report.stamped_at == (row.gen_time,)


def test_the_readme_verifies_each_token_with_openssl_alone(
    stamped: Stamped, tmp_path: Path
) -> None:
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(stamped.zip) as archive:
        archive.extractall(root)
    readme = (root / "README.txt").read_text()
    commands = [line.split("$ ", 1)[1] for line in readme.splitlines() if line.startswith("    $ ")]
    token = f"timestamps/{stamped.head:08d}.1.tsr"
    message = f"signatures/{stamped.head:08d}.msg"
    stamp_check = f"openssl ts -verify -data {message} -in {token} -CAfile timestamps/tsa-ca.pem"
    assert commands[-1] == stamp_check
    for command in commands:
        result = subprocess.run(["sh", "-c", command], cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    done = subprocess.run(["sh", "-c", stamp_check], cwd=root, capture_output=True, text=True)
    assert "Verification: OK" in done.stdout

    original = (root / token).read_bytes()
    (tmp_path / "stamp").write_bytes(original)
    rows = stamped.stores.catalog.timestamp_tokens(stamped.stores.catalog.get_stream("shop").id)
    (root / token).write_bytes(flip_in_tst_info(original, rows[0].gen_time.strftime("%Y%m%d")))
    failed = subprocess.run(["sh", "-c", stamp_check], cwd=root, capture_output=True, text=True)
    assert failed.returncode != 0 and "Verification: OK" not in failed.stdout
    (root / token).write_bytes(original)
    msg = root / message
    msg.write_bytes(msg.read_bytes().replace(b'"stream":"shop"', b'"stream":"shoq"'))
    failed = subprocess.run(["sh", "-c", stamp_check], cwd=root, capture_output=True, text=True)
    assert failed.returncode != 0  # the token stamps the head as signed, nothing else


def test_verify_package_names_a_changed_or_foreign_token(
    stamped: Stamped, tmp_path: Path, pki: TsaPki, tsa: LocalTsa
) -> None:
    token = f"timestamps/{stamped.head:08d}.1.tsr"
    signer = stamped.stores.chain.signer
    original = members(stamped.zip)[token]
    gen_time = verify_package(stamped.zip).stamped_at[0].strftime("%Y%m%d%H%M%S")

    changed = {token: flip_in_tst_info(original, gen_time)}
    with pytest.raises(IntegrityError) as caught:
        verify_package(reseal(stamped.zip, tmp_path / "changed.zip", changed, signer, relist=False))
    assert caught.value.artifact == token
    assert "does not verify against the TSA CA" in caught.value.problem

    # A genuine token of the same TSA, over other bytes (another head).
    with open_stores(tsa_settings(tmp_path / "home", pki, tsa.url)) as other:
        signature = sign_new_head(other)
        stamper = Stamper(other.settings, other.catalog, other.blobs)
        stamper.stamp_pending()
        stamper.close()
        (row,) = other.catalog.timestamp_tokens(signature.stream_id)
        foreign = {token: other.blobs.get_bytes(row.blob_key)}
    with pytest.raises(IntegrityError) as caught:
        verify_package(reseal(stamped.zip, tmp_path / "foreign.zip", foreign, signer, relist=False))
    assert (caught.value.artifact, caught.value.problem) == (
        token,
        "does not stamp the SHA-256 of the signed head",
    )

    # Another CA packaged in place of the TSA's: the token does not chain to it.
    rogue = make_tsa_pki(tmp_path / "rogue-pki", "Rogue TSA")
    swapped = {"timestamps/tsa-ca.pem": rogue.ca_pem.read_bytes()}
    with pytest.raises(IntegrityError) as caught:
        verify_package(reseal(stamped.zip, tmp_path / "swapped.zip", swapped, signer, relist=False))
    assert caught.value.artifact == token
    assert "does not verify against the TSA CA" in caught.value.problem
    garbled = {"timestamps/tsa-ca.pem": b"not a certificate\n"}
    with pytest.raises(IntegrityError) as caught:
        verify_package(reseal(stamped.zip, tmp_path / "garbled.zip", garbled, signer, relist=False))
    assert caught.value.artifact == "timestamps/tsa-ca.pem"
    assert "holds no PEM certificates" in caught.value.problem


def test_without_a_ca_bundle_a_package_carries_the_tokens_and_says_what_is_missing(
    stamped: Stamped, tmp_path: Path
) -> None:
    settings = stamped.stores.settings.model_copy(update={"tsa_ca_bundle": None})
    stores = replace(stamped.stores, settings=settings)
    out = tmp_path / "no-ca.zip"
    build_package(stores, "shop", SINCE, UNTIL, out)
    files = members(out)
    token = f"timestamps/{stamped.head:08d}.1.tsr"
    assert {n for n in files if n.startswith("timestamps/")} == {token}
    assert json.loads(files["package.json"])["timestamps"]["tsa_ca"] is None
    readme = files["README.txt"].decode()
    assert "had no TSA CA certificates configured" in readme
    assert "$ openssl ts" not in readme  # not runnable as it stands: no "$" line
    assert len(verify_package(out).stamped_at) == 1  # checked against the signed message
