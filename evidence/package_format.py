"""What an evidence package holds and how its files are named: shared by the builder
(:mod:`evidence.package`) and the offline verifier (:mod:`evidence.package_verify`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from evidence.moments import (
    ClipInfo,
)

FORMAT = "livewitness-evidence-package"
PACKAGE_JSON = "package.json"
SUMS = "SHA256SUMS"
SUMS_SIG = "SHA256SUMS.sig"
PUBLIC_KEY = "public_key.pem"
CLIP = "clip.mp4"
TRANSCRIPT_JSON = "transcript.json"
TRANSCRIPT_SRT = "transcript.srt"
README = "README.txt"
REQUIRED = (CLIP, TRANSCRIPT_JSON, TRANSCRIPT_SRT, PUBLIC_KEY, README, PACKAGE_JSON)
_ENTRY_NAME = re.compile(r"^manifest/(\d{8})\.json$")
_SEGMENT_NAME = re.compile(r"^segments/(\d{8})\.ts$")
EVENTS_JSONL = "events.jsonl"  # the range's stream events (evidence/package_events.py)
_EVENT_BATCH_NAME = re.compile(r"^events/(\d{8})\.jsonl$")  # a chained batch, by entry
# A chained keyframe (OCR's sampled moment): keyframes/<segment>/<ms>.<sha256[:16]>.jpg
_KEYFRAME_NAME = re.compile(r"^keyframes/(\d{8})/\d{8}\.[0-9a-f]{16}\.jpg$")
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")
TIMESTAMPS = "timestamps/"
TSA_CA = "timestamps/tsa-ca.pem"  # the TSA CA certificates the installation trusts
_TOKEN_NAME = re.compile(r"^timestamps/(\d{8})\.(\d+)\.tsr$")
_MEDIA = (".ts", ".mp4", ".sig")  # already compressed: stored as they are
README_WIDTH = 88

# What verify-package accepts, checked from the zip's directory before any member is read
# (docs/formats.md, "Limits"). A package holds at most an export's media (an hour by
# default), so these leave wide room while a zip bomb is refused at once.
MAX_MEMBERS = 100_000
MAX_MEMBER_BYTES = 16 << 30  # one file, uncompressed (an hour-long clip is a few GiB)
MAX_TOTAL_BYTES = 64 << 30  # all files, uncompressed
MAX_SMALL_BYTES = 16 << 20  # files read whole: SHA256SUMS, package.json, manifest, ...
MAX_RATIO = 100  # uncompressed / compressed: JSON and text deflate 5-20x, zeros ~1000x
RATIO_FLOOR = 1 << 20  # smaller files are never bombs, whatever their ratio
# Every name a package may hold (anything else, e.g. ../x or a directory, is refused
# before hashing); the files the verifier reads whole are the _SMALL ones.
_FIXED_NAMES = frozenset(
    (PACKAGE_JSON, SUMS, SUMS_SIG, PUBLIC_KEY, CLIP, TRANSCRIPT_JSON, TRANSCRIPT_SRT, README)
)
_SMALL_NAME = re.compile(
    r"package\.json|SHA256SUMS(?:\.sig)?|public_key\.pem|manifest/\d{8}\.json"
    r"|signatures/\d{8}\.(?:json|msg|sig)|timestamps/(?:\d{8}\.\d+\.tsr|tsa-ca\.pem)"
)


def expected_name(name: str) -> bool:
    """Whether ``name`` is a file an evidence package may hold."""
    return (
        name in _FIXED_NAMES
        or _SMALL_NAME.fullmatch(name) is not None
        or re.fullmatch(r"segments/\d{8}\.ts", name) is not None
        or _KEYFRAME_NAME.fullmatch(name) is not None
        or name == EVENTS_JSONL
        or _EVENT_BATCH_NAME.fullmatch(name) is not None
    )


def read_whole(name: str) -> bool:
    """Whether the verifier reads ``name`` into memory (capped by MAX_SMALL_BYTES)."""
    return _SMALL_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class PackageInfo:
    path: Path
    sha256: str  # of the zip file
    size: int
    stream: str
    since: datetime
    until: datetime
    segments: list[int]
    entries: tuple[int, int]  # first and last manifest entry included (the signed head)
    head_sha256: str
    key_id: str
    clip: ClipInfo
    utterances: int
    files: list[str]


@dataclass(frozen=True)
class PackageReport:
    path: Path
    stream: str
    since: datetime
    until: datetime
    created_at: datetime
    requested_by: str | None
    files: int
    segments: list[int]
    entries: tuple[int, int]
    head_sha256: str
    key_id: str
    bytes_checked: int
    # What the signer was checked against (e.g. "--public-key key.pem"); None: nothing,
    # so the package is consistent in itself but its signer is not trusted.
    anchor: str | None = None
    # The TSA times of the RFC 3161 tokens over the signed head (none: not stamped).
    stamped_at: tuple[datetime, ...] = ()
    events: int = 0  # stream events of the range (events.jsonl), checked against batches
    keyframes: int = 0  # chained keyframes of the package's segments (OCR)

    @property
    def trusted(self) -> bool:
        return self.anchor is not None


def segment_file(seq: int) -> str:
    return f"segments/{seq:08d}.ts"


def event_batch_file(idx: int) -> str:
    """A chained batch of stream events, named by its manifest entry."""
    return f"events/{idx:08d}.jsonl"


def keyframe_file(blob_key: str) -> str:
    """A keyframe's name in a package: its stored key from ``keyframes/`` on."""
    return "keyframes/" + blob_key.split("/keyframes/", 1)[1]


def entry_file(idx: int) -> str:
    return f"manifest/{idx:08d}.json"


def signature_files(idx: int) -> tuple[str, str, str]:
    """The stored record, the signed message and the raw signature of a head."""
    base = f"signatures/{idx:08d}"
    return f"{base}.json", f"{base}.msg", f"{base}.sig"


def token_file(idx: int, number: int) -> str:
    """The ``number``-th RFC 3161 token (from 1) over signed head ``idx``."""
    return f"{TIMESTAMPS}{idx:08d}.{number}.tsr"
