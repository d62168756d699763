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

A spool belongs to one process. Processes that share a data home (stages of one host,
several transcribers on one volume) each spool into a directory of their own under
``spool_dir``, held with an exclusive ``flock`` on its ``owner.lock`` for as long as the
process runs: two processes never write the same entry. A directory whose lock is free
belongs to a process that is gone (crashed, killed, stopped during an outage): the
uploader *adopts* it, at start and every ``adopt_seconds`` after, moving its entries into
its own queue in their order, so nothing stays stranded when the process that spooled it
never comes back. Reads see spooled blobs, the adopted ones included.

Layout of ``spool_dir``::

    <host>-<pid>-<nonce>/       one per process, made under a dot name and renamed into
      owner.lock                place once locked (so an adopter never sees it unlocked)
      queue/<seq>.blob          the bytes
      queue/<seq>.json          {"key", "sha256", "size", "spooled_at"}; written last, so
                                an entry exists only once both files are complete
      rejected/                 entries the backend refused for good (a different blob is
                                already stored under the key, or the spooled bytes no
                                longer match their hash); kept, never deleted, and logged
    queue/, rejected/           the single spool of earlier releases: adopted like the
                                directory of a gone process (locked with legacy.lock)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import (
    ImmutableBlobError,
    LiveWitnessError,
    StorageError,
    StorageUnavailableError,
)
from storage.blobs.protocol import BlobInfo, BlobStore, sha256_file, validate_key, write_temp

log = logging.getLogger(__name__)

_SEQ_DIGITS = 20
OWNER_LOCK = "owner.lock"
LEGACY_LOCK = "legacy.lock"  # guards the earlier releases' spool at the top level
_NEW_PREFIX = ".new-"  # a process's directory before its lock is held
_STALE_NEW_SECONDS = 600.0  # a directory still under its making name after this was left


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
    def __init__(
        self,
        backend: BlobStore,
        spool_dir: Path,
        retry_seconds: float = 2.0,
        adopt_seconds: float = 30.0,
    ) -> None:
        self.backend = backend
        self.root = spool_dir
        self.retry_seconds = retry_seconds
        self.adopt_seconds = adopt_seconds
        self.root.mkdir(parents=True, exist_ok=True)
        self.spool_dir, self._owner_fd = _make_own_directory(self.root)
        self._queue = self.spool_dir / "queue"
        self._rejected = self.spool_dir / "rejected"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified when an entry leaves
        self._wake = threading.Event()
        self._stopping = False
        # Insertion order is spool order: adopted entries are appended in their order.
        self._entries: dict[str, _Entry] = {}
        self._next_seq = 1
        # Adopted now, so that reads see a gone process's blobs from the start.
        self.adopt()
        if self._entries:
            log.info("resuming upload of %d spooled blobs into %s", len(self._entries), self.root)
        self._thread = threading.Thread(
            target=self._run, name=f"spool-upload:{self.spool_dir}", daemon=True
        )
        self._thread.start()

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

    def hold(self, key: str) -> None:
        # A spooled blob is not in the backend yet: the catalog keeps the hold unapplied
        # and the periodic hold task (storage/holds.py) places it once uploaded.
        if self._entry(key) is not None:
            raise StorageUnavailableError(f"{key} is still spooled; it is held once uploaded")
        self.backend.hold(key)

    def release(self, key: str) -> None:
        self.backend.release(key)

    def held(self, key: str) -> bool:
        return self._entry(key) is None and self.backend.held(key)

    # -- spool control -----------------------------------------------------------------

    def pending(self) -> int:
        """Blobs in this process's spool (adopted ones included) the backend lacks yet."""
        with self._lock:
            return len(self._entries)

    def flush(self, timeout: float) -> bool:
        """Upload now and wait until the spool is empty; False if it is not within timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._entries:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        """Stop the uploader and give the directory up: an empty one is removed, one that
        still holds blobs stays for the next process on this data home to adopt."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._wake.set()
        self._thread.join()
        with self._lock:
            empty = not self._entries
        if empty:
            _remove_if_empty(self.spool_dir)
        os.close(self._owner_fd)  # the lock is free: another process may adopt the rest

    def adopt(self) -> int:
        """Take over the spools of processes that are gone (their lock is free); returns
        how many blobs were adopted."""
        adopted = 0
        for candidate in sorted(self.root.iterdir()):
            if candidate == self.spool_dir or not candidate.is_dir():
                continue
            if candidate.name in ("queue", "rejected"):
                continue  # the legacy layout, adopted below
            if candidate.name.startswith(_NEW_PREFIX) and not _stale(candidate):
                continue  # being made: its maker takes the lock in a moment
            adopted += self._adopt_directory(candidate, candidate / OWNER_LOCK)
        if (self.root / "queue").is_dir():
            adopted += self._adopt_directory(self.root, self.root / LEGACY_LOCK)
        return adopted

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
                entry = self._entry_paths(self._take_seq(), key, expected_sha256, size)
                tmp.replace(entry.data)
                _write_durably(entry.meta, _meta_bytes(key, expected_sha256, size, None))
                self._entries[key] = entry
            self._wake.set()
            return entry.info
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _take_seq(self) -> int:
        seq = self._next_seq  # caller holds the lock
        self._next_seq += 1
        return seq

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

    def _adopt_directory(self, directory: Path, lock_path: Path) -> int:
        """Adopt one gone process's spool if its lock is free; how many blobs it held."""
        fd = _try_lock(lock_path)
        if fd is None:
            return 0  # its process runs: the spool is its own
        try:
            if directory.name.startswith(_NEW_PREFIX):
                # A process that died while making its directory: nothing was spooled.
                _remove_if_empty(directory)
                return 0
            adopted = self._adopt_queue(directory / "queue")
            if directory != self.root:
                _remove_if_empty(directory)  # kept while its rejected/ holds anything
            return adopted
        finally:
            os.close(fd)

    def _adopt_queue(self, queue: Path) -> int:
        if not queue.is_dir():
            return 0
        for stray in queue.glob(".tmp-*"):
            stray.unlink(missing_ok=True)
        adopted = 0
        kept: set[Path] = set()
        for meta_path in sorted(queue.glob("*.json")):
            data_path = meta_path.with_suffix(".blob")
            try:
                meta = json.loads(meta_path.read_text())
                key, sha256, size = str(meta["key"]), str(meta["sha256"]), int(meta["size"])
            except (ValueError, KeyError, TypeError) as exc:
                log.error("spool entry %s is unreadable, left where it is: %s", meta_path, exc)
                kept.add(data_path)
                continue
            if not data_path.exists():
                log.error("spool entry %s lost its data file; dropping it", meta_path)
                meta_path.unlink()
                continue
            self._take_over(key, sha256, size, meta, data_path)
            # The entry is ours now (its meta written last); only then does the old go.
            meta_path.unlink()
            data_path.unlink()
            adopted += 1
        # A data file without metadata is a spool write that crashed before it finished;
        # its put never returned, so the caller still holds the blob.
        for data_path in queue.glob("*.blob"):
            if data_path not in kept:
                data_path.unlink()
        if adopted:
            log.info("adopted %d spooled blobs from %s", adopted, queue.parent)
        return adopted

    def _take_over(
        self, key: str, sha256: str, size: int, meta: dict[str, Any], data_path: Path
    ) -> None:
        """Make a gone process's spool entry one of ours (or a rejected one of ours)."""
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None and existing.sha256 == sha256:
                return  # the same blob is spooled here already
            entry = self._entry_paths(self._take_seq(), key, sha256, size)
            if existing is not None:
                log.error(
                    "spooled %s from %s conflicts with a spooled blob; kept in %s",
                    key, data_path.parent.parent, self._rejected,
                )  # fmt: skip
                self._rejected.mkdir(parents=True, exist_ok=True)
                _link_or_copy(data_path, self._rejected / entry.data.name)
                _write_durably(self._rejected / entry.meta.name, json.dumps(meta).encode())
                return
            _link_or_copy(data_path, entry.data)
            _write_durably(entry.meta, json.dumps(meta).encode())
            self._entries[key] = entry

    def _run(self) -> None:
        next_adoption = time.monotonic() + self.adopt_seconds
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                if time.monotonic() >= next_adoption:
                    next_adoption = time.monotonic() + self.adopt_seconds
                    self.adopt()
                self._drain()
            except Exception:
                # The uploader must outlive any one failure (a full disk, a bug): the
                # blobs stay spooled and the next round tries again.
                log.exception("spool upload round failed; retrying in %ss", self.retry_seconds)
            with self._lock:
                if self._stopping:
                    return
                waiting = bool(self._entries)
            self._wake.wait(self.retry_seconds if waiting else self.adopt_seconds)
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


def _make_own_directory(root: Path) -> tuple[Path, int]:
    """This process's spool directory, locked; its name is never reused."""
    name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    making = root / f"{_NEW_PREFIX}{name}"
    (making / "queue").mkdir(parents=True)
    fd = _try_lock(making / OWNER_LOCK)
    if fd is None:  # only a process that guessed our nonce could hold it
        raise StorageError(f"cannot lock the new spool directory {making}")
    os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
    directory = root / name
    # Renamed only once locked: an adopter never sees this directory with a free lock.
    making.rename(directory)
    return directory, fd


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``; None when another holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None  # its directory went away meanwhile (adopted and removed)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _stale(directory: Path) -> bool:
    try:
        return time.time() - directory.stat().st_mtime > _STALE_NEW_SECONDS
    except FileNotFoundError:
        return False


def _remove_if_empty(directory: Path) -> None:
    """Remove a spool directory that holds no blob (its lock file aside); keep it else."""
    for sub in ("queue", "rejected"):
        with contextlib.suppress(FileNotFoundError, OSError):
            (directory / sub).rmdir()  # fails when something is left in it: then kept
    try:
        if any(p.name != OWNER_LOCK for p in directory.iterdir()):
            return
    except FileNotFoundError:
        return  # removed by another process that adopted it first
    (directory / OWNER_LOCK).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()


def _link_or_copy(source: Path, dest: Path) -> None:
    """Put ``source``'s bytes at ``dest`` durably, keeping ``source``."""
    try:
        os.link(source, dest)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, dest)
        with dest.open("rb+") as out:
            os.fsync(out.fileno())


def _meta_bytes(key: str, sha256: str, size: int, spooled_at: str | None) -> bytes:
    meta = {
        "key": key,
        "sha256": sha256,
        "size": size,
        "spooled_at": spooled_at or datetime.now(UTC).isoformat(),
    }
    return json.dumps(meta).encode()


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
