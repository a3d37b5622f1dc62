"""Thin Celery tasks, by the names other services call: claim the job, run the pipeline, record, retry.

All media logic lives in ``pipelines.job``; this module only decides whether this delivery of a message
should run the job, keeps the job's lease while it runs, and turns the outcome into a result or a retry.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from pipelines import clip_job
from pipelines.catalog import validate_asset_id
from pipelines.catalog.leases import Claim, claim, fail, mark_cancelled, release_for_retry
from pipelines.errors import CatalogError, MediaError, StorageError
from pipelines.job import JobOutcome, run_job
from pipelines.storage import SourceVersion
from pipelines.storage.events import EventError
from workers.claims import JobInterrupted, held_lease
from workers.enqueue import INGEST_EVENT, INTAKE_QUEUE, MATCH_CLIP, PROCESS_ASSET, ROUTES, enqueue_process_asset
from workers.notifications import handle_bucket_event
from workers.runtime import WorkerRuntime, holder_is_dead

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    """Register the tasks on ``app`` under their public names."""

    @app.task(bind=True, name=PROCESS_ASSET, max_retries=None)
    def process_asset(self: Task, *, asset_id: str, source: str, version_id: str | None = None,
                      etag: str | None = None) -> dict[str, Any]:
        """The whole job for the master at ``source`` (``s3://bucket/key``), recorded under ``asset_id``.

        ``version_id`` and ``etag``, as the upload notification gave them, pin the version to process."""
        return _process_asset(self, asset_id=asset_id, source=source,
                              version=SourceVersion(version_id=version_id, etag=etag))

    @app.task(bind=True, name=MATCH_CLIP, max_retries=None)
    def match_clip(self: Task, *, source: str) -> dict[str, Any]:
        """The match document for the clip at ``source`` (``s3://bucket/key``), as ``mediaworker match --json``."""
        runtime: WorkerRuntime = self.app.conf.mediaworker_runtime
        try:
            return clip_job.match_clip(runtime.settings, source, catalog=runtime.catalog, storage=runtime.storage,
                                         index=runtime.match_index())
        except MediaError as exc:
            return {"matches": [], "error": {"code": exc.code, "message": exc.message}}
        except (CatalogError, StorageError) as exc:
            raise _retry(self, exc) from exc

    @app.task(bind=True, name=INGEST_EVENT, max_retries=None)
    def ingest_event(self: Task, *, payload: str) -> list[str]:
        """Turn one bucket notification into jobs (see ``workers.notifications``); a bad payload is dropped."""
        try:
            return handle_bucket_event(self.app, payload)
        except EventError as exc:
            log.warning("dropped a bucket notification that is not an S3 event: %s", exc)
            return []
        except CatalogError as exc:
            raise _retry(self, exc) from exc


def _process_asset(task: Task, *, asset_id: str, source: str, version: SourceVersion) -> dict[str, Any]:
    runtime: WorkerRuntime = task.app.conf.mediaworker_runtime
    settings = runtime.settings.worker
    job_id: str = task.request.id
    if (task.request.delivery_info or {}).get("routing_key") == INTAKE_QUEUE:
        # Sent by name to Celery's default queue by a client that does not know our routing: move it to the
        # transcode queue (same task id, so it is still one job) rather than transcode on an intake worker.
        enqueue_process_asset(task.app, job_id=job_id, asset_id=asset_id, source=source,
                              version_id=version.version_id, etag=version.etag)
        return {"job_id": job_id, "status": "forwarded", "queue": ROUTES[PROCESS_ASSET]["queue"]}
    try:
        validate_asset_id(asset_id)
    except ValueError as exc:
        return {"asset_id": asset_id, "job_id": job_id, "status": "failed",
                "error": {"code": "invalid_asset_id", "message": str(exc)}}

    catalog = runtime.catalog
    try:
        granted = claim(
            catalog, job_id, asset_id=asset_id, source_uri=source, worker=runtime.worker_id,
            lease_s=settings.lease_s, max_lost_runs=settings.max_lost_runs, holder_is_dead=holder_is_dead,
            version_id=version.version_id, etag=version.etag,
        )
    except CatalogError as exc:
        raise _retry(task, exc) from exc
    if granted.outcome != "claimed":
        return _not_run(task, runtime, granted)
    # The job row's version: the one its notification announced, even for a message sent again without it.
    version = SourceVersion(version_id=granted.source_version_id, etag=granted.source_etag)

    last_report = [0.0]

    def report(stage: str, percent: float) -> None:
        now = time.monotonic()
        if now - last_report[0] >= 1.0 or percent >= 100.0:
            last_report[0] = now
            try:
                task.update_state(state="PROGRESS", meta={"job_id": job_id, "asset_id": asset_id,
                                                          "stage": stage, "percent": round(percent, 1)})
            except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the catalog has it too
                # The result backend is often the broker: its restart must not cost the job its run.
                log.warning("could not report the progress of job %s: %s", job_id, exc)

    try:
        with held_lease(catalog, job_id, worker=runtime.worker_id, lease_s=settings.lease_s):
            outcome = run_job(runtime.settings, source=source, catalog=catalog, storage=runtime.storage,
                              asset_id=asset_id, job_id=job_id, on_progress=report,
                              will_retry=task.request.retries < settings.max_retries, source_version=version,
                              match_index=runtime.match_index, interrupts=(JobInterrupted, SoftTimeLimitExceeded))
    except JobInterrupted as exc:
        if exc.reason == "cancelled":
            mark_cancelled(catalog, job_id)
        log.warning("job %s stopped: %s", job_id, exc.reason)
        return {"asset_id": asset_id, "job_id": job_id, "status": exc.reason}
    except SoftTimeLimitExceeded:
        limit = runtime.settings.worker.task_soft_time_limit_s
        return fail(catalog, job_id, code="time_limit", message=f"the job ran past the task time limit ({limit:g} s)")
    except CatalogError as exc:
        _release(runtime, job_id, "catalog_error", str(exc))
        raise _retry(task, exc) from exc
    return _finish(task, runtime, outcome)


def _finish(task: Task, runtime: WorkerRuntime, outcome: JobOutcome) -> dict[str, Any]:
    """Return the document, or retry a job that failed for a reason outside the master."""
    document = outcome.document
    if document.status == "retrying":  # recorded so by run_job, which knew a retry would come
        raise _retry(task, RuntimeError(document.error.message if document.error is not None else "retrying"))
    return document.to_json()


def _not_run(task: Task, runtime: WorkerRuntime, granted: Claim) -> dict[str, Any]:
    """What a delivery that does not run the job answers, or the retry that waits for a live holder."""
    if granted.outcome == "busy":
        # Another worker holds a live lease on this very job (a redelivery while it runs): look again when
        # the lease would run out; if its holder died, the lease expires and this delivery takes over.
        raise task.retry(countdown=granted.retry_in_s + 1.0, max_retries=None)
    if granted.outcome == "duplicate":
        log.info("job %s duplicates live job %s: dropped", granted.job_id, granted.other_job_id)
        return {"job_id": granted.job_id, "status": "duplicate", "duplicate_of": granted.other_job_id}
    job = runtime.catalog.get_job(granted.job_id)
    document = (job.document if job is not None else None) or {}
    return {"job_id": granted.job_id, "status": job.status if job is not None else "unknown", **document}


def _release(runtime: WorkerRuntime, job_id: str, code: str, message: str) -> None:
    try:
        release_for_retry(runtime.catalog, job_id, worker=runtime.worker_id, code=code, message=message)
    except CatalogError as exc:  # the lease will expire on its own
        log.warning("could not release job %s for its retry: %s", job_id, exc)


def _retry(task: Task, exc: Exception) -> Exception:
    """Celery's retry with exponential backoff and full jitter, a bounded number of times."""
    settings = task.app.conf.mediaworker_runtime.settings.worker
    attempt = task.request.retries
    if attempt >= settings.max_retries:
        log.error("giving up on %s after %d retries: %s", task.request.id, attempt, exc)
    countdown = random.uniform(0, min(settings.retry_cap_s, settings.retry_base_s * 2**attempt))
    if attempt < settings.max_retries:
        log.warning("retrying %s in %.1f s (retry %d of %d): %s", task.request.id, countdown, attempt + 1,
                    settings.max_retries, exc)
    return task.retry(exc=exc, countdown=countdown, max_retries=settings.max_retries)  # type: ignore[no-any-return]
