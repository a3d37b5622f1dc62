"""The uploader of a job's master, as a keyed pseudonym (never the identity itself).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("uploader", sa.String(80)))
        batch.create_index("ix_jobs_uploader", ["uploader"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_uploader")
        batch.drop_column("uploader")
