"""The catalog's rows of a succeeded job, made from its typed document (:mod:`pipelines.document`).

Values are those the document shows, at its precision, so that ``search`` prints what ``process`` printed. This
lives apart from the document so that the stages that read a document (the report) never load the catalog.
"""

from __future__ import annotations

from pipelines.catalog.records import AssetRecord, FingerprintRecord, MatchRecord, RenditionRecord
from pipelines.document import JobDocument
from pipelines.media.tags import Metadata
from pipelines.video.quality import METRICS, RenditionQuality


def asset_record(document: JobDocument, *, source_uri: str, content_sha256: str) -> AssetRecord:
    """The asset's row: what the probe found, where the ladder is, and the fields the catalog is searched by."""
    probe, hls = document.probe, document.hls
    assert probe is not None and hls is not None, "only a succeeded job's document has an asset row"
    tags = document.metadata.tags if document.metadata is not None else Metadata()
    features = document.features
    return AssetRecord(
        source_uri=source_uri, content_sha256=content_sha256, kind=probe.kind, duration_s=probe.duration_s,
        container=probe.container[:64], hls_master=hls.master, probe=probe.to_document(),
        title=tags.title, artist=tags.artist, album=tags.album, isrc=tags.isrc, language=tags.language,
        release_date=tags.release_date,
        tempo=None if features is None else _rounded(features.rhythm.tempo_bpm),
        key=None if features is None else features.key.key,
        mode=None if features is None else features.key.mode,
        content_class=None if features is None else features.content.content_class,
        loudness_lufs=None if features is None else _rounded(features.loudness),
        quality_score=None if document.quality is None else document.quality.score,
    )


def rendition_records(document: JobDocument) -> list[RenditionRecord]:
    """One row per published rendition, with its measured quality (``None`` where none was measured)."""
    assert document.hls is not None
    scored = {r.name: r for r in document.quality.renditions} if document.quality is not None else {}
    rows = []
    for entry in document.hls.renditions:
        variant, rendition = entry.variant, entry.variant.rendition
        quality = scored.get(entry.name)
        measured = quality if isinstance(quality, RenditionQuality) else None
        size = rendition.size
        means = {metric: None if measured is None else measured.published_mean(metric) for metric in METRICS}
        rows.append(RenditionRecord(
            name=rendition.name, kind=rendition.kind, codecs=variant.codecs, bandwidth=variant.bandwidth,
            average_bandwidth=variant.average_bandwidth, width=size[0] if size else None,
            height=size[1] if size else None, frame_rate=variant.frame_rate, channels=rendition.format.channels,
            duration_s=variant.duration_s, segments=rendition.segment_count, bytes=rendition.total_bytes,
            playlist_uri=entry.playlist, vmaf=means["vmaf"], vmaf_phone=means["vmaf_phone"], psnr=means["psnr"],
            ssim=means["ssim"], quality_score=None if measured is None else measured.score,
            wasted_bits=(measured is not None and measured.wasted_bits) if rendition.kind == "video" else None,
        ))
    return rows


def fingerprint_record(document: JobDocument) -> FingerprintRecord | None:
    """The master's fingerprint as the catalog stores it (little-endian uint32 items, packed landmarks)."""
    fingerprint = document.fingerprint
    if fingerprint is None:
        return None
    return FingerprintRecord(
        items=fingerprint.items.astype("<u4").tobytes(), duration_s=fingerprint.duration_s,
        item_count=len(fingerprint.items),
        landmarks=None if fingerprint.landmarks is None else fingerprint.landmarks.to_bytes(),
    )


def match_records(document: JobDocument) -> list[MatchRecord]:
    """The catalog assets this master matches, at the precision of the match document."""
    return [MatchRecord(matched_asset_id=m.asset_id, score=round(m.score, 4), query_offset_s=round(m.query_offset_s, 2),
                        asset_offset_s=round(m.asset_offset_s, 2), matched_s=round(m.matched_s, 2))
            for m in document.matches]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
