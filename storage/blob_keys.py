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


def transcript_key(stream: str, seq: int) -> str:
    return f"streams/{stream}/transcripts/{seq:08d}.json"


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
