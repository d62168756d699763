"""One outbox for every webhook event; time-stamp tokens for the audit log's heads too,
and the chain entry that references each token

Revision ID: 0010
Revises: 0009

``alert_deliveries`` and ``receipt_deliveries`` become one ``webhook_deliveries`` table
(each row holds the body it posts), keeping every delivery's status and log.
``timestamp_tokens`` gains ``log`` ("chain" or "audit"; audit tokens have no stream) and
``referenced_idx``.
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LOG_COLUMNS = (
    "status, attempts, next_attempt_at, last_status, last_error, log, delivered_at, created_at"
)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("webhook_id", sa.Integer(), sa.ForeignKey("webhooks.id"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])
    # In the order they were queued, alerts and receipts interleaved.
    op.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event, subject, summary, body, "
        f"{_LOG_COLUMNS}) SELECT webhook_id, event, subject, summary, body, {_LOG_COLUMNS} "
        "FROM ("
        f" SELECT d.webhook_id, a.kind AS event, s.name AS subject, a.term AS summary,"
        f" a.payload AS body, d.{_LOG_COLUMNS.replace(', ', ', d.')}, 0 AS origin, d.id AS n"
        " FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id"
        " JOIN streams s ON s.id = a.stream_id"
        " UNION ALL"
        f" SELECT d.webhook_id, r.event, r.subject, CAST(r.head_idx AS TEXT),"
        f" r.payload, d.{_LOG_COLUMNS.replace(', ', ', d.')}, 1, d.id"
        " FROM receipt_deliveries d JOIN receipts r ON r.id = d.receipt_id"
        ") old ORDER BY created_at, origin, n"
    )
    op.drop_table("alert_deliveries")
    op.drop_table("receipt_deliveries")

    with op.batch_alter_table("timestamp_tokens") as batch:
        batch.add_column(sa.Column("log", sa.String(8), nullable=False, server_default="chain"))
        batch.add_column(sa.Column("referenced_idx", sa.Integer(), nullable=True))
        batch.alter_column("stream_id", existing_type=sa.Integer(), nullable=True)
        # The unique (stream_id, head_idx, tsa_id) stays: audit tokens have no stream,
        # and the stamper looks before it adds.


def downgrade() -> None:
    raise NotImplementedError("the outbox is not split back into two tables")
