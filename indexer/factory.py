"""The search index factory: the configured SearchIndex backend."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError, DamagedFileError
from core.settings import Settings
from indexer.embedded import EmbeddedSearchIndex
from indexer.protocol import SearchIndex

if TYPE_CHECKING:  # searching opens no catalog
    from storage.stores import Stores

log = logging.getLogger(__name__)


def open_search_index(stores: Stores, *, discard_damaged: bool = False) -> SearchIndex:
    return search_index_for(stores.settings, discard_damaged=discard_damaged)


def embedded_index_path(settings: Settings) -> Path:
    return settings.home / "search" / "utterances.sqlite3"


def indexed_state_path(settings: Settings) -> Path:
    """Which transcripts the indexer has indexed (indexer/service.py keeps it)."""
    return settings.home / "search" / "indexed.json"


def embedded_index_current(settings: Settings) -> bool:
    """Whether the embedded index holds every transcript of a SQLite catalog, found
    without opening the catalog's models (what makes `livewitness search` start fast):
    as many transcripts as the indexer has noted indexed (transcripts are one per
    segment and written once). False whenever it cannot tell."""
    if settings.search_backend != "embedded" or not settings.catalog_dsn.startswith("sqlite"):
        return False
    catalog = Path(settings.catalog_dsn.removeprefix("sqlite:///"))
    try:
        indexed = len(json.loads(indexed_state_path(settings).read_text()))
        uri = f"{catalog.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            stored = db.execute("SELECT count(*) FROM transcripts").fetchone()[0]
    except (OSError, ValueError, TypeError, sqlite3.Error):
        return False
    return bool(stored == indexed)


def open_embedded(path: Path, *, discard_damaged: bool = False) -> SearchIndex:
    """The embedded index; a damaged file is one line naming it and the way out, or (for
    ``reindex``, which rebuilds it from storage anyway) deleted and started anew: the
    index is derived data, never evidence."""
    if discard_damaged and path.is_file() and not _sound(path):
        log.warning("the search index %s is damaged: starting it anew", path)
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            path.with_name(name).unlink(missing_ok=True)
    try:
        return EmbeddedSearchIndex(path)
    except sqlite3.DatabaseError as exc:
        raise DamagedFileError(path, damaged_index_line(path, exc)) from None


def damaged_index_line(path: Path | str, exc: BaseException) -> str:
    return f"the search index {path} is damaged ({exc}): rebuild it with `livewitness reindex`"


def _sound(path: Path) -> bool:
    """Whether SQLite reads every page of the file (header, b-trees) without complaint."""
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("PRAGMA quick_check(1)")] == ["ok"]
    except sqlite3.DatabaseError:
        return False


def search_index_for(settings: Settings, *, discard_damaged: bool = False) -> SearchIndex:
    """The configured backend: the embedded engine, or an Elasticsearch cluster."""
    if settings.search_backend == "elasticsearch":
        if not settings.es_url:
            raise ConfigError("the elasticsearch search backend needs LIVEWITNESS_ES_URL")
        try:
            from indexer.elastic import ElasticSearchIndex
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in ("elasticsearch", "elastic_transport"):
                raise
            raise ConfigError(
                "the elasticsearch search backend needs: pip install 'livewitness[elasticsearch]'"
            ) from None
        return ElasticSearchIndex(
            settings.es_url,
            settings.es_index_prefix,
            api_key=settings.es_api_key,
            username=settings.es_username,
            password=settings.es_password,
            verify_certs=settings.es_verify_certs,
            ca_certs=str(settings.es_ca_certs) if settings.es_ca_certs else None,
            request_timeout=settings.es_request_timeout_seconds,
            shards=settings.es_shards,
            replicas=settings.es_replicas,
        )
    return open_embedded(embedded_index_path(settings), discard_damaged=discard_damaged)
