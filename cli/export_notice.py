"""What the command line says when an export is written: where it is, how large, and the
command that checks it (a package is trusted only against a key pinned apart from it)."""

from __future__ import annotations

import shlex
from pathlib import Path


def size_text(size: int) -> str:
    """A size a person reads at a glance: 1.2 MB (decimal units, as file managers show)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def export_notice(path: Path, size: int, key_id: str) -> str:
    """``wrote case.zip (1.2 MB)`` and the ``verify-package`` line that checks it."""
    return (
        f"wrote {path} ({size_text(size)}); check it with:\n"
        f"  livewitness verify-package --key-id {key_id} {shlex.quote(str(path))}"
    )
