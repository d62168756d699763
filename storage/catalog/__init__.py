"""The catalog: streams, manifest index, segments, signatures and jobs (SQLAlchemy 2).

SQLite in the data directory by default, PostgreSQL by URL. The schema is brought up to
date with Alembic every time a catalog is opened.

One class, ``Catalog``, composed of one mixin per concern over a shared engine:

- ``engine.py``: ``CatalogBase`` (engine, sessions, SQLite pragmas, Alembic ``migrate``
  and ``upgrade``) and ``Changes``, the in-process wake-ups, with their topics;
- ``streams.py``: streams, their details and status, recording wants and leases;
- ``chain.py``: manifest entries, segments and signatures;
- ``transcripts.py``: transcripts and products;
- ``jobs.py``: the job queue and its leases (``WAITING``);
- ``access.py``: API keys and the audit log's rows;
- ``compliance.py``: banned-word hits, webhooks and alerts;
- ``receipts.py``: signed heads queued for the webhooks (receipts);
- ``outbox.py``: every webhook event's deliveries and their log (``OutboxEvent``);
- ``timestamps.py``: RFC 3161 tokens over signed heads, and the heads still unstamped;
- ``events.py``: stream events (chat, product cards...), their sealed batches, refusals;
- ``cases.py``: cases, their moments and overlays' index, and legal holds on blobs;
- ``screen.py``: keyframes and the on-screen text read in them (OCR);
- ``timeline.py``: events and screen text stored after a catalog id (what the indexer follows);
- ``aggregates.py``: stream summaries (``StreamSummary``) and the counts for metrics.
"""

from __future__ import annotations

from storage.catalog.access import AccessMixin
from storage.catalog.aggregates import AggregatesMixin, StreamSummary
from storage.catalog.cases import CasesMixin
from storage.catalog.chain import ChainMixin
from storage.catalog.compliance import ComplianceMixin
from storage.catalog.engine import (
    ALERTS_RAISED,
    JOBS_QUEUED,
    MIGRATIONS,
    TRANSCRIPTS_STORED,
    CatalogBase,
    Changes,
    _sqlite_pragmas,
    migrate,
    upgrade,
)
from storage.catalog.events import EventsMixin
from storage.catalog.jobs import WAITING, JobsMixin
from storage.catalog.outbox import OutboxEvent, OutboxMixin
from storage.catalog.receipts import ReceiptsMixin
from storage.catalog.screen import ScreenMixin
from storage.catalog.streams import StreamsMixin
from storage.catalog.timeline import TimelineMixin
from storage.catalog.timestamps import (
    AUDIT_LOG,
    CHAIN_LOG,
    SIGNATURES_STORED,
    TimestampsMixin,
    UnstampedHead,
)
from storage.catalog.transcripts import TranscriptsMixin

__all__ = [
    "ALERTS_RAISED",
    "AUDIT_LOG",
    "CHAIN_LOG",
    "JOBS_QUEUED",
    "MIGRATIONS",
    "SIGNATURES_STORED",
    "TRANSCRIPTS_STORED",
    "WAITING",
    "Catalog",
    "CatalogBase",
    "Changes",
    "OutboxEvent",
    "StreamSummary",
    "UnstampedHead",
    "_sqlite_pragmas",  # the schema tests open engines of their own with it
    "migrate",
    "upgrade",
]


class Catalog(
    StreamsMixin,
    ChainMixin,
    TranscriptsMixin,
    JobsMixin,
    AccessMixin,
    ComplianceMixin,
    ReceiptsMixin,
    OutboxMixin,
    TimestampsMixin,
    AggregatesMixin,
    EventsMixin,
    CasesMixin,
    ScreenMixin,
    TimelineMixin,
):
    """The catalog: ``Catalog(url)`` opens it (see the module docstring for the parts)."""
