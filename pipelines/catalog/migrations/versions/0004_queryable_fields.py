"""Fields the catalog, search and rights teams query by: tags and features of assets, quality of renditions.

They are copies of values in the job document, kept as columns so that "every music asset in A minor between
120 and 130 BPM" or "every rendition under VMAF 80" is an indexed query rather than a scan of JSON.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from typing import Any

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ASSET_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any], bool], ...] = (
    ("album", sa.Text(), False),
    ("isrc", sa.String(32), True),
    ("language", sa.String(16), True),
    ("release_date", sa.String(10), True),
    ("tempo", sa.Float(), True),
    ("key", sa.Integer(), True),
    ("mode", sa.Integer(), False),
    ("content_class", sa.String(16), True),
    ("loudness_lufs", sa.Float(), False),
    ("quality_score", sa.Float(), True),
)
_RENDITION_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("vmaf", sa.Float()),
    ("vmaf_phone", sa.Float()),
    ("psnr", sa.Float()),
    ("ssim", sa.Float()),
    ("quality_score", sa.Float()),
    ("wasted_bits", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        for name, type_, indexed in _ASSET_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
            if indexed:
                batch.create_index(f"ix_assets_{name}", [name])
    with op.batch_alter_table("renditions") as batch:
        for name, type_ in _RENDITION_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("renditions") as batch:
        for name, _ in reversed(_RENDITION_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("assets") as batch:
        for name, _, indexed in reversed(_ASSET_COLUMNS):
            if indexed:
                batch.drop_index(f"ix_assets_{name}")
            batch.drop_column(name)
