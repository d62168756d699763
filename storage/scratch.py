"""Work files (clips, exports, evidence packages, decoded audio) under the data home.

They are built in ``<home>/tmp/<host>-<pid>/``: on the disk the operator watches and sized
for evidence, not the system temp directory (often a small tmpfs). A directory is removed
when its work fails or ends; a process killed mid-export leaves its directory behind, and
the next process to open the stores on that host removes every directory whose process is
gone (:func:`clean_scratch`). Directories of other hosts (a shared data home) are left to
their own hosts, unless a day old.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import disk_full_error, is_disk_full
from core.settings import Settings

log = logging.getLogger(__name__)

#: Leftovers of another host are removed after this long (its process cannot be checked).
FOREIGN_MAX_AGE_SECONDS = 86400.0


#: Own-named leftovers older than this are a previous process's with our pid (containers).
_PROCESS_STARTED = time.time()


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def process_scratch(settings: Settings) -> Path:
    """This process's own work directory (made on first use)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.scratch_dir.mkdir(mode=0o700, exist_ok=True)  # private, as the data home
    path = settings.scratch_dir / _owner()
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@contextmanager
def scratch(settings: Settings, prefix: str) -> Iterator[Path]:
    """A fresh work directory under the data home, removed when the block ends however it
    ends; a full disk surfaces as one DiskFullError line."""
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=process_scratch(settings)))
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(exc, settings.scratch_dir) from None
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def new_scratch(settings: Settings, prefix: str) -> Path:
    """A work directory the caller removes (an HTTP response streamed after the route
    returned); remove it at once if the work fails."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=process_scratch(settings)))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _clean_own(directory: Path) -> None:
    """A container's process often has the pid its predecessor had: what is older than
    this process in its directory is the predecessor's."""
    for entry in directory.iterdir():
        try:
            old = entry.stat().st_mtime < _PROCESS_STARTED
        except OSError:
            continue
        if old:
            shutil.rmtree(entry, ignore_errors=True)


def clean_scratch(settings: Settings) -> list[Path]:
    """Remove work directories left by processes that are gone; returns what was removed."""
    root = settings.scratch_dir
    if not root.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for entry in root.iterdir():
        owner_host, _, pid_text = entry.name.rpartition("-")
        if not pid_text.isdigit():
            continue  # not ours: leave it
        pid = int(pid_text)
        if owner_host == host and pid == os.getpid():
            _clean_own(entry)
            continue
        if owner_host == host:
            stale = not _process_alive(pid)
        else:
            try:
                stale = time.time() - entry.stat().st_mtime > FOREIGN_MAX_AGE_SECONDS
            except OSError:
                continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d leftover work directories under %s", len(removed), root)
    return removed
