"""Evidence packages taken apart and put back together, as a tamperer would."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from storage.signing import Signer


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def reseal(
    src: Path,
    dst: Path,
    changes: dict[str, bytes | None],
    signer: Signer,
    *,
    relist: bool = True,
) -> Path:
    """Change files (None: remove one) and sign new SHA256SUMS, as someone holding the
    installation's key could: the checks below SHA256SUMS (segments, chain, head, tokens)
    must still catch it. ``relist`` rewrites package.json's file list to match; without
    it package.json stays byte for byte (for changes that keep every name)."""
    files = {n: d for n, d in {**members(src), **changes}.items() if d is not None}
    if relist:
        description = json.loads(files["package.json"])
        description["files"] = sorted(n for n in files if n != "package.json")
        files["package.json"] = json.dumps(description).encode()
    listed = sorted(n for n in files if n not in ("SHA256SUMS", "SHA256SUMS.sig"))
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in listed).encode()
    files["SHA256SUMS"] = sums
    files["SHA256SUMS.sig"] = signer.private_key.sign(sums)
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return dst
