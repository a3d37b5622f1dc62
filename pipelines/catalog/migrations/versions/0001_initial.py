"""Assets, jobs and renditions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_now = sa.func.current_timestamp()


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(64), index=True),
        sa.Column("kind", sa.String(16), index=True),
        sa.Column("duration_s", sa.Float()),
        sa.Column("container", sa.String(64)),
        sa.Column("title", sa.Text()),
        sa.Column("artist", sa.Text()),
        sa.Column("hls_master", sa.Text()),
        sa.Column("probe", sa.JSON()),
        sa.Column("latest_job_id", sa.String(36)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("asset_id", sa.String(128), nullable=False, index=True),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("stage", sa.String(32)),
        sa.Column("percent", sa.Float(), nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("document", sa.JSON()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now),
    )
    op.create_table(
        "renditions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "asset_id", sa.String(128), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("codecs", sa.String(64), nullable=False),
        sa.Column("bandwidth", sa.Integer(), nullable=False),
        sa.Column("average_bandwidth", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("frame_rate", sa.Float()),
        sa.Column("channels", sa.Integer()),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("playlist_uri", sa.Text(), nullable=False),
        sa.UniqueConstraint("asset_id", "name", name="uq_renditions_asset_name"),
    )


def downgrade() -> None:
    op.drop_table("renditions")
    op.drop_table("jobs")
    op.drop_table("assets")
