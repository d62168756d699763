"""transcripts, products, stream language, job timing

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("started_at", storage.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("finished_at", storage.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("audio_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rtf", sa.Float(), nullable=True))
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "segment_seq"),
    )
    op.create_index("ix_transcripts_stream_id", "transcripts", ["stream_id"])
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "name"),
    )
    op.create_index("ix_products_stream_id", "products", ["stream_id"])


def downgrade() -> None:
    op.drop_table("products")
    op.drop_table("transcripts")
    with op.batch_alter_table("jobs") as batch:
        for column in ("rtf", "audio_seconds", "finished_at", "started_at"):
            batch.drop_column(column)
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("language")
