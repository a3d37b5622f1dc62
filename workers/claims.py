"""Holding a claimed job: the lease heartbeat, and stopping the job when the lease is lost or a cancel comes.

The heartbeat runs in a thread beside the job and renews the lease every third of its length. When the
catalog says the job was cancelled or taken over, the thread signals the job's own thread, whose handler
raises :class:`JobInterrupted` there; the subprocess runner's cleanup then kills ffmpeg and the job removes
any partly published output on its way out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import logging
import signal
import threading
from types import FrameType

from pipelines.catalog import Catalog
from pipelines.catalog.leases import renew
from pipelines.errors import CatalogError

log = logging.getLogger(__name__)

INTERRUPT_SIGNAL = signal.SIGUSR2


class JobInterrupted(Exception):  # noqa: N818 - it is what happened to the job, not an error in it
    """The job was cancelled, or its lease passed to another worker: stop without recording a result."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextmanager
def held_lease(catalog: Catalog, job_id: str, *, worker: str, lease_s: float) -> Iterator[None]:
    """Keep ``worker``'s lease on ``job_id`` alive while the block runs; interrupt the block if it is lost.

    Must be entered in the main thread of the process (where Celery's prefork pool runs tasks), because
    only the main thread can receive the interrupting signal.
    """
    reason: list[str] = []
    stop = threading.Event()
    target = threading.get_ident()

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise JobInterrupted(reason[0] if reason else "interrupted")

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                state = renew(catalog, job_id, worker=worker, lease_s=lease_s)
            except CatalogError as exc:  # keep working: the lease outlives a short database outage
                log.warning("could not renew the lease on job %s: %s", job_id, exc)
                continue
            if state != "held" and not stop.is_set():
                reason.append("cancelled" if state == "cancel" else "lease lost to another worker")
                log.warning("job %s %s: stopping it", job_id, reason[0])
                signal.pthread_kill(target, INTERRUPT_SIGNAL)
                return

    previous = signal.signal(INTERRUPT_SIGNAL, interrupt)
    thread = threading.Thread(target=beat, name=f"lease-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        signal.signal(INTERRUPT_SIGNAL, previous)
