"""The migrations build exactly the tables the models describe (no drift)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, text

from core.timeutil import utc_now
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


def test_alert_and_receipt_deliveries_move_into_one_outbox_with_their_logs(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine, "0009")
    log = '[{"at": "2026-11-20T10:00:01.000Z", "status": 200, "error": null, "ms": 3.0}]'
    with engine.begin() as db:
        for statement in (
            "INSERT INTO streams (id, name, status, created_at, updated_at)"
            " VALUES (1, 'shop', 'stopped', '2026-11-20', '2026-11-20')",
            "INSERT INTO webhooks (id, url, secret, active, created_at)"
            " VALUES (1, 'https://cases.example/hook', 's3cret-s3cret-s3cret', 1, '2026-11-20')",
            'INSERT INTO alerts (id, stream_id, kind, term, "offset", payload, created_at)'
            " VALUES (1, 1, 'banned_word', '全网最低价', 4.5, '{\"event\": \"banned_word\"}',"
            " '2026-11-20 10:00:00')",
            "INSERT INTO receipts (id, event, subject, head_idx, head_sha256, payload,"
            " created_at) VALUES (1, 'chain.head', 'shop', 7, '" + "a" * 64 + "',"
            " '{\"event\": \"chain.head\"}', '2026-11-20 10:00:02')",
        ):
            db.execute(text(statement))
        db.execute(
            text(
                "INSERT INTO alert_deliveries (alert_id, webhook_id, status, attempts,"
                " next_attempt_at, last_status, log, delivered_at, created_at) VALUES"
                " (1, 1, 'delivered', 1, '2026-11-20 10:00:00', 200, :log,"
                " '2026-11-20 10:00:01', '2026-11-20 10:00:00')"
            ),
            {"log": log},
        )
        db.execute(
            text(
                "INSERT INTO receipt_deliveries (receipt_id, webhook_id, status, attempts,"
                " next_attempt_at, log, created_at) VALUES"
                " (1, 1, 'pending', 0, '2026-11-20 10:00:02', '[]', '2026-11-20 10:00:02')"
            )
        )
    engine.dispose()
    catalog = Catalog(url)
    alert, receipt = catalog.deliveries()
    assert (alert.event, alert.subject, alert.summary) == ("banned_word", "shop", "全网最低价")
    assert (alert.status, alert.attempts, alert.last_status) == ("delivered", 1, 200)
    assert alert.body == '{"event": "banned_word"}' and alert.log == log
    assert (receipt.event, receipt.subject, receipt.summary) == ("chain.head", "shop", "7")
    assert (receipt.status, receipt.body) == ("pending", '{"event": "chain.head"}')
    assert [d.id for d, _ in catalog.due_deliveries(utc_now())] == [receipt.id]
    catalog.close()
