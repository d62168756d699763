"""The data home is private to the service user: directories 0700, files 0600.

Every ``livewitness`` command starts with :func:`private_umask`, so what it writes under
the data home (catalog, keys, blobs, spool, search index, models, work files) is created
without group or other bits; :func:`open_stores` makes the data home and the keys
directory 0700 when it creates them. A data home, keys directory or key file that other
users can read (made by an earlier release, by hand, or restored from a backup) is not
refused: :func:`exposed_line` names it in one warning line with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PUBLIC_KEY_SUFFIX = ".pub.pem"  # a public key is public: its mode does not matter


def private_umask() -> None:
    """New files 0600 and directories 0700 in this process from now on."""
    os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) as 0700; an existing one is left as it is."""
    if not path.exists():
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def exposed_paths(home: Path, keys_dir: Path) -> list[tuple[Path, int]]:
    """The data home, the keys directory and the private key files in it that users other
    than the owner can read, write or enter, with their modes."""
    candidates = [home, keys_dir]
    if keys_dir.is_dir():
        candidates += sorted(
            p for p in keys_dir.iterdir() if p.is_file() and not p.name.endswith(PUBLIC_KEY_SUFFIX)
        )
    found = []
    for path in candidates:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            found.append((path, mode))
    return found


def exposed_line(home: Path, keys_dir: Path) -> str | None:
    """One warning line naming what others can read, or None when all is private."""
    found = exposed_paths(home, keys_dir)
    if not found:
        return None
    listed = ", ".join(f"{path} ({mode:04o})" for path, mode in found)
    return (
        f"other users can read the data home or its keys: {listed}; only the service user"
        f" should (run: chmod -R go-rwx {home})"
    )
