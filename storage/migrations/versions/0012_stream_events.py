"""stream events: events as received, their sealed batches, refusals by reason

Revision ID: 0012
Revises: 0011

``stream_events`` holds each accepted event (unique per stream by its id) until and after
it is sealed into a batch; ``event_batches`` indexes the batch blobs entered in the chain
(kind "events"); ``event_refusals`` counts refused events per stream and reason.
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("batch_idx", sa.Integer(), nullable=True),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("stream_id", "event_id"),
    )
    op.create_index("ix_stream_events_stream_id", "stream_events", ["stream_id"])
    op.create_index("ix_stream_events_at", "stream_events", ["at"])
    op.create_index("ix_stream_events_batch_idx", "stream_events", ["batch_idx"])
    op.create_index("ix_stream_events_claim", "stream_events", ["claim"])
    op.create_table(
        "event_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("entry_idx", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(32), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("stream_id", "entry_idx"),
    )
    op.create_index("ix_event_batches_stream_id", "event_batches", ["stream_id"])
    op.create_index("ix_event_batches_batch", "event_batches", ["batch"])
    op.create_table(
        "event_refusals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint("stream_id", "reason"),
    )
    op.create_index("ix_event_refusals_stream_id", "event_refusals", ["stream_id"])


def downgrade() -> None:
    op.drop_table("event_refusals")
    op.drop_table("event_batches")
    op.drop_table("stream_events")
