"""Uploads become jobs: a consumer of MinIO's bucket notifications, published to AMQP (RabbitMQ).

MinIO's AMQP target publishes each S3 event to an exchange; every worker on an AMQP broker binds one shared
durable queue to it and turns each new master (``pipelines.storage.events``) into a ``process_asset`` job on the
transcode queue. Configure MinIO with the exchange and routing key of ``docker/compose.yaml``
(``MINIO_NOTIFY_AMQP_*``) and ``mc event add local/masters arn:minio:sqs::mediaworker:amqp --event put``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer

from pipelines.catalog.leases import enqueue
from pipelines.storage.events import EventError, minimal_event, parse_bucket_event
from workers.enqueue import enqueue_bucket_event, enqueue_process_asset
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)

EVENTS_EXCHANGE = "minio-events"
EVENTS_ROUTING_KEY = "masters"
EVENTS_QUEUE = "mediaworker.bucket-events"


def handle_bucket_event(app: Celery, body: bytes | str) -> list[str]:
    """Enqueue a job for every new master that one notification announces; return their job ids.

    Raises ``EventError`` for a payload that is not an S3 event; catalog and broker errors pass through.
    """
    runtime: WorkerRuntime = app.conf.mediaworker_runtime
    settings = runtime.settings
    masters, ignored = parse_bucket_event(body, masters_bucket=settings.masters_bucket,
                                          identity_key=settings.identity_key)
    for reason in ignored:
        log.info("bucket event ignored: %s", reason)
    for master in masters:
        enqueue(runtime.catalog, master.job_id, asset_id=master.asset_id, source_uri=master.ref.uri,
                uploader=master.uploader, version_id=master.version_id, etag=master.etag)
        enqueue_process_asset(app, job_id=master.job_id, asset_id=master.asset_id, source=master.ref.uri,
                              version_id=master.version_id, etag=master.etag)  # the announced version, or none
        log.info("new master %s → job %s (asset %s, uploader %s)", master.ref.uri, master.job_id, master.asset_id,
                 master.uploader or "not kept")
    return [master.job_id for master in masters]


class BucketEventConsumer(bootsteps.ConsumerStep):
    """Consumes the bucket-events queue inside the worker, beside Celery's own task consumer.

    It does no work itself: each notification becomes a ``mediaworker.ingest_event`` task on the bookkeeping
    queue, acknowledged once that task is published, so a catalog outage is retried with backoff there
    instead of spinning here. The task carries the notification reduced by ``minimal_event``: no uploader
    identity travels in task arguments (nor in the task events that monitors such as Flower receive).
    """

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app: Celery = parent.app

    def get_consumers(self, channel: Any) -> list[Consumer]:
        exchange = Exchange(EVENTS_EXCHANGE, type="direct", durable=True)
        queue = Queue(EVENTS_QUEUE, exchange, routing_key=EVENTS_ROUTING_KEY, durable=True)
        return [Consumer(channel, queues=[queue], on_message=self.on_message, accept=["application/json", "json"])]

    def on_message(self, message: Any) -> None:
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        runtime: WorkerRuntime = self.app.conf.mediaworker_runtime
        try:
            payload = minimal_event(body, identity_key=runtime.settings.identity_key)
        except EventError as exc:
            log.warning("dropped a bucket notification that is not an S3 event: %s", exc)
        else:
            enqueue_bucket_event(self.app, payload=payload)
        message.ack()


def install(app: Celery) -> None:
    """Add the consumer to ``app``'s workers when the broker is AMQP (MinIO's AMQP target publishes there)."""
    if app.conf.broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        app.steps["consumer"].add(BucketEventConsumer)
