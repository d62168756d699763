"""The migrations build exactly the tables the models describe (no drift)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, text

from storage.catalog import Catalog, _sqlite_pragmas, upgrade
from storage.models import Base


def test_migrations_match_the_models(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    with catalog.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    catalog.close()
    assert differences == []


def test_a_catalog_with_data_upgrades_from_every_earlier_revision(tmp_path: Path) -> None:
    for revision in ("0001", "0002", "0003", "0004"):
        url = f"sqlite:///{tmp_path / revision}.sqlite3"
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)  # foreign keys on, as in use
        upgrade(engine, revision)
        with engine.begin() as db:
            db.execute(
                text(
                    "INSERT INTO streams (id, name, status, created_at, updated_at)"
                    " VALUES (1, 'shop', 'idle', '2026-11-20', '2026-11-20')"
                )
            )
            db.execute(
                text(
                    "INSERT INTO jobs (stream_id, segment_seq, kind, status, attempts,"
                    " created_at, updated_at) VALUES (1, 0, 'transcribe', 'queued', 0,"
                    " '2026-11-20', '2026-11-20')"
                )
            )
        engine.dispose()
        catalog = Catalog(url)  # upgrades to the newest revision
        (stream,) = catalog.list_streams()
        assert (stream.name, stream.wanted) == ("shop", False), revision
        assert catalog.backlog("transcribe") == 1
        catalog.close()
