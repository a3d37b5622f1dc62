"""Job claims on both catalog databases: redelivery and duplication never run a live job twice."""

from __future__ import annotations

import threading

from pipelines.catalog import Catalog
from pipelines.catalog.leases import claim, fail, mark_cancelled, release_for_retry, renew, request_cancel
from tests.conftest import expire_lease


def _claim(catalog: Catalog, job_id: str, worker: str, **kw: object) -> str:
    options = {"asset_id": "a1", "source_uri": "s3://masters/a.wav", "worker": worker, "lease_s": 60.0, "max_lost_runs": 3}
    options.update(kw)
    return claim(catalog, job_id, **options).outcome  # type: ignore[arg-type]


def test_first_delivery_claims_and_creates_the_row(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "host:1") == "claimed"
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.claimed_by, job.attempts) == ("running", "host:1", 1)


def test_redelivery_while_the_holder_lives_waits_then_takes_over(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "host:1") == "claimed"
    busy = claim(catalog, "job-1", asset_id="a1", source_uri="s3://masters/a.wav", worker="host:2", lease_s=60,
                 max_lost_runs=3)
    assert busy.outcome == "busy" and 50 < busy.retry_in_s <= 60
    expire_lease(catalog, "job-1")
    assert _claim(catalog, "job-1", "host:2") == "claimed"
    job = catalog.get_job("job-1")
    assert job is not None and (job.claimed_by, job.lost_runs, job.attempts) == ("host:2", 1, 2)
    assert renew(catalog, "job-1", worker="host:1", lease_s=60) == "lost"  # the old holder learns it lost


def test_a_dead_holder_is_taken_over_at_once(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "host:1") == "claimed"
    assert _claim(catalog, "job-1", "host:2", holder_is_dead=lambda holder: holder == "host:1") == "claimed"


def test_a_job_that_keeps_losing_its_worker_is_failed(catalog: Catalog) -> None:
    for worker in ("w:1", "w:2", "w:3"):
        assert _claim(catalog, "job-1", worker) == "claimed"
        expire_lease(catalog, "job-1")
    assert _claim(catalog, "job-1", "w:4") == "exhausted"
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.error_code) == ("failed", "worker_lost")
    assert "interrupted 3 times" in (job.error_message or "")
    assert _claim(catalog, "job-1", "w:5") == "done"


def test_a_second_message_for_a_live_job_is_a_duplicate(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "w:1") == "claimed"
    twin = claim(catalog, "job-2", asset_id="a1", source_uri="s3://masters/a.wav", worker="w:2", lease_s=60,
                 max_lost_runs=3)
    assert (twin.outcome, twin.other_job_id) == ("duplicate", "job-1")
    assert _claim(catalog, "job-3", "w:2", source_uri="s3://masters/other.wav") == "claimed"


def test_finished_jobs_are_never_run_again(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "w:1") == "claimed"
    fail(catalog, "job-1", code="time_limit", message="too long")
    assert _claim(catalog, "job-1", "w:2") == "done"


def test_release_for_retry_lets_the_retry_claim(catalog: Catalog) -> None:
    assert _claim(catalog, "job-1", "w:1") == "claimed"
    release_for_retry(catalog, "job-1", worker="w:1", code="storage_error", message="S3 down")
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.error_code) == ("retrying", "storage_error")
    assert _claim(catalog, "job-1", "w:2") == "claimed"
    job = catalog.get_job("job-1")
    assert job is not None and job.lost_runs == 0  # a retry is not a lost run


def test_cancel(catalog: Catalog) -> None:
    catalog.create_job(asset_id="a1", source_uri="s3://masters/a.wav", job_id="queued-job")
    assert request_cancel(catalog, "queued-job") == "cancelled"
    assert _claim(catalog, "queued-job", "w:1") == "done"
    assert _claim(catalog, "running-job", "w:1", source_uri="s3://masters/b.wav") == "claimed"
    assert request_cancel(catalog, "running-job") == "running"
    assert renew(catalog, "running-job", worker="w:1", lease_s=60) == "cancel"
    mark_cancelled(catalog, "running-job")
    job = catalog.get_job("running-job")
    assert job is not None and job.status == "cancelled" and job.document and job.document["status"] == "cancelled"
    assert request_cancel(catalog, "no-such-job") is None


def test_concurrent_claims_grant_one_lease(catalog: Catalog) -> None:
    """Eight workers claim the same job at once: exactly one wins, on PostgreSQL through the row lock."""
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        outcomes.append(_claim(catalog, "job-1", f"w:{n}"))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("claimed") == 1, outcomes
    assert set(outcomes) <= {"claimed", "busy"}


def test_the_sweeper_requeues_abandoned_jobs_and_gives_up_on_poison(catalog: Catalog) -> None:
    from pipelines.catalog.leases import requeue_abandoned

    assert _claim(catalog, "job-1", "dead:1") == "claimed"
    assert _claim(catalog, "job-2", "alive:2", source_uri="s3://masters/b.wav") == "claimed"
    assert requeue_abandoned(catalog, max_lost_runs=3) == []  # leases still running
    expire_lease(catalog, "job-1")
    expire_lease(catalog, "job-2")
    alive = {"alive:2"}.__contains__
    requeued = requeue_abandoned(catalog, max_lost_runs=3, holder_is_alive=alive, alive_grace_s=60)
    assert requeued == [("job-1", "a1", "s3://masters/a.wav", None, None)]  # job-2's holder lives: its retry is coming
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.lost_runs, job.claimed_by) == ("retrying", 1, None)
    assert _claim(catalog, "job-1", "w:3") == "claimed"
    job = catalog.get_job("job-1")
    assert job is not None and job.lost_runs == 1  # counted once, by the sweeper
    for worker in ("w:4", "w:5"):
        expire_lease(catalog, "job-1")
        requeue_abandoned(catalog, max_lost_runs=3)
        _claim(catalog, "job-1", worker)
    job = catalog.get_job("job-1")
    assert job is not None and (job.status, job.error_code) == ("failed", "worker_lost")
