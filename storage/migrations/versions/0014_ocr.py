"""ocr: keyframes (chained JPEGs of sampled moments) and the on-screen text read in them

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keyframes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("offset", sa.Float(), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("entry_idx", sa.Integer(), nullable=False),
        sa.UniqueConstraint("stream_id", "blob_key"),
    )
    op.create_index("ix_keyframes_stream_id", "keyframes", ["stream_id"])
    op.create_index("ix_keyframes_at", "keyframes", ["at"])
    op.create_table(
        "screen_text",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("search", sa.Text(), nullable=False),
        sa.Column("box", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("first_offset", sa.Float(), nullable=False),
        sa.Column("last_offset", sa.Float(), nullable=False),
        sa.Column("open_start", sa.Boolean(), nullable=False),
        sa.Column("open_end", sa.Boolean(), nullable=False),
        sa.Column("keyframe_key", sa.String(512), nullable=False),
    )
    op.create_index("ix_screen_text_stream_id", "screen_text", ["stream_id"])
    op.create_index("ix_screen_text_first_seen_at", "screen_text", ["first_seen_at"])


def downgrade() -> None:
    op.drop_table("screen_text")
    op.drop_table("keyframes")
