"""A BlobStore that keeps writing while its backend (S3) is down.

A put goes to the backend; when the backend is unavailable the blob is written to a local
spool directory instead (atomically and fsynced, so the recorder loses nothing), and a
background thread uploads spooled blobs, oldest first, until the spool is empty. A spooled
file is deleted only after the backend has the blob and reports the same SHA-256.

Every put still tries the backend first (a full round of ``upload_attempts`` tries while
it is down), so a key that is already stored is checked there whenever the backend can
answer. Spooled blobs are uploaded in the order they were spooled; a put made after the
backend came back may reach it before older spooled blobs do (order lives in the
manifest, not in the bucket).

Reads see spooled blobs as well as stored ones. The spool survives a restart: a new
instance on the same directory picks up where the last one stopped. One process should
own a spool directory at a time.

Layout of ``spool_dir``::

    queue/<seq>.blob   the bytes
    queue/<seq>.json   {"key", "sha256", "size", "spooled_at"}; written last, so an entry
                       exists only once both files are complete
    rejected/          entries the backend refused for good (a different blob is already
                       stored under the key, or the spooled bytes no longer match their
                       hash); kept, never deleted, and logged
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import (
    ImmutableBlobError,
    LiveWitnessError,
    StorageError,
    StorageUnavailableError,
)
from storage.blobs.protocol import BlobInfo, BlobStore, sha256_file, validate_key, write_temp

log = logging.getLogger(__name__)

_SEQ_DIGITS = 20


@dataclass(frozen=True)
class _Entry:
    seq: int
    key: str
    sha256: str
    size: int
    data: Path
    meta: Path

    @property
    def info(self) -> BlobInfo:
        return BlobInfo(key=self.key, size=self.size, sha256=self.sha256)


class SpoolingBlobStore:
    def __init__(self, backend: BlobStore, spool_dir: Path, retry_seconds: float = 2.0) -> None:
        self.backend = backend
        self.spool_dir = spool_dir
        self.retry_seconds = retry_seconds
        self._queue = spool_dir / "queue"
        self._rejected = spool_dir / "rejected"
        self._queue.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified when an entry leaves
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Insertion order is spool order: entries are loaded sorted and appended in order.
        self._entries: dict[str, _Entry] = {}
        self._next_seq = 1
        self._load()
        if self._entries:
            log.info("resuming upload of %d spooled blobs from %s", len(self._entries), spool_dir)
            with self._lock:
                self._start_thread()

    # -- BlobStore ---------------------------------------------------------------------

    def put_file(self, key: str, path: Path, sha256: str) -> BlobInfo:
        validate_key(key)
        sha256 = sha256.lower()
        spooled = self._already_spooled(key, sha256)
        if spooled is not None:
            if sha256_file(path) != sha256:
                raise StorageError(f"{key}: content does not match its SHA-256")
            return spooled
        try:
            return self.backend.put_file(key, path, sha256)
        except StorageUnavailableError as exc:
            log.warning("spooling %s: %s", key, exc)
        with path.open("rb") as source:
            return self._spool(key, source.read, sha256)

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        validate_key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        spooled = self._already_spooled(key, sha256)
        if spooled is not None:
            return spooled
        try:
            return self.backend.put_bytes(key, data)
        except StorageUnavailableError as exc:
            log.warning("spooling %s: %s", key, exc)
        chunks = iter([data])
        return self._spool(key, lambda _size: next(chunks, b""), sha256)

    def get_bytes(self, key: str) -> bytes:
        entry = self._entry(key)
        if entry is not None:
            # The uploader may delete the file right after we looked it up; then the
            # backend has it.
            with contextlib.suppress(FileNotFoundError):
                return entry.data.read_bytes()
        return self.backend.get_bytes(key)

    def download(self, key: str, dest: Path) -> None:
        entry = self._entry(key)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(entry.data, dest)
                return
        self.backend.download(key, dest)

    def stat(self, key: str) -> BlobInfo | None:
        entry = self._entry(key)
        if entry is not None:
            return entry.info
        return self.backend.stat(key)

    def list(self, prefix: str) -> Iterator[str]:
        with self._lock:
            spooled = {key for key in self._entries if key.startswith(prefix)}
        return iter(sorted(spooled.union(self.backend.list(prefix))))

    # -- spool control -----------------------------------------------------------------

    def pending(self) -> int:
        """Blobs in the spool that the backend does not have yet."""
        with self._lock:
            return len(self._entries)

    def flush(self, timeout: float) -> bool:
        """Upload now and wait until the spool is empty; False if it is not within timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._entries:
                self._start_thread()
        self._wake.set()
        with self._lock:
            while self._entries:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        """Stop the uploader; whatever is still spooled stays on disk for the next start."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()

    # -- internals ---------------------------------------------------------------------

    def _entry(self, key: str) -> _Entry | None:
        validate_key(key)
        with self._lock:
            return self._entries.get(key)

    def _already_spooled(self, key: str, sha256: str) -> BlobInfo | None:
        entry = self._entry(key)
        if entry is None:
            return None
        if entry.sha256 != sha256:
            raise ImmutableBlobError(f"{key} is stored with other content")
        return entry.info

    def _spool(self, key: str, read: Callable[[int], bytes], expected_sha256: str) -> BlobInfo:
        tmp, _sha256, size = write_temp(self._queue, read, key, expected_sha256)
        try:
            with self._lock:
                # Re-check under the lock: another thread may have spooled the key meanwhile.
                existing = self._entries.get(key)
                if existing is not None:
                    if existing.sha256 != expected_sha256:
                        raise ImmutableBlobError(f"{key} is stored with other content")
                    return existing.info
                seq = self._next_seq
                self._next_seq += 1
                entry = self._entry_paths(seq, key, expected_sha256, size)
                tmp.replace(entry.data)
                meta = {
                    "key": key,
                    "sha256": expected_sha256,
                    "size": size,
                    "spooled_at": datetime.now(UTC).isoformat(),
                }
                _write_durably(entry.meta, json.dumps(meta).encode())
                self._entries[key] = entry
                self._start_thread()
            return entry.info
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _entry_paths(self, seq: int, key: str, sha256: str, size: int) -> _Entry:
        stem = f"{seq:0{_SEQ_DIGITS}d}"
        return _Entry(
            seq=seq,
            key=key,
            sha256=sha256,
            size=size,
            data=self._queue / f"{stem}.blob",
            meta=self._queue / f"{stem}.json",
        )

    def _load(self) -> None:
        for stray in self._queue.glob(".tmp-*"):
            stray.unlink()
        # Sequence numbers are never reused, not even those of rejected entries.
        for kept in self._rejected.glob("*.json"):
            self._next_seq = max(self._next_seq, int(kept.stem) + 1)
        seen: set[int] = set()
        for meta_path in sorted(self._queue.glob("*.json")):
            seq = int(meta_path.stem)
            self._next_seq = max(self._next_seq, seq + 1)
            meta = json.loads(meta_path.read_text())
            entry = self._entry_paths(seq, meta["key"], meta["sha256"], meta["size"])
            if not entry.data.exists():
                log.error("spool entry %s lost its data file; dropping it", meta_path.name)
                meta_path.unlink()
                continue
            seen.add(seq)
            self._entries.setdefault(entry.key, entry)
        # A data file without metadata is a spool write that crashed before it finished;
        # its put never returned, so the caller still holds the blob.
        for data_path in self._queue.glob("*.blob"):
            if int(data_path.stem) not in seen:
                self._next_seq = max(self._next_seq, int(data_path.stem) + 1)
                data_path.unlink()

    def _start_thread(self) -> None:
        """Start the uploader if it is not running (caller holds the lock)."""
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(
                target=self._run, name=f"spool-upload:{self.spool_dir}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._drain()
            except Exception:
                # The uploader must outlive any one failure (a full disk, a bug): the
                # blobs stay spooled and the next round tries again.
                log.exception("spool upload round failed; retrying in %ss", self.retry_seconds)
            with self._lock:
                if self._stopping or not self._entries:
                    # Exit under the lock so a concurrent _spool starts a new thread.
                    self._thread = None
                    return
            self._wake.wait(self.retry_seconds)
            self._wake.clear()

    def _drain(self) -> None:
        """Upload entries oldest first; stop at the first one the backend cannot take now."""
        while True:
            with self._lock:
                if self._stopping or not self._entries:
                    return
                entry = next(iter(self._entries.values()))
            try:
                self._upload(entry)
            except StorageUnavailableError:
                return
            except (ImmutableBlobError, _CorruptSpoolError) as exc:
                log.error("spooled %s rejected, kept in %s: %s", entry.key, self._rejected, exc)
                self._reject(entry)
                continue
            except LiveWitnessError as exc:
                # Wrong credentials or permissions, say: keep the blob and try again later.
                log.error("cannot upload spooled %s yet: %s", entry.key, exc)
                return
            with self._changed:
                entry.meta.unlink()
                entry.data.unlink()
                del self._entries[entry.key]
                self._changed.notify_all()
            log.info("uploaded spooled %s", entry.key)

    def _upload(self, entry: _Entry) -> None:
        if sha256_file(entry.data) != entry.sha256:
            raise _CorruptSpoolError("spooled bytes no longer match their SHA-256")
        self.backend.put_file(entry.key, entry.data, entry.sha256)
        stored = self.backend.stat(entry.key)
        if stored is None or stored.sha256 != entry.sha256:
            # Keep the spooled copy: the backend does not (yet) hold these exact bytes.
            raise StorageError(f"{entry.key}: backend does not confirm the uploaded SHA-256")

    def _reject(self, entry: _Entry) -> None:
        self._rejected.mkdir(parents=True, exist_ok=True)
        with self._changed:
            entry.data.replace(self._rejected / entry.data.name)
            entry.meta.replace(self._rejected / entry.meta.name)
            del self._entries[entry.key]
            self._changed.notify_all()


class _CorruptSpoolError(StorageError):
    pass


def _write_durably(path: Path, data: bytes) -> None:
    """Write a file so that after a crash it is either complete or absent."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
