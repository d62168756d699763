"""cases: cases, their moments, signed overlays (notes, tags, corrections) and the legal
holds they place on stored blobs

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(128), nullable=True, unique=True),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(160), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_table(
        "case_moments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("stream_id", sa.Integer(), sa.ForeignKey("streams.id"), nullable=False),
        sa.Column("start_offset", sa.Float(), nullable=False),
        sa.Column("end_offset", sa.Float(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("found_by", sa.Text(), nullable=False),
        sa.Column("matched", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
    )
    op.create_index("ix_case_moments_case_id", "case_moments", ["case_id"])
    op.create_index("ix_case_moments_stream_id", "case_moments", ["stream_id"])
    op.create_table(
        "case_overlays",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("moment_id", sa.Integer(), sa.ForeignKey("case_moments.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(160), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_case_overlays_case_id", "case_overlays", ["case_id"])
    op.create_index("ix_case_overlays_moment_id", "case_overlays", ["moment_id"])
    op.create_table(
        "blob_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("case_id", "blob_key"),
    )
    op.create_index("ix_blob_holds_case_id", "blob_holds", ["case_id"])
    op.create_index("ix_blob_holds_blob_key", "blob_holds", ["blob_key"])


def downgrade() -> None:
    op.drop_table("blob_holds")
    op.drop_table("case_overlays")
    op.drop_table("case_moments")
    op.drop_table("cases")
