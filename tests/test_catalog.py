"""The catalog on both of its databases: the same migrations, upserts that make reruns replace, not add."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from pipelines.catalog import AssetRecord, Catalog, RenditionRecord, validate_asset_id
from pipelines.document import JobDocument, JobError


def _asset(master: str) -> AssetRecord:
    return AssetRecord(source_uri="s3://masters/a.wav", content_sha256="0" * 64, kind="audio", duration_s=12.5,
                       container="wav", title="T", artist="A", hls_master=master, probe={"kind": "audio"})


def _rendition(name: str, bandwidth: int) -> RenditionRecord:
    return RenditionRecord(name=name, kind="audio", codecs="mp4a.40.2", bandwidth=bandwidth,
                           average_bandwidth=bandwidth - 1000, width=None, height=None, frame_rate=None, channels=2,
                           duration_s=12.5, segments=3, bytes=5_000_000_000, playlist_uri=f"{name}.m3u8")


def _succeeded(job_id: str) -> JobDocument:
    return JobDocument(asset_id="song-1", job_id=job_id, status="succeeded")


def test_migrations_create_the_schema(catalog: Catalog) -> None:
    tables = set(inspect(catalog.engine).get_table_names())
    assert {"assets", "jobs", "renditions", "alembic_version"} <= tables
    Catalog.open(catalog.engine.url.render_as_string(hide_password=False)).dispose()  # reopening is a no-op


def test_job_lifecycle_and_rerun_replaces_results(catalog: Catalog) -> None:
    first = catalog.create_job(asset_id="song-1", source_uri="s3://masters/a.wav")
    catalog.start_job(first)
    catalog.record_progress(first, stage="transcode", percent=42.123)
    job = catalog.get_job(first)
    assert job is not None and (job.status, job.stage, job.percent, job.attempts) == ("running", "transcode", 42.12, 1)
    catalog.complete_job(first, asset=_asset("m1"), renditions=[_rendition("a-256", 260_000), _rendition("a-128", 130_000)],
                         document=_succeeded(first))

    second = catalog.create_job(asset_id="song-1", source_uri="s3://masters/a.wav")
    catalog.start_job(second)
    catalog.complete_job(second, asset=_asset("m2"), renditions=[_rendition("a-96", 96_000)], document=_succeeded(second))

    asset = catalog.get_asset("song-1")
    assert asset is not None and (asset.hls_master, asset.latest_job_id) == ("m2", second)
    assert [(r.name, r.job_id, r.bytes) for r in catalog.renditions("song-1")] == [("a-96", second, 5_000_000_000)]
    latest = catalog.latest_job_for_asset("song-1")
    assert latest is not None and latest.status == "succeeded"


def test_a_failed_job_keeps_its_reason(catalog: Catalog) -> None:
    job_id = catalog.create_job(asset_id="bad", source_uri="/tmp/x")
    catalog.start_job(job_id)
    document = JobDocument(asset_id="bad", job_id=job_id, status="failed", error=JobError("not_media", "not a media file"))
    catalog.fail_job(job_id, code="not_media", message="not a media file", document=document)
    job = catalog.get_job(job_id)
    assert job is not None and (job.status, job.error_code, job.error_message) == ("failed", "not_media", "not a media file")
    assert job.finished_at is not None and catalog.get_asset("bad") is None
    assert job.document == document.to_json()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a b", ".hidden", "x" * 129, "tab\there"])
def test_asset_ids_that_could_escape_an_object_key_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_asset_id(bad)
    assert validate_asset_id("Track_01.v2-final") == "Track_01.v2-final"
