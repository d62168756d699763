"""The catalog's engine and sessions: the base every concern's mixin builds on.

Opening a catalog creates the engine (SQLite pragmas on SQLite), brings the schema up to
date with Alembic and makes the session factory; ``Changes`` carries in-process wake-ups.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import DamagedFileError, DiskFullError, LiveWitnessError, StorageError

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
    if _at_head(engine):
        return  # most opens: Alembic (a third of a CLI command's start) is not imported
    upgrade(engine, "head")


def upgrade(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


_REVISION = re.compile(r"^revision\b[^=]*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=]*=(.*)$", re.MULTILINE)


def _head_revisions() -> set[str] | None:
    """The migrations' heads (revisions no other revises), read from the files as text;
    None when a file does not say plainly (then Alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        found, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if found is None or down is None:
            return None
        revisions.add(found.group(1))
        revised.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return (revisions - revised) or None


def _at_head(engine: Engine) -> bool:
    """Whether the database already has every migration: then there is nothing to do."""
    heads = _head_revisions()
    if heads is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows} == heads
    except DBAPIError:  # no table yet, or damage: Alembic's path says what is wrong
        return False


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


#: Where to read how to restore a damaged catalog (named in the error line).
RESTORE_DOC = "docs/operations.md, 'Restoring the catalog'"


def catalog_fault(exc: DBAPIError, url: str) -> LiveWitnessError | None:
    """The one-line error for a SQLite catalog that is damaged or whose disk is full;
    None for every other database error (constraint violations, locks, PostgreSQL)."""
    orig = exc.orig
    if not isinstance(orig, sqlite3.DatabaseError):
        return None
    name = getattr(orig, "sqlite_errorname", "")
    path = make_url(url).database or url
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return DamagedFileError(
            path,
            f"the catalog {path} is damaged ({orig}): stop every stage and restore it from"
            f" a backup ({RESTORE_DOC}); `livewitness doctor` checks it",
        )
    if name == "SQLITE_FULL":
        return DiskFullError(
            f"no space left on the device holding the catalog {path}; free some space there"
            " (`livewitness doctor` shows how much is left)"
        )
    return None


class CatalogBase:
    """The engine, its sessions and the wake-ups; each concern is a mixin over this."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            fault = catalog_fault(exc, url)
            if fault is not None:
                raise fault from None
            if isinstance(exc, OperationalError):
                raise StorageError(f"cannot open the catalog: {exc.orig}") from exc
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.changes = Changes()

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except DBAPIError as exc:
            fault = catalog_fault(exc, self.url)
            if fault is not None:
                raise fault from exc
            raise

    def close(self) -> None:
        self.engine.dispose()
