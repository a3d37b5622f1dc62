"""The catalog's tables. The schema itself is owned by the Alembic migrations beside this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Asset(Base):
    """A master and what the latest successful job learned about it."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_uri: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str | None] = mapped_column(String(16), index=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    container: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    artist: Mapped[str | None] = mapped_column(Text)
    album: Mapped[str | None] = mapped_column(Text)
    isrc: Mapped[str | None] = mapped_column(String(32), index=True)
    language: Mapped[str | None] = mapped_column(String(16), index=True)
    release_date: Mapped[str | None] = mapped_column(String(10), index=True)
    """ISO 8601, as precise as the tags allow: ``2019``, ``2019-05`` or ``2019-05-17``."""
    tempo: Mapped[float | None] = mapped_column(Float, index=True)
    key: Mapped[int | None] = mapped_column(Integer, index=True)
    """Pitch class of the tonic, 0 = C … 11 = B, as Spotify's ``key``; mode 1 = major, 0 = minor."""
    mode: Mapped[int | None] = mapped_column(Integer)
    content_class: Mapped[str | None] = mapped_column(String(16), index=True)
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    quality_score: Mapped[float | None] = mapped_column(Float, index=True)
    hls_master: Mapped[str | None] = mapped_column(Text)
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    latest_job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Job(Base):
    """One run of the pipeline over one master: its state, progress, error and final document."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(128), index=True)
    source_uri: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lost_runs: Mapped[int] = mapped_column(Integer, default=0)
    """Runs that ended without a word: the worker died or was killed while holding the job."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    uploader: Mapped[str | None] = mapped_column(String(80), index=True)
    """Who uploaded the master, as ``hmac-sha256:…`` (``pipelines.privacy.pseudonym``), never in clear."""
    source_version_id: Mapped[str | None] = mapped_column(String(1024))
    source_etag: Mapped[str | None] = mapped_column(String(128))
    """The master's version id and ETag as its upload notification announced them: every run of the job, the
    first or one enqueued again, processes that version or fails ``source_replaced``."""
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rendition(Base):
    """One published rung of an asset's ladder, with the bit rates measured on its files."""

    __tablename__ = "renditions"
    __table_args__ = (UniqueConstraint("asset_id", "name", name="uq_renditions_asset_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    codecs: Mapped[str] = mapped_column(String(64))
    bandwidth: Mapped[int] = mapped_column(Integer)
    average_bandwidth: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    frame_rate: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    segments: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    playlist_uri: Mapped[str] = mapped_column(Text)
    vmaf: Mapped[float | None] = mapped_column(Float)
    vmaf_phone: Mapped[float | None] = mapped_column(Float)
    psnr: Mapped[float | None] = mapped_column(Float)
    ssim: Mapped[float | None] = mapped_column(Float)
    quality_score: Mapped[float | None] = mapped_column(Float)
    wasted_bits: Mapped[bool | None] = mapped_column(Boolean)
    """VMAF does not rise meaningfully over the rung below: the rung costs bits and buys little."""


class FingerprintRow(Base):
    """An asset's whole-length Chromaprint fingerprint: raw items as little-endian uint32 bytes, and its
    spectral-peak landmarks as little-endian uint32 (hash, frame) pairs (none for a row written before they were)."""

    __tablename__ = "fingerprints"

    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36))
    duration_s: Mapped[float] = mapped_column(Float)
    item_count: Mapped[int] = mapped_column(Integer)
    items: Mapped[bytes] = mapped_column(LargeBinary)
    landmarks: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AssetMatch(Base):
    """A catalog asset that a newly processed master was found to contain (a re-upload, a sample)."""

    __tablename__ = "asset_matches"
    __table_args__ = (UniqueConstraint("asset_id", "matched_asset_id", name="uq_asset_matches_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    matched_asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(36))
    score: Mapped[float] = mapped_column(Float)
    query_offset_s: Mapped[float] = mapped_column(Float)
    asset_offset_s: Mapped[float] = mapped_column(Float)
    matched_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
