"""Fingerprints of assets, and the catalog assets each new master was found to match.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("asset_id", sa.String(128), sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("items", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
    )
    op.create_table(
        "asset_matches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("asset_id", sa.String(128), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("matched_asset_id", sa.String(128), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("query_offset_s", sa.Float(), nullable=False),
        sa.Column("asset_offset_s", sa.Float(), nullable=False),
        sa.Column("matched_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()),
        sa.UniqueConstraint("asset_id", "matched_asset_id", name="uq_asset_matches_pair"),
    )


def downgrade() -> None:
    op.drop_table("asset_matches")
    op.drop_table("fingerprints")
