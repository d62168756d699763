"""The catalog: streams, manifest index, segments, signatures and jobs (SQLAlchemy 2).

SQLite in the data directory by default, PostgreSQL by URL. The schema is brought up to
date with Alembic every time a catalog is opened.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import NotFoundError, StorageError
from storage.models import Job, ManifestEntry, Segment, Signature, Stream

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Catalog:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except OperationalError as exc:
            raise StorageError(f"cannot open the catalog: {exc.orig}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # Streams
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

    def list_streams(self) -> Sequence[Stream]:
        with self.session() as s:
            return s.scalars(select(Stream).order_by(Stream.name)).all()

    def set_status(self, stream_id: int, status: str) -> None:
        with self.session() as s:
            stream = s.get(Stream, stream_id)
            if stream is not None:
                stream.status = status

    # Manifest and segments
    def entries(self, stream_id: int) -> Sequence[ManifestEntry]:
        with self.session() as s:
            return s.scalars(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx)
            ).all()

    def head(self, stream_id: int) -> ManifestEntry | None:
        with self.session() as s:
            return s.scalar(
                select(ManifestEntry)
                .where(ManifestEntry.stream_id == stream_id)
                .order_by(ManifestEntry.idx.desc())
                .limit(1)
            )

    def add_entry(self, entry: ManifestEntry) -> None:
        """Idempotent: an entry already indexed at the same place is left as it is."""
        with self.session() as s:
            found = s.scalar(
                select(ManifestEntry).where(
                    ManifestEntry.stream_id == entry.stream_id, ManifestEntry.idx == entry.idx
                )
            )
            if found is None:
                s.add(entry)
            elif found.sha256 != entry.sha256:
                raise StorageError(f"catalog already indexes another entry at {entry.blob_key}")

    def segments(self, stream_id: int) -> Sequence[Segment]:
        with self.session() as s:
            return s.scalars(
                select(Segment).where(Segment.stream_id == stream_id).order_by(Segment.seq)
            ).all()

    def segment_by_capture(self, stream_id: int, capture: str) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment).where(Segment.stream_id == stream_id, Segment.capture == capture)
            )

    def last_segment(self, stream_id: int) -> Segment | None:
        with self.session() as s:
            return s.scalar(
                select(Segment)
                .where(Segment.stream_id == stream_id)
                .order_by(Segment.seq.desc())
                .limit(1)
            )

    def add_segment(self, segment: Segment) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Segment).where(
                    Segment.stream_id == segment.stream_id, Segment.seq == segment.seq
                )
            )
            if found is None:
                s.add(segment)

    # Signatures
    def signatures(self, stream_id: int) -> Sequence[Signature]:
        with self.session() as s:
            return s.scalars(
                select(Signature)
                .where(Signature.stream_id == stream_id)
                .order_by(Signature.head_idx)
            ).all()

    def add_signature(self, signature: Signature) -> None:
        with self.session() as s:
            found = s.scalar(
                select(Signature).where(
                    Signature.stream_id == signature.stream_id,
                    Signature.head_idx == signature.head_idx,
                )
            )
            if found is None:
                s.add(signature)

    # Jobs
    def enqueue(self, kind: str, stream_id: int, segment_seq: int) -> None:
        """Queue a job once; queuing it again is a no-op."""
        try:
            with self.session() as s:
                exists = s.scalar(
                    select(Job.id).where(
                        Job.kind == kind, Job.stream_id == stream_id, Job.segment_seq == segment_seq
                    )
                )
                if exists is None:
                    s.add(Job(kind=kind, stream_id=stream_id, segment_seq=segment_seq))
        except SAIntegrityError:
            pass  # queued concurrently by another process

    def jobs(self, stream_id: int, kind: str | None = None) -> Sequence[Job]:
        with self.session() as s:
            query = select(Job).where(Job.stream_id == stream_id).order_by(Job.segment_seq)
            if kind:
                query = query.where(Job.kind == kind)
            return s.scalars(query).all()

    def backlog(self, kind: str) -> int:
        with self.session() as s:
            return int(
                s.scalar(select(func.count(Job.id)).where(Job.kind == kind, Job.status != "done"))
                or 0
            )
