"""RFC 3161 time-stamp tokens over signed chain heads

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "timestamp_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("head_idx", sa.Integer(), nullable=False),
        sa.Column("tsa_id", sa.String(16), nullable=False),
        sa.Column("tsa_url", sa.Text(), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("imprint", sa.String(64), nullable=False),
        sa.Column("gen_time", UTCDateTime(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("stream_id", "head_idx", "tsa_id"),
    )
    op.create_index("ix_timestamp_tokens_stream_id", "timestamp_tokens", ["stream_id"])


def downgrade() -> None:
    op.drop_table("timestamp_tokens")
