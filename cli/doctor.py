"""``livewitness doctor``: check what a stage needs before (or instead of) starting it.

Read-only on purpose: it opens the catalog and the search index without migrating or
creating them, so it can be pointed at a damaged data directory (docs/operations.md).
"""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer

from cli.base import clean_errors, console
from core.settings import Settings, load_settings

# Storage modules are imported in the checks: every `livewitness` call imports this module.

commands = typer.Typer()  # registered on the app by cli.main

Outcome = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Finding:
    """One check: what was checked, how it stands, and what to do when it is not ok."""

    check: str
    outcome: Outcome
    detail: str
    remedy: str = ""


@commands.command()
@clean_errors
def doctor() -> None:
    """Check the catalog (integrity), the search index, free disk space and the signing
    key files, and say what to do; exit 0 when all is well, 1 when something is wrong."""
    settings = load_settings()
    findings = run_checks(settings)
    for found in findings:
        colour = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}[found.outcome]
        console.print(f"[{colour}]{found.outcome:<4}[/] {found.check:<12} ", end="")
        console.print(found.detail, markup=False, highlight=False)
        if found.remedy:
            console.print(f"{'':17}-> {found.remedy}", markup=False, highlight=False)
    if any(f.outcome == "FAIL" for f in findings):
        raise typer.Exit(1)


def run_checks(settings: Settings) -> list[Finding]:
    return [
        check_disk(settings),
        check_catalog(settings),
        check_search_index(settings),
        check_keys(settings),
    ]


def check_disk(settings: Settings) -> Finding:
    from storage.stages import free_disk_bytes

    free = free_disk_bytes(settings.home)
    if free is None:
        return Finding("disk", "FAIL", f"cannot read the free space of {settings.home}")
    mib = free // 2**20
    if settings.min_free_disk_mb and mib < settings.min_free_disk_mb:
        return Finding(
            "disk",
            "FAIL",
            f"{mib} MiB free on the disk of {settings.home}"
            f" (LIVEWITNESS_MIN_FREE_DISK_MB={settings.min_free_disk_mb})",
            "free some space there: recording, transcription and exports stop when it is"
            " full, and resume by themselves once space returns",
        )
    return Finding("disk", "ok", f"{mib} MiB free on the disk of {settings.home}")


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _check_sqlite(name: str, path: Path, pragma: str, table: str, remedy: str) -> Finding:
    """A SQLite file's own check (the catalog's full, the index's quick) and its rows."""
    try:
        with _read_only(path) as db:
            problems = [row[0] for row in db.execute(f"PRAGMA {pragma}(5)")]
            if problems != ["ok"]:
                return Finding(name, "FAIL", f"{path}: {'; '.join(problems)}", remedy)
            count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    except sqlite3.Error as exc:
        return Finding(name, "FAIL", f"{path} cannot be read: {exc}", remedy)
    checked = "integrity ok, " if pragma == "integrity_check" else ""
    return Finding(name, "ok", f"{path}: {checked}{count} {table}")


def check_catalog(settings: Settings) -> Finding:
    if settings.catalog_url and not settings.catalog_url.startswith("sqlite"):
        return _check_database_catalog(settings.catalog_url)
    from sqlalchemy.engine import make_url

    from storage.catalog.engine import RESTORE_DOC

    path = Path(make_url(settings.catalog_dsn).database or "")
    if not path.is_file():
        return Finding("catalog", "warn", f"no catalog at {path} yet (made at the first start)")
    restore = f"stop every stage and restore {path} from a backup ({RESTORE_DOC})"
    return _check_sqlite("catalog", path, "integrity_check", "streams", restore)


def _check_database_catalog(url: str) -> Finding:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from storage.catalog.engine import RESTORE_DOC

    shown = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            streams = connection.execute(text("SELECT count(*) FROM streams")).scalar_one()
    except SQLAlchemyError as exc:
        return Finding(
            "catalog",
            "FAIL",
            f"{shown}: {getattr(exc, 'orig', None) or exc}".splitlines()[0],
            "check that the database runs and LIVEWITNESS_CATALOG_URL reaches it; restore"
            f" a damaged database from its backups ({RESTORE_DOC})",
        )
    finally:
        engine.dispose()
    return Finding("catalog", "ok", f"{shown}: answers, {streams} streams")


def check_search_index(settings: Settings) -> Finding:
    reindex = "rebuild it from storage with `livewitness reindex` (stop the indexer first)"
    if settings.search_backend != "embedded":
        from indexer.factory import search_index_for

        try:
            index = search_index_for(settings)
            try:
                count = index.count()
            finally:
                index.close()
        except Exception as exc:  # any failure of the cluster is the finding itself
            return Finding("search", "FAIL", f"{settings.es_url}: {exc}", reindex)
        return Finding("search", "ok", f"{settings.es_url}: {count} utterances")
    from indexer.factory import embedded_index_path

    path = embedded_index_path(settings)
    if not path.is_file():
        return Finding(
            "search", "warn", f"no search index at {path} yet", "`livewitness reindex` builds it"
        )
    return _check_sqlite("search", path, "quick_check", "utterances", reindex)


def check_keys(settings: Settings) -> Finding:
    from storage.signing import PRIVATE_NAME

    private = settings.signing_keys_dir / PRIVATE_NAME
    if not private.is_file():
        return Finding(
            "keys",
            "warn",
            f"no signing key at {private}",
            "made at the first start of a new installation; on an existing one, copy the"
            " deployment's keys directory there (nothing can be signed without it)",
        )
    mode = stat.S_IMODE(private.stat().st_mode)
    if mode & 0o077:
        return Finding(
            "keys",
            "FAIL",
            f"{private} is readable by others (mode {mode:04o})",
            f"chmod 600 {private} (and chmod 700 {private.parent}); whoever reads it can sign"
            " as this installation",
        )
    return Finding("keys", "ok", f"{private} present, mode {mode:04o}")
