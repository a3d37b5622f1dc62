"""The tasks by the names other services call, the queue each runs on, and the one door into the broker.

Every message this project sends goes through a function here, so a job's message has one shape (the same
keyword arguments, the job id as the task id) and one queue, whoever sends it: ``mediaworker submit``, an
upload notification, the lease sweeper, or the worker that forwards a message sent to the wrong queue.
"""

from __future__ import annotations

from celery import Celery

PROCESS_ASSET = "mediaworker.process_asset"
"""The whole job for one master (``asset_id``, ``source``, and the ``version_id``/``etag`` to pin)."""
MATCH_CLIP = "mediaworker.match_clip"
"""The match document for one clip (``source``)."""
INGEST_EVENT = "mediaworker.ingest_event"
"""One upload notification (``payload``, reduced by ``pipelines.storage.events.minimal_event``) to turn into jobs."""

TRANSCODE_QUEUE = "transcode"
"""The whole job for one master: CPU-heavy and long."""
ANALYSIS_QUEUE = "analysis"
"""Analysis that is light next to a transcode (clip matching)."""
BOOKKEEPING_QUEUE = "bookkeeping"
"""Small fast tasks (upload notifications turned into jobs)."""
INTAKE_QUEUE = "celery"
"""Celery's default queue, where a client that does not know this routing sends by task name."""

QUEUES = (TRANSCODE_QUEUE, ANALYSIS_QUEUE, BOOKKEEPING_QUEUE, INTAKE_QUEUE)
ROUTES: dict[str, dict[str, str]] = {
    PROCESS_ASSET: {"queue": TRANSCODE_QUEUE},
    MATCH_CLIP: {"queue": ANALYSIS_QUEUE},
    INGEST_EVENT: {"queue": BOOKKEEPING_QUEUE},
}
"""Celery's ``task_routes``: the queue of each task, for a client of this app that sends by name."""


def enqueue_process_asset(
    app: Celery, *, job_id: str, asset_id: str, source: str, version_id: str | None = None, etag: str | None = None
) -> None:
    """Send ``mediaworker.process_asset`` for job ``job_id`` (also the task id) to the transcode queue.

    ``source`` is ``s3://bucket/key``; ``version_id`` and ``etag`` are the master's version to process, as its
    upload notification announced it (``None`` when unknown: the job row's own, if any, is used). Sending the
    same ``job_id`` again is safe: the job claim runs a job once. Raises what Celery raises when the broker
    cannot take the message (``kombu.exceptions.OperationalError``).
    """
    kwargs = {"asset_id": asset_id, "source": source, "version_id": version_id, "etag": etag}
    app.send_task(PROCESS_ASSET, kwargs=kwargs, task_id=job_id, queue=ROUTES[PROCESS_ASSET]["queue"])


def enqueue_bucket_event(app: Celery, *, payload: str) -> None:
    """Send ``mediaworker.ingest_event`` with one reduced upload notification to the bookkeeping queue."""
    app.send_task(INGEST_EVENT, kwargs={"payload": payload}, queue=ROUTES[INGEST_EVENT]["queue"])
