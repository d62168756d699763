"""The one exception tree of LiveWitness.

Every error a stage raises on purpose derives from :class:`LiveWitnessError`, and its
message is one readable line meant for the person at the CLI or the API client. HTTP
status codes are chosen in ``api/`` only; the CLI prints the message and exits non-zero.

    LiveWitnessError
    ├── ConfigError            settings that cannot work (no ffmpeg, bad backend options)
    ├── InvalidInputError      a bad name, time or argument given by a user
    │   └── EgressRefusedError       an outbound URL the egress policy refuses
    ├── NotFoundError          a stream, segment or blob that does not exist
    ├── ConflictError          the thing is busy: a stream already being recorded
    ├── SourceError            a live source that cannot be recorded
    │   ├── SourceUnreachableError   the URL or file cannot be opened
    │   ├── NoMediaError             it opens but carries no audio or video
    │   └── NotLiveError             it delivers a recording, not live media (use ingest)
    ├── StorageError           the blob store or catalog failed
    │   ├── StorageUnavailableError  transient: the service is down; retry or spool
    │   │   └── DiskFullError        no space left where LiveWitness writes
    │   ├── DamagedFileError         the catalog or search index file is damaged
    │   └── ImmutableBlobError       a write would change stored evidence
    ├── TimestampError         a time-stamping authority gave no usable token
    └── IntegrityError         stored evidence does not match its hashes, chain or signatures
"""

from __future__ import annotations

import errno
from pathlib import Path


class LiveWitnessError(Exception):
    """Base of every error LiveWitness raises on purpose."""


class ConfigError(LiveWitnessError):
    pass


class InvalidInputError(LiveWitnessError):
    pass


class EgressRefusedError(InvalidInputError):
    """An outbound URL (webhook, stream source, TSA) that the egress policy refuses: a
    malformed URL, or a host that resolves to an address that is not globally routable
    and not named by ``LIVEWITNESS_EGRESS_ALLOW`` (core/egress.py)."""


class NotFoundError(LiveWitnessError):
    pass


class ConflictError(LiveWitnessError):
    pass


class SourceError(LiveWitnessError):
    pass


class SourceUnreachableError(SourceError):
    pass


class NoMediaError(SourceError):
    pass


class NotLiveError(SourceError):
    """A VOD playlist, a file, or media arriving faster than real time: recorded as live
    it would claim wall-clock time the source did not take."""


class StorageError(LiveWitnessError):
    pass


class StorageUnavailableError(StorageError):
    pass


class ImmutableBlobError(StorageError):
    pass


class DiskFullError(StorageUnavailableError):
    """No space left on the device (ENOSPC, EDQUOT): transient, work resumes once an
    operator frees space, so a stage retries rather than failing the job for good."""


class DamagedFileError(StorageError):
    """A file SQLite cannot read (overwritten header, truncated, garbage pages); the
    message names the file and the way out (restore, or ``livewitness reindex``)."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(message)
        self.path = str(path)


#: OSError numbers that mean "the disk is full" (the quota case counts too).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_error(exc: OSError, where: Path | str) -> DiskFullError:
    """One line for a full disk: what failed, where, and what to do."""
    target = exc.filename or where
    return DiskFullError(
        f"no space left on the device holding {target} ({exc.strerror or exc}); free some"
        " space there (`livewitness doctor` shows how much is left)"
    )


class TimestampError(LiveWitnessError):
    """A TSA did not answer with a token that checks; ``reason`` is one word for metrics
    (unreachable, http, garbage, refused, mismatch, untrusted)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IntegrityError(LiveWitnessError):
    """Evidence failed a check; ``artifact`` names the first thing that did not match."""

    def __init__(self, artifact: str, problem: str) -> None:
        super().__init__(f"{artifact}: {problem}")
        self.artifact = artifact
        self.problem = problem
