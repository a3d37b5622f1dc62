"""The rows the catalog records for a succeeded job, typed: what :meth:`Catalog.complete_job` writes.

They are made from the job's typed results by :mod:`pipelines.document`; the catalog only stores them. Units:
seconds, bit/s, LUFS, pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class AssetRecord:
    """The asset's row: where it came from, what it is, where its ladder is, and the fields it is searched by."""

    source_uri: str
    content_sha256: str
    kind: str
    duration_s: float
    container: str
    hls_master: str
    probe: Mapping[str, Any]
    """The probe as the job document shows it (JSON)."""
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    isrc: str | None = None
    language: str | None = None
    release_date: str | None = None
    tempo: float | None = None
    key: int | None = None
    mode: int | None = None
    content_class: str | None = None
    loudness_lufs: float | None = None
    quality_score: float | None = None


@dataclass(frozen=True, kw_only=True)
class RenditionRecord:
    """One published rendition; a video rendition's bandwidth and codecs include its audio group's."""

    name: str
    kind: str
    codecs: str
    bandwidth: int
    average_bandwidth: int
    width: int | None
    height: int | None
    frame_rate: float | None
    channels: int | None
    duration_s: float
    segments: int
    bytes: int
    playlist_uri: str
    vmaf: float | None = None
    vmaf_phone: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    quality_score: int | None = None
    wasted_bits: bool | None = None


@dataclass(frozen=True, kw_only=True)
class FingerprintRecord:
    """A master's fingerprint: raw little-endian uint32 ``items``, and its packed ``landmarks`` (``None`` for a
    fingerprint made before landmarks existed)."""

    items: bytes
    duration_s: float
    item_count: int
    landmarks: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class MatchRecord:
    """A catalog asset the master matches; times in seconds."""

    matched_asset_id: str
    score: float
    query_offset_s: float
    asset_offset_s: float
    matched_s: float
