"""The version of its master that a job processes, as its upload notification announced it: the object's
version id and ETag, so that a job enqueued again (lease sweeper, retry) checks the same version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("source_version_id", sa.String(1024)))
        batch.add_column(sa.Column("source_etag", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("source_etag")
        batch.drop_column("source_version_id")
