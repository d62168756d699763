"""A stage started on its own refuses a configuration that cannot work (issue 14).

Two data directories share one catalog (a SQLite file both name, standing in for a
PostgreSQL server) as two hosts would; only the recorder's directory holds the blobs
and only the indexer's holds the embedded index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli.placement import check_placement
from core.errors import ConfigError
from core.settings import Settings
from indexer.factory import open_search_index
from indexer.service import Indexer
from storage.blobs.protocol import sha256_file
from storage.chain import ClosedSegment
from storage.models import Transcript
from storage.stores import Stores, open_stores
from tests.support.cli import run_cli


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared' / 'catalog.sqlite3'}"


@pytest.fixture
def recorded(tmp_path: Path, catalog_url: str) -> Iterator[Stores]:
    """The recorder's data directory, with one segment and its transcript catalogued."""
    stores = open_stores(settings_in(tmp_path / "recorder", catalog_url=catalog_url))
    sid = stores.chain.open_stream("shop", "rtmp://example/live")
    path = tmp_path / "segment.ts"
    path.write_bytes(os.urandom(4096))
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    closed = ClosedSegment(path, sha256_file(path), 4096, start, 10.0, "s/0")
    segment = stores.chain.append_segment(sid, "shop", closed)
    stores.catalog.add_transcript(
        Transcript(
            stream_id=sid,
            segment_seq=segment.seq,
            blob_key="streams/shop/transcripts/00000000.json",
            language="zh",
            model="test",
            text="",
            body="{}",
        )
    )
    yield stores
    stores.close()


def settings_in(home: Path, **fields: Any) -> Settings:
    # _env_file=None: a developer's .env must not change what the test checks.
    return Settings(_env_file=None, home=home, **fields)  # type: ignore[call-arg]


def test_stages_with_local_blobs_must_share_the_recorders_data_directory(
    tmp_path: Path, catalog_url: str, recorded: Stores
) -> None:
    for stage in ("recorder", "transcriber"):
        check_placement(stage, recorded)  # the directory that holds the blobs: fine
    other = open_stores(settings_in(tmp_path / "other", catalog_url=catalog_url))
    try:
        for stage in ("api", "recorder", "transcriber"):
            with pytest.raises(ConfigError, match=r"every stage must use the data directory"):
                check_placement(stage, other)
        check_placement("indexer", other)  # reads transcripts from the catalog only
    finally:
        other.close()


def test_the_api_with_embedded_search_needs_the_indexers_data_directory(
    recorded: Stores,
) -> None:
    with pytest.raises(ConfigError, match=r"no indexer writes there") as refused:
        check_placement("api", recorded)
    assert "\n" not in str(refused.value)
    index = open_search_index(recorded)
    try:
        Indexer(recorded, index)  # an indexer started on this data directory
    finally:
        index.close()
    check_placement("api", recorded)
    elastic = recorded.settings.model_copy(update={"search_backend": "elasticsearch"})
    check_placement("api", Stores(elastic, recorded.catalog, recorded.blobs, recorded.chain))


def test_a_fresh_installation_starts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stores = open_stores(settings_in(tmp_path / "fresh"))
    try:
        check_placement("api", stores)  # nothing recorded yet: nothing to miss
    finally:
        stores.close()
    assert "no indexer has written to" in caplog.text


def test_the_stage_command_refuses_with_one_line_and_exit_2(
    tmp_path: Path, catalog_url: str, recorded: Stores
) -> None:
    result = run_cli(tmp_path / "other", "transcriber", LIVEWITNESS_CATALOG_URL=catalog_url)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the transcriber cannot start" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
