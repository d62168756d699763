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
_SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S(?:.*\S)?)$")
TIMESTAMPS = "timestamps/"
TSA_CA = "timestamps/tsa-ca.pem"  # the TSA CA certificates the installation trusts
_TOKEN_NAME = re.compile(r"^timestamps/(\d{8})\.(\d+)\.tsr$")
_MEDIA = (".ts", ".mp4", ".sig")  # already compressed: stored as they are
README_WIDTH = 88


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

    @property
    def trusted(self) -> bool:
        return self.anchor is not None


def segment_file(seq: int) -> str:
    return f"segments/{seq:08d}.ts"


def entry_file(idx: int) -> str:
    return f"manifest/{idx:08d}.json"


def signature_files(idx: int) -> tuple[str, str, str]:
    """The stored record, the signed message and the raw signature of a head."""
    base = f"signatures/{idx:08d}"
    return f"{base}.json", f"{base}.msg", f"{base}.sig"


def token_file(idx: int, number: int) -> str:
    """The ``number``-th RFC 3161 token (from 1) over signed head ``idx``."""
    return f"{TIMESTAMPS}{idx:08d}.{number}.tsr"
