"""The BlobStore Protocol: where evidence bytes live.

Keys are ``/``-separated paths such as ``streams/shop-1/segments/00000003.ts``. A blob is
written once and never changed: writing the same bytes again is a no-op (so every step
of the recorder can be repeated after a crash), writing other bytes under a stored key
raises :class:`~core.errors.ImmutableBlobError`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import InvalidInputError, StorageError, disk_full_error, is_disk_full

CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


@runtime_checkable
class BlobStore(Protocol):
    def put_file(self, key: str, path: Path, sha256: str) -> BlobInfo:
        """Store a file whose SHA-256 the caller computed; the store checks it."""
        ...

    def put_bytes(self, key: str, data: bytes) -> BlobInfo: ...

    def get_bytes(self, key: str) -> bytes:
        """Raises NotFoundError when the key is not stored."""
        ...

    def download(self, key: str, dest: Path) -> None: ...

    def stat(self, key: str) -> BlobInfo | None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under a prefix, sorted."""
        ...

    # Legal holds (docs/cases.md): a held blob must not be deleted by anyone, retention
    # included. A hold is on or off per blob; which cases hold it is the catalog's count.

    def hold(self, key: str) -> None:
        """Place a legal hold on a stored blob (again: a no-op). NotFoundError if absent."""
        ...

    def release(self, key: str) -> None:
        """Lift the legal hold on a blob (not held: a no-op)."""
        ...

    def held(self, key: str) -> bool:
        """Whether the blob is under a legal hold."""
        ...


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_temp(
    directory: Path, read: Callable[[int], bytes], key: str, expected_sha256: str | None
) -> tuple[Path, str, int]:
    """Copy a stream of chunks into a new fsynced temporary file in ``directory``, hashing
    it on the way; returns (path, sha256, size). The caller moves or removes the file."""
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise StorageError(f"{key}: content does not match its SHA-256")
    except OSError as exc:
        path.unlink(missing_ok=True)
        if is_disk_full(exc):  # one line for every caller: recorder, transcriber, API
            raise disk_full_error(exc, directory) from None
        raise
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, actual, size


def validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"invalid blob key {key!r}")
    return key
