"""A recorded stream's chain as the catalog holds it, and the check that its entries
leave no hole that no gap entry explains (the live and S3 recording tests)."""

from __future__ import annotations

import itertools
from pathlib import Path

from core.settings import Settings
from storage.models import ManifestEntry, Segment
from storage.stores import open_stores


def chain_of(home: Path, stream: str) -> tuple[list[Segment], list[ManifestEntry]]:
    stores = open_stores(Settings(home=home))
    try:
        row = stores.catalog.get_stream(stream)
        return list(stores.catalog.segments(row.id)), list(stores.catalog.entries(row.id))
    finally:
        stores.close()


def assert_no_unexplained_holes(entries: list[ManifestEntry]) -> None:
    for before, after in itertools.pairwise(entries):
        assert (after.starts_at - before.ends_at).total_seconds() <= 1.0, (before.idx, after.idx)
