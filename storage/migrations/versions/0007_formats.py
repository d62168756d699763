"""Format versions: which canonical JSON an audit event's hash was computed over

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL on every earlier row means version 1 (the legacy canonical JSON), so existing
    # audit logs keep verifying without being rewritten.
    op.add_column("audit_events", sa.Column("format_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("format_version")
