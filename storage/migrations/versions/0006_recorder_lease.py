"""Which recorder holds each stream, and until when (recorders on several machines)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: batch mode would rebuild `streams`, which other tables reference.
    op.add_column("streams", sa.Column("recorder", sa.String(160), nullable=True))
    op.add_column("streams", sa.Column("recorder_lease_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("recorder_lease_until")
        batch.drop_column("recorder")
