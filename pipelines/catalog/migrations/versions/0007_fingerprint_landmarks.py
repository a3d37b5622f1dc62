"""Spectral-peak landmarks beside each Chromaprint fingerprint: what finds a clip in heavy noise. Rows written
before have none until their asset is processed again; the match index simply has no landmarks for them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.add_column(sa.Column("landmarks", sa.LargeBinary()))


def downgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:
        batch.drop_column("landmarks")
