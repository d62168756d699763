"""BlobStore on a local directory (the embedded default).

Writes go to a temporary file that is fsynced and then hard-linked into place, so a
crash leaves either the whole blob or nothing, and ``os.link`` refuses to replace a
blob that is already there. Stored files are made read-only.

A legal hold is a record ``.holds/<key>`` beside the blobs (never listed as a blob):
retention (``storage/retention.py``) keeps every blob that has one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import ImmutableBlobError, InvalidInputError, NotFoundError
from storage.blobs.protocol import BlobInfo, sha256_file, validate_key, write_temp

HOLDS = ".holds"


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if validate_key(key).split("/")[0] == HOLDS:
            raise InvalidInputError(f"invalid blob key {key!r}: {HOLDS}/ holds hold records")
        return self.root / key

    def _hold_path(self, key: str) -> Path:
        self._path(key)  # checks the key
        return self.root / HOLDS / key

    def put_file(self, key: str, path: Path, sha256: str) -> BlobInfo:
        with path.open("rb") as source:
            return self._put(key, source.read, sha256)

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        chunks = iter([data])
        return self._put(key, lambda _size: next(chunks, b""), None)

    def _put(self, key: str, read: Callable[[int], bytes], expected_sha256: str | None) -> BlobInfo:
        target = self._path(key)
        existing = self.stat(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, actual, size = write_temp(target.parent, read, key, expected_sha256)
        try:
            if existing is not None:
                if existing.sha256 != actual:
                    raise ImmutableBlobError(f"{key} is stored with other content")
                return existing
            tmp.chmod(0o400)  # read-only, and private to the service user
            try:
                os.link(tmp, target)
            except FileExistsError:
                # Another writer won the race: same bytes are fine, others are not.
                if sha256_file(target) != actual:
                    raise ImmutableBlobError(f"{key} is stored with other content") from None
            _fsync_dir(target.parent)
            return BlobInfo(key=key, size=size, sha256=actual)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is not stored") from None

    def download(self, key: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is not stored") from None

    def stat(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return BlobInfo(key=key, size=size, sha256=sha256_file(path))

    def list(self, prefix: str) -> Iterator[str]:
        # Walk the deepest directory the prefix names, then filter on the rest of it.
        base = self.root / prefix.rpartition("/")[0]
        if not base.is_dir():
            return iter(())
        keys = (
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
        return iter(
            sorted(k for k in keys if k.startswith(prefix) and not k.startswith(HOLDS + "/"))
        )

    def hold(self, key: str) -> None:
        if not self._path(key).is_file():
            raise NotFoundError(f"blob {key} is not stored")
        record = self._hold_path(key)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.touch()
        _fsync_dir(record.parent)

    def release(self, key: str) -> None:
        record = self._hold_path(key)
        if record.exists():
            record.unlink()
            _fsync_dir(record.parent)

    def held(self, key: str) -> bool:
        return self._hold_path(key).exists()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
