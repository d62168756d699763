"""Which stages must share what, checked when a stage starts on its own.

Run as separate processes (``livewitness api``, ``recorder``, ``transcriber``,
``indexer``), the stages meet only in what their configuration says they share:

- the catalog: a PostgreSQL database, or with SQLite the file in the data directory, so
  with SQLite every stage runs on one host with one data directory;
- the blobs: an S3 bucket, or with the local backend the data directory's ``blobs/``, so
  with local blobs every stage that records or reads evidence uses one data directory;
- the search index: Elasticsearch, or with the embedded engine the data directory's
  ``search/``, which the indexer writes and the API reads: one data directory for both.

A stage whose configuration cannot work with what the catalog already records stops with
one line saying what to share (:func:`check_placement`). Not detectable here: a SQLite
catalog or a data directory on a network filesystem that several hosts mount (SQLite's
locks do not hold there); docs/deploy.md says what to do instead.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from core.errors import ConfigError
from storage.models import Segment, Stream, Transcript
from storage.stores import Stores

log = logging.getLogger(__name__)

# What the indexer keeps beside the embedded index (indexer/service.py): written when an
# indexer starts on a data directory, so its presence says an indexer writes there.
INDEXER_STATE = ("search", "indexed.json")

BLOB_STAGES = ("api", "recorder", "transcriber", "ocr")  # they write or read segments


def check_placement(stage: str, stores: Stores) -> None:
    """Refuse to start ``stage`` when its configuration cannot see what other stages
    wrote (ConfigError with one line); log a warning when it cannot tell yet."""
    if stage in BLOB_STAGES:
        _check_blobs(stage, stores)
    if stage == "api":
        _check_search(stores)


def _check_blobs(stage: str, stores: Stores) -> None:
    settings = stores.settings
    if settings.blob_backend != "local":
        return  # S3: every stage on every host reaches the same bucket
    with stores.catalog.session() as s:
        oldest = s.execute(
            select(Segment.blob_key, Stream.name)
            .join(Stream, Stream.id == Segment.stream_id)
            .order_by(Segment.id)
            .limit(1)
        ).first()
    if oldest is None or stores.blobs.stat(oldest.blob_key) is not None:
        return
    raise ConfigError(
        f"the {stage} cannot start: the catalog lists segments of {oldest.name!r} that are not"
        f" in {settings.blobs_dir.resolve()}; with LIVEWITNESS_BLOB_BACKEND=local every stage"
        " must use the data directory the recorder writes (one host, one LIVEWITNESS_HOME),"
        " or use LIVEWITNESS_BLOB_BACKEND=s3"
    )


def _check_search(stores: Stores) -> None:
    settings = stores.settings
    if settings.search_backend != "embedded":
        return  # Elasticsearch: the API and the indexer reach the same cluster
    state = settings.home.joinpath(*INDEXER_STATE)
    if state.exists():
        return
    with stores.catalog.session() as s:
        transcribed = s.scalar(select(Transcript.id).limit(1)) is not None
    where = (settings.home / "search").resolve()
    if transcribed:
        raise ConfigError(
            f"the api cannot start: it searches the embedded index in {where}, but no indexer"
            " writes there while the catalog holds transcripts; run the api and the indexer"
            " with one data directory (LIVEWITNESS_HOME), or use"
            " LIVEWITNESS_SEARCH_BACKEND=elasticsearch"
        )
    log.warning(
        "no indexer has written to %s yet: with the embedded search engine the api and the"
        " indexer must share this data directory",
        where,
    )
