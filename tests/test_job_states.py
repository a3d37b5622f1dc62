"""The job state machine: the written table of allowed status changes, enforced by the one function every
change goes through, on both catalog databases; and a finished job keeps how it ended whoever comes late."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
import itertools
from pathlib import Path

import pytest

from pipelines.catalog import Catalog, Job
from pipelines.catalog.leases import claim, fail, mark_cancelled, release_for_retry, request_cancel, requeue_abandoned
from pipelines.catalog.records import AssetRecord
from pipelines.catalog.states import FINAL, TRANSITIONS, JobStateError, JobStatus, advance, may_become
from pipelines.document import JobDocument
from pipelines.errors import CatalogError
from tests.conftest import expire_lease

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "s3://masters/a.wav"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled")
ALLOWED = {
    ("queued", "running"), ("queued", "retrying"), ("queued", "failed"), ("queued", "cancelled"),
    ("queued", "succeeded"),
    ("running", "running"), ("running", "retrying"), ("running", "succeeded"), ("running", "failed"),
    ("running", "cancelled"),
    ("retrying", "running"), ("retrying", "retrying"), ("retrying", "succeeded"), ("retrying", "failed"),
    ("retrying", "cancelled"),
}
"""The table of ``pipelines/catalog/states.py`` written out again, so that a change to it is a choice."""


def test_the_statuses_are_the_six_the_catalog_stores() -> None:
    assert tuple(JobStatus) == STATUSES and [str(status) for status in JobStatus] == list(STATUSES)
    assert set(FINAL) == {"succeeded", "failed", "cancelled"}
    assert {(str(a), str(b)) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(STATUSES, STATUSES)))
def test_every_change_is_allowed_or_refused_as_the_table_says(current: str, wanted: str) -> None:
    job = Job(id="job-1", status=current, finished_at=None)
    if (current, wanted) in ALLOWED:
        assert may_become(current, JobStatus(wanted))
        advance(job, JobStatus(wanted), now=NOW)
        assert job.status == wanted and type(job.status) is str  # stored as the plain string
        assert job.finished_at == (NOW if wanted in FINAL else None)  # only a job that is over has an end
    else:
        assert not may_become(current, JobStatus(wanted))
        with pytest.raises(JobStateError) as refused:
            advance(job, JobStatus(wanted), now=NOW)
        assert isinstance(refused.value, CatalogError)  # a worker retries, and its claim finds the job as it is
        assert (refused.value.current, refused.value.wanted) == (current, wanted)
        assert str(refused.value) == f"job job-1 is {current}: it cannot become {wanted}"
        assert (job.status, job.finished_at) == (current, None)


def test_a_status_that_is_no_status_is_refused() -> None:
    with pytest.raises(ValueError):
        may_become("done", JobStatus.RUNNING)


# --- on the catalog ---------------------------------------------------------------------------------------------


def _claim(catalog: Catalog, job_id: str, worker: str, *, max_lost_runs: int = 3) -> str:
    return claim(catalog, job_id, asset_id="a1", source_uri=SOURCE, worker=worker, lease_s=60.0,
                 max_lost_runs=max_lost_runs).outcome


def _asset() -> AssetRecord:
    return AssetRecord(source_uri=SOURCE, content_sha256="0" * 64, kind="audio", duration_s=1.0, container="wav",
                       hls_master="m", probe={})


def _document(job_id: str, status: str) -> JobDocument:
    return JobDocument(asset_id="a1", job_id=job_id, status=status)


def test_a_job_cancelled_before_its_run_ended_is_not_recorded_succeeded_or_failed(catalog: Catalog) -> None:
    job_id = catalog.create_job(asset_id="a1", source_uri=SOURCE)
    assert request_cancel(catalog, job_id) == "cancelled"
    with pytest.raises(JobStateError):
        catalog.complete_job(job_id, asset=_asset(), renditions=[], document=_document(job_id, "succeeded"))
    with pytest.raises(JobStateError):
        catalog.fail_job(job_id, code="storage_error", message="S3 down", document=_document(job_id, "failed"))
    job = catalog.get_job(job_id)
    assert job is not None and (job.status, job.error_code) == ("cancelled", None)
    assert catalog.get_asset("a1") is None  # the refused completion wrote nothing: one transaction


def test_a_finished_job_keeps_how_it_ended(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "w:1") == "claimed"
    catalog.complete_job("job-1", asset=_asset(), renditions=[], document=_document("job-1", "succeeded"))
    # A time limit that struck after the job ended, a cancel, a retry's give-back: none rewrites the end.
    assert fail(catalog, "job-1", code="time_limit", message="too long") == _document("job-1", "succeeded").to_json()
    assert request_cancel(catalog, "job-1") == "succeeded"
    mark_cancelled(catalog, "job-1")
    release_for_retry(catalog, "job-1", worker="w:1", code="catalog_error", message="blip")
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.error_code, job.cancel_requested) == ("succeeded", None, False)
    assert job.document == _document("job-1", "succeeded").to_json()
    assert _claim(catalog, "job-1", "w:2") == "done"


def test_a_job_given_up_on_is_not_given_back_for_a_retry(catalog: Catalog) -> None:
    """The sweeper fails a job as ``worker_lost`` while its holder, alive, waits out a catalog outage; the
    holder's give-back must not make the failed job ``retrying`` — a failed job is never run again."""
    assert _claim(catalog, "job-1", "w:1", max_lost_runs=1) == "claimed"
    expire_lease(catalog, "job-1")
    assert requeue_abandoned(catalog, max_lost_runs=1) == []
    release_for_retry(catalog, "job-1", worker="w:1", code="catalog_error", message="the catalog came back")
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.error_code) == ("failed", "worker_lost")
    assert _claim(catalog, "job-1", "w:2") == "done"


def test_every_way_a_job_fails_records_the_same_row(catalog: Catalog) -> None:
    """The pipeline's failure, a time limit's and a worker lost too often: one ``fail``, one row shape."""
    for job_id in ("by-pipeline", "by-time-limit"):
        assert claim(catalog, job_id, asset_id=job_id, source_uri=SOURCE, worker="w:1", lease_s=60.0,
                     max_lost_runs=3).outcome == "claimed"
    catalog.fail_job("by-pipeline", code="not_media", message="not a media file",
                     document=_document("by-pipeline", "failed"))
    fail(catalog, "by-time-limit", code="time_limit", message="too long")
    assert claim(catalog, "by-lost-worker", asset_id="lost", source_uri=SOURCE, worker="w:1", lease_s=60.0,
                 max_lost_runs=1).outcome == "claimed"
    expire_lease(catalog, "by-lost-worker")
    assert claim(catalog, "by-lost-worker", asset_id="lost", source_uri=SOURCE, worker="w:2", lease_s=60.0,
                 max_lost_runs=1).outcome == "exhausted"
    for job_id, code in (("by-pipeline", "not_media"), ("by-time-limit", "time_limit"),
                         ("by-lost-worker", "worker_lost")):
        job = catalog.get_job(job_id)
        assert job is not None, job_id
        assert (job.status, job.error_code, job.claimed_by, job.lease_expires_at) == ("failed", code, None, None)
        assert job.error_message and job.finished_at is not None and job.document is not None
        assert job.document["status"] == "failed"


def test_a_failure_a_retry_may_cure_leaves_the_job_retrying_and_claimable(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "w:1") == "claimed"
    catalog.fail_job("job-1", code="storage_error", message="S3 down", document=_document("job-1", "retrying"),
                     retrying=True)
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.claimed_by, job.finished_at) == ("retrying", None, None)
    assert _claim(catalog, "job-1", "w:2") == "claimed"


def test_a_job_started_by_this_process_cannot_be_started_once_it_is_over(catalog: Catalog) -> None:
    job_id = catalog.create_job(asset_id="a1", source_uri=SOURCE)
    catalog.start_job(job_id)
    catalog.fail_job(job_id, code="not_media", message="not a media file", document=_document(job_id, "failed"))
    with pytest.raises(JobStateError):
        catalog.start_job(job_id)
    job = catalog.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("failed", 1)


# --- one module writes the status ------------------------------------------------------------------------------


def _status_writes(tree: ast.Module) -> list[int]:
    """Lines that assign an attribute named ``status`` (``x.status = …``, in a tuple assignment too)."""
    lines = []
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and part.attr == "status" and isinstance(part.ctx, ast.Store):
                    lines.append(node.lineno)
    return lines


def test_only_the_states_module_writes_a_job_status() -> None:
    found = {}
    for package in ("pipelines", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if lines := _status_writes(ast.parse(path.read_text(encoding="utf-8"))):
                found[str(path.relative_to(ROOT))] = lines
    assert set(found) == {"pipelines/catalog/states.py"}, found


def test_the_status_write_check_sees_tuple_and_plain_assignments() -> None:
    tree = ast.parse("job.status = 'x'\njob.status, job.stage = 'a', 'b'\nstatus = 'not an attribute'\n")
    assert _status_writes(tree) == [1, 2]
