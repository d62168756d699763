"""The catalog's engine and sessions: the base every concern's mixin builds on.

Opening a catalog creates the engine (SQLite pragmas on SQLite), brings the schema up to
date with Alembic and makes the session factory; ``Changes`` carries in-process wake-ups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StorageError

# The migrations stay beside the package (storage/migrations), where the package data
# in pyproject.toml ships them, not inside storage/catalog.
MIGRATIONS = Path(__file__).parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    upgrade(engine, "head")


def upgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


JOBS_QUEUED = "jobs"
TRANSCRIPTS_STORED = "transcripts"
ALERTS_RAISED = "alerts"


class Changes:
    """Wake-ups between stages of one process (``serve``): a stage waiting for new jobs,
    transcripts or alerts hears of them as they commit instead of at its next poll.
    Stages in other processes still find them by polling the catalog."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._counts: dict[str, int] = {}

    def count(self, topic: str) -> int:
        with self._changed:
            return self._counts.get(topic, 0)

    def mark(self, topic: str) -> None:
        with self._changed:
            self._counts[topic] = self._counts.get(topic, 0) + 1
            self._changed.notify_all()

    def wait(self, topic: str, seen: int, timeout: float) -> int:
        """Wait until ``topic`` changed since its count was ``seen``, at most ``timeout``
        seconds; returns the count now (read ``count`` before looking at the catalog, so
        a change in between wakes the wait at once)."""
        with self._changed:
            self._changed.wait_for(lambda: self._counts.get(topic, 0) != seen, timeout)
            return self._counts.get(topic, 0)


class CatalogBase:
    """The engine, its sessions and the wake-ups; each concern is a mixin over this."""

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
        self.changes = Changes()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
