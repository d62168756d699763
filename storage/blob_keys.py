"""Stream and blob key layout, and stream-name rules, in one place."""

from __future__ import annotations

import re

from core.errors import InvalidInputError

STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_stream_name(name: str) -> str:
    if not STREAM_NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"invalid stream name {name!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def segment_key(stream: str, seq: int) -> str:
    return f"streams/{stream}/segments/{seq:08d}.ts"


def entry_key(stream: str, idx: int) -> str:
    return f"streams/{stream}/manifest/{idx:08d}.json"


def manifest_prefix(stream: str) -> str:
    return f"streams/{stream}/manifest/"


def signature_key(stream: str, head_idx: int) -> str:
    return f"streams/{stream}/signatures/{head_idx:08d}.json"


def transcript_key(stream: str, seq: int, part: int = 0) -> str:
    """A segment's transcript; part n > 0: the transcript of the speech chunk n - 1 filed
    under it."""
    if part:
        return f"streams/{stream}/transcripts/{seq:08d}.{part:06d}.json"
    return f"streams/{stream}/transcripts/{seq:08d}.json"


def speech_chunk_key(stream: str, session: str, start: float, provisional: bool = False) -> str:
    """A speech chunk's audio (derived, not evidence): by recording session and media
    time, so that a chunk stored twice (a retried store) lands on the same key. An early
    piece (recorder/speech.py) may start where its chunk does: it has a key of its own."""
    early = ".early" if provisional else ""
    return f"streams/{stream}/chunks/{session}/{round(start * 1000):010d}{early}.wav"


def keyframe_key(stream: str, seq: int, pts: float, sha256: str) -> str:
    """A sampled moment's JPEG (OCR), named by its segment, time in it and content."""
    return f"streams/{stream}/keyframes/{seq:08d}/{round(pts * 1000):08d}.{sha256[:16]}.jpg"


def events_key(stream: str, sha256: str) -> str:
    """A sealed batch of stream events (JSONL), named by its SHA-256: two sealers of one
    stream never want the same name for different bytes."""
    return f"streams/{stream}/events/{sha256}.jsonl"


AUDIT_HEADS_PREFIX = "audit/heads/"


def audit_head_key(seq: int) -> str:
    return f"{AUDIT_HEADS_PREFIX}{seq:012d}.json"


def timestamp_key(stream: str, head_idx: int, tsa_id: str) -> str:
    """An RFC 3161 token (the TSA's whole response, DER) over signed head ``head_idx``."""
    return f"streams/{stream}/timestamps/{head_idx:08d}.{tsa_id}.tsr"


def timestamps_prefix(stream: str) -> str:
    return f"streams/{stream}/timestamps/"


AUDIT_TIMESTAMPS_PREFIX = "audit/timestamps/"


def audit_timestamp_key(seq: int, tsa_id: str) -> str:
    """An RFC 3161 token over the audit log's signed head ``seq``."""
    return f"{AUDIT_TIMESTAMPS_PREFIX}{seq:012d}.{tsa_id}.tsr"
