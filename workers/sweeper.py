"""Every worker looks, twice a lease, for jobs whose worker died with them, and enqueues them again.

A job whose pool process died is redelivered by the broker at once (``task_reject_on_worker_lost``). A job
whose whole worker died — ``kill -9``, a lost machine — or whose last retry could not even reach the catalog
is not: RabbitMQ redelivers when the connection drops, but Redis only after its visibility timeout (hours),
and a message already acknowledged never comes back. The job row knows better: its lease expired. This step
turns such a row back into a queued job under the same id, so the job claim still runs it exactly once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps

from pipelines.catalog.leases import requeue_abandoned
from pipelines.errors import CatalogError
from workers.enqueue import enqueue_process_asset
from workers.runtime import WorkerRuntime, holder_is_alive

log = logging.getLogger(__name__)


def sweep(app: Celery) -> list[str]:
    """Re-enqueue every abandoned job; return their ids."""
    runtime: WorkerRuntime = app.conf.mediaworker_runtime
    settings = runtime.settings.worker
    abandoned = requeue_abandoned(runtime.catalog, max_lost_runs=settings.max_lost_runs,
                                  holder_is_alive=holder_is_alive, alive_grace_s=settings.retry_cap_s)
    for job in abandoned:
        log.warning("job %s was abandoned by its worker (lease expired): enqueued again", job.job_id)
        enqueue_process_asset(app, job_id=job.job_id, asset_id=job.asset_id, source=job.source_uri,
                              version_id=job.version_id, etag=job.etag)  # the version its row keeps
    return [job.job_id for job in abandoned]


class LeaseSweeper(bootsteps.StartStopStep):
    """Runs :func:`sweep` on the worker's timer, in the worker's main process."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref: Any = None

    def start(self, worker: Any) -> None:
        interval = worker.app.conf.mediaworker_runtime.settings.worker.lease_s / 2
        self.timer_ref = worker.timer.call_repeatedly(interval, self._sweep, (worker.app,), priority=10)

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()

    @staticmethod
    def _sweep(app: Celery) -> None:
        try:
            sweep(app)
        except CatalogError as exc:  # the next tick tries again
            log.warning("lease sweep skipped: %s", exc)
