"""The stamper: a background thread that gets every signed head stamped by every TSA.

It works from the catalog (signed heads without a token from a TSA), so it also stamps
heads signed by other processes or while it was down; a new signature in its own process
wakes it at once (``SIGNATURES_STORED``). Recording never waits for it: ``sign_head``
only stores the signature. A TSA that fails (down, garbage, a token that does not check)
is counted and logged and asked again after a wait that doubles up to
``tsa_retry_max_seconds``; the other TSAs go on meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from core.errors import (
    ImmutableBlobError,
    LiveWitnessError,
    NotFoundError,
    StorageError,
    TimestampError,
)
from core.settings import Settings
from storage.blob_keys import audit_timestamp_key, timestamp_key
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.catalog import AUDIT_LOG, SIGNATURES_STORED, Catalog, OutboxEvent, UnstampedHead
from storage.metrics import TIMESTAMP_FAILURES, TIMESTAMPS_STORED
from storage.models import TimestampToken
from storage.receipts import TIMESTAMP_EVENT, payload_json, timestamp_payload
from storage.timestamping.client import TsaClient
from storage.timestamping.tokens import (
    TokenInfo,
    check_token,
    load_ca_bundle,
    stamped_bytes,
    tsa_id,
    tsa_label,
    tsa_public_url,
)

log = logging.getLogger(__name__)

BATCH = 50  # heads asked for per catalog query
RESCAN_SECONDS = 30.0  # heads signed by other processes are found this often
WAKE_SECONDS = 1.0  # how often an idle stamper looks at its stop event


@dataclass
class _Tsa:
    url: str
    id: str
    label: str
    delay: float = 0.0  # the current wait after a failure; 0 while it works
    next_try: float = 0.0  # monotonic time before which it is not asked again


class Stamper:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        blobs: BlobStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.clock = clock
        ca = settings.tsa_ca_bundle
        self.client = TsaClient(
            settings.tsa_timeout_seconds, load_ca_bundle(ca) if ca else [], settings.egress_allow
        )
        self.tsas = [_Tsa(url, tsa_id(url), tsa_label(url)) for url in settings.tsa_urls]
        self.retry_initial = settings.tsa_retry_initial_seconds
        self.retry_max = max(settings.tsa_retry_max_seconds, self.retry_initial)
        self._unreadable: set[tuple[str, int]] = set()  # heads whose signature is broken

    def stamp_pending(self, stop: threading.Event | None = None) -> int:
        """One pass: ask each TSA that is not waiting out a failure for every head it has
        not stamped; returns how many tokens were stored."""
        stored = 0
        for tsa in self.tsas:
            if self.clock() >= tsa.next_try:
                stored += self._stamp_with(tsa, stop)
        return stored

    def _stamp_with(self, tsa: _Tsa, stop: threading.Event | None) -> int:
        stored = 0
        while stop is None or not stop.is_set():
            heads = [
                head
                for head in self.catalog.unstamped_heads(tsa.id, BATCH + len(self._unreadable))
                if (head.blob_key, head.head_idx) not in self._unreadable
            ]
            if not heads:
                break
            for head in heads:
                if stop is not None and stop.is_set():
                    break
                message = self._message(head)
                if message is None:
                    continue
                try:
                    raw, info = self.client.stamp(tsa.url, message)
                    self._store(tsa, head, message, raw, info)
                except (TimestampError, StorageError) as exc:
                    self._failed(tsa, head, exc)
                    return stored
                tsa.delay, tsa.next_try = 0.0, 0.0
                stored += 1
        return stored

    def _message(self, head: UnstampedHead) -> bytes | None:
        try:
            return stamped_bytes(self.blobs.get_bytes(head.blob_key))
        except (NotFoundError, ValueError) as exc:
            # `verify` names it; stamping it again would fail the same way.
            log.error("cannot stamp %s: its signature cannot be read (%s)", head.blob_key, exc)
            self._unreadable.add((head.blob_key, head.head_idx))
            return None

    def _store(
        self, tsa: _Tsa, head: UnstampedHead, message: bytes, raw: bytes, info: TokenInfo
    ) -> None:
        if head.log == AUDIT_LOG:
            key = audit_timestamp_key(head.head_idx, tsa.id)
        else:
            key = timestamp_key(head.subject, head.head_idx, tsa.id)
        try:
            self.blobs.put_bytes(key, raw)
        except ImmutableBlobError:
            # Another process stamped this head with this TSA first: index its token.
            raw = self.blobs.get_bytes(key)
            info = check_token(raw, message, self.client.ca_certificates)
        token = TimestampToken(
            log=head.log,
            stream_id=head.stream_id,
            head_idx=head.head_idx,
            tsa_id=tsa.id,
            tsa_url=tsa_public_url(tsa.url),
            blob_key=key,
            sha256=sha256_bytes(raw),
            imprint=info.imprint,
            gen_time=info.gen_time,
            serial=str(info.serial),
        )
        # Witnesses get the token too, beside the head's own receipt.
        payload = timestamp_payload(head.subject, head.head_idx, head.head_sha256, token, raw)
        event = OutboxEvent(
            TIMESTAMP_EVENT,
            head.subject,
            f"{head.head_idx} by {tsa.label}",
            payload_json(payload),
        )
        if self.catalog.add_timestamp_token(token, event):
            TIMESTAMPS_STORED.labels(tsa.label).inc()
            log.info("%s: stamped by %s at %s", key, tsa.label, info.gen_time.isoformat())

    def _failed(self, tsa: _Tsa, head: UnstampedHead, exc: LiveWitnessError) -> None:
        reason = exc.reason if isinstance(exc, TimestampError) else "storage"
        TIMESTAMP_FAILURES.labels(tsa.label, reason).inc()
        tsa.delay = min(tsa.delay * 2, self.retry_max) if tsa.delay else self.retry_initial
        tsa.next_try = self.clock() + tsa.delay
        log.warning(
            "no time-stamp for %s head %d: %s; asking again in %.0fs",
            head.subject,
            head.head_idx,
            exc,
            tsa.delay,
        )

    def follow(self, stop: threading.Event) -> None:
        """Stamp until ``stop`` is set (a stage of ``serve`` and ``recorder``)."""
        changes = self.catalog.changes
        seen: int | None = None
        scanned = float("-inf")
        try:
            while not stop.is_set():
                count = changes.count(SIGNATURES_STORED)
                now = self.clock()
                retry_due = any(t.delay and now >= t.next_try for t in self.tsas)
                if count != seen or retry_due or now - scanned >= RESCAN_SECONDS:
                    seen, scanned = count, now
                    try:
                        self.stamp_pending(stop)
                    except (StorageError, SQLAlchemyError) as exc:
                        log.warning("stamper: cannot read the catalog: %s", exc)
                changes.wait(SIGNATURES_STORED, count, WAKE_SECONDS)
        finally:
            self.client.close()

    def close(self) -> None:
        self.client.close()


@contextmanager
def stamping(settings: Settings, catalog: Catalog, blobs: BlobStore) -> Iterator[None]:
    """Stamp in a background thread while the body runs (``record``, ``ingest``), then
    once more for the heads it signed last (bounded by each TSA's timeout, one try each);
    nothing when no TSA is configured."""
    if not settings.tsa_urls:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=Stamper(settings, catalog, blobs).follow, args=(stop,), name="stamper", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        last = Stamper(settings, catalog, blobs)
        try:
            last.stamp_pending()
        except (StorageError, SQLAlchemyError) as exc:
            log.warning("stamper: cannot read the catalog: %s", exc)
        finally:
            last.close()
