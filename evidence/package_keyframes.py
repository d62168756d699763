"""Keyframes in an evidence package: ``keyframes/<segment>/<ms>.<sha>.jpg``, the chained
JPEGs of the package's segments in which OCR read on-screen text, byte for byte as
stored; each is listed by SHA-256 in a ``keyframes`` manifest entry of the package.
Built by evidence/package.py, checked by evidence/package_verify.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import IntegrityError, NotFoundError
from core.timeutil import iso
from evidence.package_format import _KEYFRAME_NAME, entry_file, keyframe_file
from storage.blobs.protocol import sha256_bytes
from storage.models import Keyframe, Segment
from storage.stores import Stores


def keyframes_of(stores: Stores, stream_id: int, covering: Sequence[Segment]) -> list[Keyframe]:
    """The chained keyframes of the package's segments."""
    seqs = {segment.seq for segment in covering}
    start = covering[0].starts_at if covering else None
    return [kf for kf in stores.catalog.keyframes(stream_id, start) if kf.segment_seq in seqs]


def keyframe_files(stores: Stores, keyframes: Sequence[Keyframe]) -> dict[str, bytes]:
    files = {}
    for kf in keyframes:
        try:
            data = stores.blobs.get_bytes(kf.blob_key)
        except NotFoundError:
            raise IntegrityError(kf.blob_key, "keyframe is missing") from None
        if sha256_bytes(data) != kf.sha256:
            raise IntegrityError(kf.blob_key, "keyframe does not match its SHA-256")
        files[keyframe_file(kf.blob_key)] = data
    return files


def keyframes_description(keyframes: Sequence[Keyframe]) -> list[dict[str, Any]]:
    return [
        {
            "file": keyframe_file(kf.blob_key),
            "segment": kf.segment_seq,
            "at": iso(kf.at),
            "offset": kf.offset,
            "sha256": kf.sha256,
            "entry": entry_file(kf.entry_idx),
        }
        for kf in keyframes
    ]


README_STEP = (
    "   Keyframes (keyframes/*/*.jpg, moments where on-screen text was read) are chained\n"
    "   too: each one's SHA-256 is listed in a manifest entry of kind keyframes:\n\n"
    '    $ ok=1; for f in keyframes/*/*.jpg; do h=$(sha256sum "$f" | cut -c1-64);'
    ' grep -qF "\\"sha256\\":\\"$h\\"" manifest/*.json'
    ' || { echo "$f is NOT in the manifest"; ok=0; }; done;'
    ' [ $ok = 1 ] && echo "keyframes OK"\n'
)


def check_package_keyframes(
    names: Sequence[str], digests: dict[str, str], sizes: dict[str, int], entries: dict[int, Any]
) -> int:
    """Each keyframe file matches the entry that lists it, and every keyframe an entry of
    the package lists for one of its segments is there. Returns how many there are."""
    segments = {
        record["segment"]["seq"] for record in entries.values() if record["kind"] == "segment"
    }
    listed: dict[str, tuple[int, Any, Any]] = {}
    for idx, record in entries.items():
        if record["kind"] != "keyframes":
            continue
        try:
            body = record["keyframes"]
            for frame in body["frames"]:
                name = keyframe_file(str(frame["key"]))
                listed[name] = (idx, frame["sha256"], frame["size"])
                if body["segment"] in segments and name not in digests:
                    raise IntegrityError(name, f"is missing (listed in {entry_file(idx)})")
        except (KeyError, TypeError, IndexError):
            raise IntegrityError(entry_file(idx), "is a malformed keyframes entry") from None
    found = 0
    for name in names:
        if not name.startswith("keyframes/"):
            continue
        if _KEYFRAME_NAME.match(name) is None or name not in listed:
            raise IntegrityError(name, "has no keyframes entry in this package")
        idx, sha256, size = listed[name]
        if digests[name] != sha256 or sizes[name] != size:
            raise IntegrityError(name, f"does not match its manifest entry {entry_file(idx)}")
        found += 1
    return found
