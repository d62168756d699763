"""Speech chunks (transcription as speech arrives) and transcript parts

Revision ID: 0013
Revises: 0012

``speech_chunks`` lists the chunks the recorder cut at pauses from its PCM tap.
``transcripts`` gains ``part`` (0: a segment decoded whole; n > 0: the transcript of
speech chunk n - 1, filed under the segment it began in) and its unique key becomes
(stream_id, segment_seq, part): the table is rebuilt, rows kept as part 0.
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLUMNS = "id, stream_id, segment_seq, blob_key, language, model, text, body, created_at"


def _transcripts_table(name: str, with_part: bool) -> None:
    columns = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
    ]
    if with_part:
        columns.append(sa.Column("part", sa.Integer(), nullable=False, server_default="0"))
    columns += [
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    ]
    key = ("stream_id", "segment_seq", "part") if with_part else ("stream_id", "segment_seq")
    op.create_table(
        name,
        *columns,
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(*key),
    )


def _rebuild(with_part: bool) -> None:
    # A new table rather than altering the unique key: the old key has no name to drop
    # by on SQLite, and a copy works the same on PostgreSQL.
    _transcripts_table("transcripts_new", with_part)
    where = "" if with_part else " WHERE part = 0"
    op.execute(f"INSERT INTO transcripts_new ({_COLUMNS}) SELECT {_COLUMNS} FROM transcripts{where}")
    op.drop_index("ix_transcripts_stream_id", table_name="transcripts")
    op.drop_table("transcripts")
    op.rename_table("transcripts_new", "transcripts")
    op.create_index("ix_transcripts_stream_id", "transcripts", ["stream_id"])
    if op.get_bind().dialect.name == "postgresql":  # the copied ids go on from the old ones
        op.execute(
            "SELECT setval(pg_get_serial_sequence('transcripts', 'id'),"
            " COALESCE((SELECT MAX(id) FROM transcripts), 0) + 1, false)"
        )


def upgrade() -> None:
    op.create_table(
        "speech_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("segment_seq", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("offset", sa.Float(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "seq"),
    )
    op.create_index("ix_speech_chunks_stream_id", "speech_chunks", ["stream_id"])
    _rebuild(with_part=True)


def downgrade() -> None:
    _rebuild(with_part=False)
    op.drop_index("ix_speech_chunks_stream_id", table_name="speech_chunks")
    op.drop_table("speech_chunks")
