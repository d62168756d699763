"""The one exception tree of LiveWitness.

Every error a stage raises on purpose derives from :class:`LiveWitnessError`, and its
message is one readable line meant for the person at the CLI or the API client. HTTP
status codes are chosen in ``api/`` only; the CLI prints the message and exits non-zero.

    LiveWitnessError
    ├── ConfigError            settings that cannot work (no ffmpeg, bad backend options)
    ├── InvalidInputError      a bad name, time or argument given by a user
    ├── NotFoundError          a stream, segment or blob that does not exist
    ├── ConflictError          the thing is busy: a stream already being recorded
    ├── SourceError            a live source that cannot be recorded
    │   ├── SourceUnreachableError   the URL or file cannot be opened
    │   ├── NoMediaError             it opens but carries no audio or video
    │   └── NotLiveError             it delivers a recording, not live media (use ingest)
    ├── StorageError           the blob store or catalog failed
    │   ├── StorageUnavailableError  transient: the service is down; retry or spool
    │   └── ImmutableBlobError       a write would change stored evidence
    ├── TimestampError         a time-stamping authority gave no usable token
    └── IntegrityError         stored evidence does not match its hashes, chain or signatures
"""

from __future__ import annotations


class LiveWitnessError(Exception):
    """Base of every error LiveWitness raises on purpose."""


class ConfigError(LiveWitnessError):
    pass


class InvalidInputError(LiveWitnessError):
    pass


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
