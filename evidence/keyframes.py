"""Keyframes in the evidence chain: the check `verify` runs on a ``keyframes`` entry.

A ``keyframes`` entry (storage/chain.py) lists the JPEGs of a segment's sampled moments
by SHA-256 and names the segment entry they were taken from; it claims no time of its
own, so each frame's time must lie inside that segment and before the entry was chained.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from core.errors import IntegrityError, InvalidInputError, NotFoundError
from core.timeutil import parse_iso
from storage.blob_keys import entry_key
from storage.blobs.protocol import BlobStore, sha256_bytes
from storage.chain import TIMELINE_TOLERANCE_SECONDS


def check_keyframes_entry(
    blobs: BlobStore, stream: str, key: str, position: int, record: dict[str, Any]
) -> tuple[int, int]:
    """Re-read every keyframe an entry lists; returns (frames, bytes read). The first
    keyframe that is missing, altered or out of its segment's time is named."""
    slack = timedelta(seconds=TIMELINE_TOLERANCE_SECONDS)
    try:
        body = record["keyframes"]
        seq, at_entry = int(body["segment"]), int(body["segment_entry"])
        frames = list(body["frames"])
        chained_at = parse_iso(record["chained_at"])
        if not 0 <= at_entry < position:
            raise IntegrityError(key, f"keyframes name entry {at_entry}, not one before them")
        try:
            segment = json.loads(blobs.get_bytes(entry_key(stream, at_entry)))["segment"]
        except NotFoundError:
            raise IntegrityError(entry_key(stream, at_entry), "manifest entry is missing") from None
        if segment["seq"] != seq or segment["sha256"] != body["segment_sha256"]:
            raise IntegrityError(key, f"keyframes do not match segment {seq} of entry {at_entry}")
        start = parse_iso(segment["start"])
        end = start + timedelta(seconds=float(segment["duration"]))
        size = 0
        for frame in frames:
            frame_key, at = str(frame["key"]), parse_iso(frame["at"])
            if not frame_key.startswith(f"streams/{stream}/keyframes/"):
                raise IntegrityError(key, f"lists {frame_key}, not a keyframe of this stream")
            try:
                data = blobs.get_bytes(frame_key)
            except NotFoundError:
                raise IntegrityError(frame_key, "keyframe is missing") from None
            if len(data) != frame["size"] or sha256_bytes(data) != frame["sha256"]:
                raise IntegrityError(frame_key, "keyframe does not match its SHA-256")
            if not start - slack <= at <= end + slack or at > chained_at + slack:
                raise IntegrityError(
                    frame_key, f"keyframe time {frame['at']} is outside segment {seq}"
                )
            size += len(data)
    except (KeyError, TypeError, ValueError, InvalidInputError):
        raise IntegrityError(key, "keyframes entry is malformed") from None
    return len(frames), size
