"""Streams: their rows, details and status, and who records them (wants and leases)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import or_, select, update

from core.errors import NotFoundError
from core.timeutil import utc_now
from storage.catalog.engine import CatalogBase
from storage.models import Stream

# idle: never recorded; recording; stopped: by a person, a time limit or an error; ended:
# its source ended (a live source closed, an ingested file was chained to its end).
STREAM_STATUSES = ("idle", "recording", "stopped", "ended", "failed")


class StreamsMixin(CatalogBase):
    """Streams by name or id, their details and status, and the recording leases."""

    def ensure_stream(self, name: str, source: str | None = None) -> Stream:
        with self.session() as s:
            stream = s.scalar(select(Stream).where(Stream.name == name))
            if stream is None:
                stream = Stream(name=name, source=source)
                s.add(stream)
            elif source:
                stream.source = source
            s.flush()
            return stream

    def get_stream(self, name: str) -> Stream:
        with self.session() as s:
            stream = s.scalar(select(Stream).where(Stream.name == name))
        if stream is None:
            raise NotFoundError(f"no stream named {name!r}")
        return stream

    def stream_by_id(self, stream_id: int) -> Stream:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
        if stream is None:
            raise NotFoundError(f"no stream with id {stream_id}")
        return stream

    def list_streams(self) -> Sequence[Stream]:
        with self.session() as s:
            return s.scalars(select(Stream).order_by(Stream.name)).all()

    def set_status(self, stream_id: int, status: str) -> None:
        if status not in STREAM_STATUSES:
            raise ValueError(f"unknown stream status {status!r}")
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.status = status

    def set_stream_details(
        self, stream_id: int, *, language: str | None = None, streamer: str | None = None
    ) -> None:
        """Set a stream's spoken language and streamer (None leaves a field as it is)."""
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.language = language or stream.language
                stream.streamer = streamer or stream.streamer

    # Streams to record (the API asks, recorder stages obey)
    def want_recording(
        self,
        stream_id: int,
        wanted: bool,
        source: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is None:
                raise NotFoundError(f"no stream with id {stream_id}")
            stream.wanted = wanted
            stream.source = source or stream.source
            stream.last_error = error

    def hold_recording(
        self, stream_id: int, recorder: str, lease_seconds: float, replacing: str | None = None
    ) -> bool:
        """Take or renew a stream's recording lease. Granted when no recorder holds it,
        ``recorder`` already does, the holder's lease ran out, or the holder is
        ``replacing`` (a recorder known to be dead). One conditional UPDATE, so two
        recorders asking at once never both get it."""
        now = utc_now()
        free = [
            Stream.recorder.is_(None),
            Stream.recorder == recorder,
            Stream.recorder_lease_until < now,
        ]
        if replacing is not None:
            free.append(Stream.recorder == replacing)
        with self.session() as s:
            result = s.execute(
                update(Stream)
                .where(Stream.id == stream_id, or_(*free))
                .values(
                    recorder=recorder,
                    recorder_lease_until=now + timedelta(seconds=lease_seconds),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_recording(self, stream_id: int, recorder: str) -> None:
        with self.session() as s:
            s.execute(
                update(Stream)
                .where(Stream.id == stream_id, Stream.recorder == recorder)
                .values(recorder=None, recorder_lease_until=None)
            )

    def note_recording_error(self, stream_id: int, error: str | None) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.last_error = error
