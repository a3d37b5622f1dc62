"""The Celery app: broker, queues and routing, delivery guarantees and limits — all from the settings.

Queues (named, with the task names and routes, in ``workers.enqueue``), so that each kind of work scales on
its own:

* ``transcode`` — ``mediaworker.process_asset``: the whole job for one master (CPU-heavy, long).
* ``analysis`` — analysis work that is light next to a transcode (clip matching, when it lands).
* ``bookkeeping`` — small fast tasks (upload notifications turned into jobs).
* ``celery`` — Celery's default queue, where a client that does not know this routing sends by task name:
  ``process_asset`` forwards such messages to ``transcode`` instead of running them there.

Delivery: JSON only; a message is acknowledged only after its task ends (``acks_late``), put back if the
worker process dies (``task_reject_on_worker_lost``), one message prefetched at a time. The job claim in the
catalog (``pipelines.catalog.leases``) turns redelivery into exactly-once effects.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init
from kombu.entity import Queue

from pipelines.audio.features import warm_up as warm_up_features
from pipelines.config import Settings
from pipelines.privacy import install_redaction, settings_secrets
from workers.enqueue import INTAKE_QUEUE, QUEUES, ROUTES
from workers.runtime import WorkerRuntime

__all__ = ["QUEUES", "broker_tls_config", "celery_config", "create_app"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for ``settings``; pure, so the routing and limits can be tested without a broker."""
    worker = settings.worker
    broker = settings.broker_url
    backend = worker.result_backend or (broker if broker.startswith(("redis://", "rediss://")) else "rpc://")
    return {
        **broker_tls_config(settings),
        "broker_url": broker,
        "result_backend": backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "task_time_limit": worker.task_time_limit_s,
        "task_soft_time_limit": worker.task_soft_time_limit_s,
        # Redis redelivers an unacknowledged message after this long: it must outlast the longest task.
        "broker_transport_options": {"visibility_timeout": worker.visibility_timeout_s},
        "result_backend_transport_options": {"visibility_timeout": worker.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],
        "task_default_queue": INTAKE_QUEUE,
        "task_routes": ROUTES,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": 7 * 24 * 3600,
    }


def broker_tls_config(settings: Settings) -> dict[str, Any]:
    """Celery's TLS settings for an ``amqps://`` or ``rediss://`` broker and result backend: the server's
    certificate always verified (against ``MEDIAWORKER_BROKER_TLS_CA`` when set), and the client's own
    certificate presented when one is configured. Nothing for a plain-text broker."""
    tls = settings.broker_tls
    config: dict[str, Any] = {}
    broker, backend = settings.broker_url, settings.worker.result_backend or settings.broker_url
    if broker.startswith("amqps://"):
        config["broker_use_ssl"] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": tls.ca_file,
                                    "certfile": tls.cert_file, "keyfile": tls.key_file,
                                    "server_hostname": urlsplit(broker).hostname}
    redis_tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": tls.ca_file, "ssl_check_hostname": True,
                 "ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if broker.startswith("rediss://"):
        config["broker_use_ssl"] = redis_tls
    if backend.startswith("rediss://"):
        config["redis_backend_use_ssl"] = redis_tls
    return config


def create_app(settings: Settings) -> Celery:
    """The app, its tasks registered, with a :class:`WorkerRuntime` (catalog and storage) attached."""
    app = Celery("mediaworker")
    app.config_from_object(celery_config(settings))
    app.conf.mediaworker_runtime = WorkerRuntime(settings)

    from workers import notifications, sweeper, tasks

    tasks.register(app)
    notifications.install(app)
    app.steps["worker"].add(sweeper.LeaseSweeper)

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        # A forked pool process must not share the parent's database connections.
        app.conf.mediaworker_runtime.after_fork()

    @worker_init.connect(weak=False)
    def _warm_features(**_: Any) -> None:
        # In the parent, before the pool forks: librosa's numba kernels are compiled or loaded here once, under
        # their cache's lock, and every pool process inherits them, so that no two processes ever fill the
        # on-disk cache at once (that corrupts it: see pipelines/audio/kernels.py).
        warm_up_features()

    @after_setup_logger.connect(weak=False)
    @after_setup_task_logger.connect(weak=False)
    def _redact_logs(logger: Any, **_: Any) -> None:
        # Every record a worker logs is masked of the deployment's secrets (and of any URL password).
        install_redaction(logger, settings_secrets(settings))

    return app
