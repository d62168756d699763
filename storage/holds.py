"""Legal holds on stored blobs: placing the ones the catalog records, and releasing
those of closed cases once their delay has passed.

The catalog (``BlobHold``) says which case holds which blob; the blob store carries the
hold itself (an S3 Object Lock legal hold on the object version, a hold record in the
local store). A hold the store could not take yet (S3 down, the blob still spooled) stays
unapplied and is retried by :func:`run_holds`, which ``serve`` runs every
``case_hold_check_seconds`` and ``livewitness cases holds`` runs once. A blob is released
only when no other unreleased hold (another case, open or still in its delay) is on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import ConfigError, NotFoundError, StorageError
from core.timeutil import utc_now
from storage.blobs.protocol import BlobStore
from storage.catalog import Catalog
from storage.models import BlobHold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldRun:
    applied: int
    pending: int  # recorded but not placed on the store yet (retried next run)
    released: int
    kept: int  # released in the catalog, kept on the store: another case holds it


def apply_holds(blobs: BlobStore, catalog: Catalog, holds: Sequence[BlobHold]) -> int:
    """Place ``holds`` on the store; returns how many it took (the rest are retried)."""
    done: list[int] = []
    unconfigured = False
    for hold in holds:
        try:
            blobs.hold(hold.blob_key)
        except NotFoundError:
            log.warning("cannot hold %s: it is not stored", hold.blob_key)
            continue
        except ConfigError as exc:
            # A bucket without Object Lock: a person has to act. The catalog's hold still
            # counts (retention respects it) and is placed once the store can take it.
            if not unconfigured:
                log.error("legal holds cannot be placed on the blob store: %s", exc)
            unconfigured = True
            continue
        except StorageError as exc:
            log.warning("hold of %s is retried later: %s", hold.blob_key, exc)
            continue
        done.append(hold.id)
    if done:
        catalog.mark_hold_applied(done)
    return len(done)


def run_holds(
    blobs: BlobStore, catalog: Catalog, delay_seconds: float, now: datetime | None = None
) -> HoldRun:
    """Apply unapplied holds, then release the due holds of closed cases."""
    pending = catalog.unapplied_holds()
    applied = apply_holds(blobs, catalog, pending)
    closed_before = (now or utc_now()) - timedelta(seconds=delay_seconds)
    released = kept = 0
    for hold in catalog.due_hold_releases(closed_before):
        if catalog.held_elsewhere(hold.blob_key, hold.id):
            kept += 1
        else:
            try:
                blobs.release(hold.blob_key)
            except ConfigError:
                pass  # a store that cannot hold has nothing to release
            except StorageError as exc:
                log.warning("release of %s is retried later: %s", hold.blob_key, exc)
                continue
            released += 1
        catalog.mark_hold_released(hold.id)
    return HoldRun(applied, len(pending) - applied, released, kept)


def follow_holds(
    blobs: BlobStore, catalog: Catalog, delay_seconds: float, every: float, stop: threading.Event
) -> None:
    """``serve``'s periodic hold task, until ``stop``."""
    while not stop.is_set():
        try:
            done = run_holds(blobs, catalog, delay_seconds)
            if done.applied or done.released or done.kept:
                log.info("holds: %s", done)
        except StorageError as exc:  # the catalog: tried again next time
            log.warning("hold task: %s", exc)
        stop.wait(every)
