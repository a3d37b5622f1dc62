"""A job keeps the version of its master that the notification announced: the lease sweeper and a message
sent again without it still run that version, and a master replaced in between fails ``source_replaced``."""

from __future__ import annotations

from pathlib import Path
import secrets
from types import SimpleNamespace
from typing import Any

from celery import Celery

from pipelines.catalog import Catalog
from pipelines.catalog.leases import Requeued, claim, enqueue, requeue_abandoned
from pipelines.config import Settings
from pipelines.job import run_job
from pipelines.storage import ObjectRef, SourceVersion
from pipelines.storage.s3 import S3Storage
from tests.conftest import expire_lease, make_media
from workers.sweeper import sweep
from workers.tasks import PROCESS_ASSET

SOURCE = "s3://masters/uploads/a.wav"
VERSION_ID = "3f1e0c4a-9a57-4b7e-8d7b-2c1f0e5d9a10"
ETAG = "9e107d9d372bb6826bd81d3542a419d6"


def _claim(catalog: Catalog, job_id: str, worker: str, **version: str | None) -> Any:
    return claim(catalog, job_id, asset_id="a1", source_uri=SOURCE, worker=worker, lease_s=60.0, max_lost_runs=3,
                 **version)


def test_the_job_row_keeps_the_announced_version_and_the_sweeper_returns_it(catalog: Catalog) -> None:
    enqueue(catalog, "job-1", asset_id="a1", source_uri=SOURCE, version_id=VERSION_ID, etag=ETAG)
    enqueue(catalog, "job-1", asset_id="a1", source_uri=SOURCE)  # the notification again, here without a version
    job = catalog.get_job("job-1")
    assert job is not None and (job.source_version_id, job.source_etag) == (VERSION_ID, ETAG)
    # A message that lost the version (an older sweeper's, a client's) is still given the row's.
    granted = _claim(catalog, "job-1", "dead:1")
    assert (granted.outcome, granted.source_version_id, granted.source_etag) == ("claimed", VERSION_ID, ETAG)
    expire_lease(catalog, "job-1")
    assert requeue_abandoned(catalog, max_lost_runs=3) == [Requeued("job-1", "a1", SOURCE, VERSION_ID, ETAG)]


def test_a_first_message_with_a_version_records_it_and_one_without_records_none(catalog: Catalog) -> None:
    granted = _claim(catalog, "job-1", "w:1", version_id=None, etag=ETAG)
    assert (granted.source_version_id, granted.source_etag) == (None, ETAG)
    job = catalog.get_job("job-1")
    assert job is not None and job.source_etag == ETAG
    unpinned = _claim(catalog, "job-2", "w:1")  # another version of the same master (a newer upload)
    assert (unpinned.outcome, unpinned.source_version_id, unpinned.source_etag) == ("claimed", None, None)
    twin = _claim(catalog, "job-3", "w:2", etag=ETAG)  # the same version under another job id
    assert (twin.outcome, twin.other_job_id) == ("duplicate", "job-1")
    expire_lease(catalog, "job-1")
    expire_lease(catalog, "job-2")
    assert sorted(requeue_abandoned(catalog, max_lost_runs=3)) == [
        Requeued("job-1", "a1", SOURCE, None, ETAG), Requeued("job-2", "a1", SOURCE, None, None),
    ]


def test_the_sweepers_task_message_carries_the_version(catalog: Catalog) -> None:
    """What the sweeper puts on the broker (an in-memory one) names the version its job row keeps."""
    app = Celery("sweeper-test", broker="memory://", set_as_current=False)
    app.conf.mediaworker_runtime = SimpleNamespace(
        catalog=catalog, settings=SimpleNamespace(worker=SimpleNamespace(max_lost_runs=3, retry_cap_s=60.0)),
    )
    enqueue(catalog, "job-1", asset_id="a1", source_uri=SOURCE, version_id=VERSION_ID, etag=ETAG)
    assert _claim(catalog, "job-1", "dead:1").outcome == "claimed"
    expire_lease(catalog, "job-1")
    with app.connection_for_write() as connection:  # the memory transport is shared by every app of the process
        connection.SimpleQueue("transcode").clear()  # so another test's message may wait there
    assert sweep(app) == ["job-1"]
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("transcode")
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.headers["task"] == PROCESS_ASSET and message.headers["id"] == "job-1"
    args, kwargs, _options = message.payload
    assert args == [] and kwargs == {"asset_id": "a1", "source": SOURCE, "version_id": VERSION_ID, "etag": ETAG}


def test_a_requeued_job_finds_its_master_replaced_and_fails_source_replaced(s3_server: Any, tmp_path: Path) -> None:
    """The first upload's job dies with its worker; the master is replaced; the run the sweeper enqueues again
    checks the ETag its row kept and fails ``source_replaced`` instead of processing the newer upload."""
    settings = Settings.from_env({**s3_server.env, "MEDIAWORKER_HOME": str(tmp_path / "home")})
    catalog = Catalog.open(settings.catalog_url)
    try:
        storage = S3Storage(settings.s3)
        client = s3_server.client()
        ref = ObjectRef("masters", f"requeued/{secrets.token_hex(4)}/master.flac")
        first = make_media(tmp_path / "first.flac", "-f", "lavfi", "-i", "sine=frequency=700:duration=2")
        second = make_media(tmp_path / "second.flac", "-f", "lavfi", "-i", "sine=frequency=330:duration=3")
        client.fput_object(ref.bucket, ref.key, str(first))
        announced = storage.stat(ref)
        assert announced.etag
        enqueue(catalog, "job-1", asset_id="a1", source_uri=ref.uri, version_id=announced.version_id,
                etag=announced.etag)
        assert claim(catalog, "job-1", asset_id="a1", source_uri=ref.uri, worker="dead:1", lease_s=60.0,
                     max_lost_runs=3).outcome == "claimed"
        expire_lease(catalog, "job-1")
        client.fput_object(ref.bucket, ref.key, str(second))  # the master replaced while the job was lost
        [again] = requeue_abandoned(catalog, max_lost_runs=3)
        assert again.etag == announced.etag
        granted = claim(catalog, again.job_id, asset_id=again.asset_id, source_uri=again.source_uri, worker="w:2",
                        lease_s=60.0, max_lost_runs=3, version_id=again.version_id, etag=again.etag)
        assert granted.outcome == "claimed"
        outcome = run_job(settings, source=again.source_uri, catalog=catalog, storage=storage,
                          asset_id=again.asset_id, job_id=again.job_id,
                          source_version=SourceVersion(granted.source_version_id, granted.source_etag))
        error = outcome.document.error
        assert outcome.document.status == "failed" and not outcome.transient
        assert error is not None and error.code == "source_replaced", error
        asset = catalog.get_asset("a1")
        assert asset is None or asset.content_sha256 is None  # the newer upload was not taken for this job's
    finally:
        catalog.dispose()
