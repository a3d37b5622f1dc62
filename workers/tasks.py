"""Thin Celery tasks, by the names other services call: claim the job, run the pipeline, record, retry.

All media logic lives in ``pipelines.job``; this module only parses each message into a typed request
(``pipelines.requests``: the door, before the catalog or a byte is touched), decides whether this delivery of a
message should run the job, keeps the job's lease while it runs, and turns the outcome into a result or a retry.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from pipelines import clip_job
from pipelines.catalog.leases import Claim, claim, enqueue, fail, mark_cancelled, release_for_retry
from pipelines.errors import CatalogError, InvalidRequest, MediaError, StorageError, shown
from pipelines.job import JobOutcome, run_job
from pipelines.requests import (
    ProcessRequest,
    RefusedJob,
    parse_clip_request,
    parse_event_request,
    parse_process_request,
    refused_job,
)
from pipelines.storage import SourceVersion
from pipelines.storage.events import EventError
from workers.claims import JobInterrupted, held_lease
from workers.enqueue import INGEST_EVENT, INTAKE_QUEUE, MATCH_CLIP, PROCESS_ASSET, ROUTES, enqueue_process_asset
from workers.notifications import handle_bucket_event
from workers.runtime import WorkerRuntime, holder_is_dead

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    """Register the tasks on ``app`` under their public names.

    Each takes ``*args, **kwargs`` and parses them at once (``pipelines.requests``): a message that is not a
    request the task takes — wrong types, too long, unknown arguments, a source outside the allowed buckets —
    is refused before it touches the catalog or reads a byte, and never retried."""

    @app.task(bind=True, name=PROCESS_ASSET, max_retries=None)
    def process_asset(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The whole job for the master at ``source`` (``s3://bucket/key`` in an allowed bucket), recorded under
        ``asset_id``. ``version_id`` and ``etag``, as the upload notification gave them, pin the version to
        process. A refused message fails its job ``invalid_request`` (or ``invalid_source``)."""
        runtime: WorkerRuntime = self.app.conf.mediaworker_runtime
        try:
            request = parse_process_request(args, kwargs, job_id=self.request.id, sources=runtime.sources)
        except InvalidRequest as refused:
            return _refuse_job(self, runtime, refused, refused_job(self.request.id, kwargs))
        return _process_asset(self, request)

    @app.task(bind=True, name=MATCH_CLIP, max_retries=None)
    def match_clip(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The match document for the clip at ``source`` (``s3://bucket/key`` in an allowed bucket), as
        ``mediaworker match --json``; a refused message or clip answers ``{"matches": [], "error": …}``."""
        runtime: WorkerRuntime = self.app.conf.mediaworker_runtime
        try:
            request = parse_clip_request(args, kwargs, sources=runtime.sources)
        except InvalidRequest as refused:
            log.warning("match_clip %s refused: %s", shown(self.request.id), refused)
            return {"matches": [], "error": {"code": refused.code, "message": refused.message}}
        try:
            return clip_job.match_clip(runtime.settings, request.source.uri, catalog=runtime.catalog,
                                       storage=runtime.storage, index=runtime.match_index())
        except MediaError as exc:  # a rejected clip, or one that is not there (source_not_found)
            return {"matches": [], "error": {"code": exc.code, "message": exc.message}}
        except (CatalogError, StorageError) as exc:
            raise _retry(self, exc) from exc

    @app.task(bind=True, name=INGEST_EVENT, max_retries=None)
    def ingest_event(self: Task, *args: Any, **kwargs: Any) -> list[str]:
        """Turn one bucket notification (``payload``) into jobs (see ``workers.notifications``); a bad payload
        is dropped."""
        try:
            request = parse_event_request(args, kwargs)
            return handle_bucket_event(self.app, request.payload)
        except (InvalidRequest, EventError) as exc:
            log.warning("dropped a bucket notification that is not an S3 event: %s", exc)
            return []
        except CatalogError as exc:
            raise _retry(self, exc) from exc


def _refuse_job(task: Task, runtime: WorkerRuntime, refused: InvalidRequest, row: RefusedJob | None) -> dict[str, Any]:
    """Fail the job of a refused ``process_asset`` message, once: its row (made if the message is the first word
    of it) ends ``failed`` with the refusal's code and message; return the job document. A job already over
    keeps how it ended. A task id that cannot key a row is only logged."""
    log.warning("job %s refused: %s", shown(task.request.id), refused)
    if row is None:
        return {"job_id": None, "status": "failed", "error": {"code": refused.code, "message": refused.message}}
    try:
        enqueue(runtime.catalog, row.job_id, asset_id=row.asset_id, source_uri=row.source)
        return fail(runtime.catalog, row.job_id, code=refused.code, message=refused.message)
    except CatalogError as exc:  # the database is down: recording the refusal is what is retried
        raise _retry(task, exc) from exc


def _process_asset(task: Task, request: ProcessRequest) -> dict[str, Any]:
    runtime: WorkerRuntime = task.app.conf.mediaworker_runtime
    settings = runtime.settings.worker
    job_id, asset_id, source, version = request.job_id, request.asset_id, request.source.uri, request.version
    if (task.request.delivery_info or {}).get("routing_key") == INTAKE_QUEUE:
        # Sent by name to Celery's default queue by a client that does not know our routing: move it to the
        # transcode queue (same task id, so it is still one job) rather than transcode on an intake worker.
        enqueue_process_asset(task.app, job_id=job_id, asset_id=asset_id, source=source,
                              version_id=version.version_id, etag=version.etag)
        return {"job_id": job_id, "status": "forwarded", "queue": ROUTES[PROCESS_ASSET]["queue"]}

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
    return _finish(task, outcome)


def _finish(task: Task, outcome: JobOutcome) -> dict[str, Any]:
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
