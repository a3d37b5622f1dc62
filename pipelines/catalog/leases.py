"""Job claims: how at-least-once delivery becomes exactly-once in effect.

A job row is keyed by the Celery task id. A worker runs a job only after :func:`claim` grants it a lease in
the catalog; it renews the lease while it works (:func:`renew`). A redelivered message finds the job done, or
held by a live lease (and waits), or abandoned — its lease expired or its holder's process gone — and takes it
over. A second message for an asset and source that a live job is already processing is a duplicate and is
dropped. On PostgreSQL the row is locked with ``SELECT … FOR UPDATE SKIP LOCKED``, so two workers claiming the
same job at the same instant cannot both win; SQLite serialises writers on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import select

from pipelines.catalog import Catalog, states
from pipelines.catalog.inserts import insert_ignore
from pipelines.catalog.models import Job, utcnow
from pipelines.catalog.states import JobStatus
from pipelines.privacy import is_pseudonym

ClaimOutcome = Literal["claimed", "done", "busy", "duplicate", "cancelled", "exhausted"]


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    job_id: str
    retry_in_s: float = 0.0
    """For ``busy``: when the current holder's lease runs out (seconds)."""
    other_job_id: str | None = None
    """For ``duplicate``: the live job already processing the same asset and source."""
    source_version_id: str | None = None
    source_etag: str | None = None
    """For ``claimed``: the version of the master the job must process, as its row keeps it (see :func:`enqueue`)."""


class Requeued(NamedTuple):
    """A job :func:`requeue_abandoned` gave back: what its task message must carry again."""

    job_id: str
    asset_id: str
    source_uri: str
    version_id: str | None
    etag: str | None


def claim(
    catalog: Catalog,
    job_id: str,
    *,
    asset_id: str,
    source_uri: str,
    worker: str,
    lease_s: float,
    max_lost_runs: int,
    holder_is_dead: Callable[[str], bool] = lambda _holder: False,
    version_id: str | None = None,
    etag: str | None = None,
) -> Claim:
    """Try to take job ``job_id`` for ``worker``, creating its row if the message is the first word of it.

    ``version_id`` and ``etag`` are the master's version the message names; a row that has none yet keeps them,
    and a granted claim answers the row's (a message sent again without them still runs the same version)."""
    now = utcnow()
    with catalog.session() as session:
        insert_ignore(session, Job, _queued_row(job_id, asset_id, source_uri, now, version_id, etag))
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update(skip_locked=True)).first()
        if job is None:
            return Claim("busy", job_id, retry_in_s=5.0)  # another worker holds the row lock this very moment
        if states.is_final(job.status):
            return Claim("done", job_id)
        if job.cancel_requested:
            states.advance(job, JobStatus.CANCELLED, now=now)
            job.claimed_by = job.lease_expires_at = None
            return Claim("cancelled", job_id)
        if job.status == JobStatus.RUNNING:
            expires = _aware(job.lease_expires_at)
            holder = job.claimed_by or ""
            if holder != worker and expires is not None and expires > now and not holder_is_dead(holder):
                return Claim("busy", job_id, retry_in_s=(expires - now).total_seconds())
            if holder != worker:
                job.lost_runs += 1
            if job.lost_runs >= max_lost_runs:
                _give_up_lost(job, now)
                return Claim("exhausted", job_id)
        if job.source_version_id is None and job.source_etag is None:
            job.source_version_id, job.source_etag = version_id, etag
        twin = session.scalars(  # the same version of the same master: a newer upload is no duplicate
            select(Job.id).where(
                Job.asset_id == asset_id, Job.source_uri == source_uri, Job.status == JobStatus.RUNNING.value,
                Job.lease_expires_at > now, Job.id != job_id,
                Job.source_version_id.is_not_distinct_from(job.source_version_id),
                Job.source_etag.is_not_distinct_from(job.source_etag),
            ).limit(1)
        ).first()
        if twin is not None:
            return Claim("duplicate", job_id, other_job_id=twin)
        states.advance(job, JobStatus.RUNNING, now=now)
        job.claimed_by, job.lease_expires_at = worker, now + timedelta(seconds=lease_s)
        job.attempts += 1
        job.started_at = job.started_at or now
        job.error_code = job.error_message = None
        return Claim("claimed", job_id, source_version_id=job.source_version_id, source_etag=job.source_etag)


def renew(catalog: Catalog, job_id: str, *, worker: str, lease_s: float) -> Literal["held", "lost", "cancel"]:
    """Extend ``worker``'s lease on a running job; say if it was lost to another worker or a cancel arrived."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.RUNNING or job.claimed_by != worker:
            return "lost"
        job.lease_expires_at = utcnow() + timedelta(seconds=lease_s)
        return "cancel" if job.cancel_requested else "held"


def release_for_retry(catalog: Catalog, job_id: str, *, worker: str, code: str, message: str) -> None:
    """Give a job back after a transient failure, so that the retry's claim finds it free.

    A job that another worker holds now, or that is already over, is left as it is."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is not None and job.claimed_by in (worker, None) and states.may_become(job.status, JobStatus.RETRYING):
            states.fail(job, code=code, message=message, retrying=True)


def request_cancel(catalog: Catalog, job_id: str) -> str | None:
    """Ask for a job to stop; return its status (``None`` if there is no such job)."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        if not states.is_final(job.status):
            job.cancel_requested = True
            if job.status in {JobStatus.QUEUED, JobStatus.RETRYING}:  # a running job stops at its next heartbeat
                states.advance(job, JobStatus.CANCELLED)
        return job.status


def mark_cancelled(catalog: Catalog, job_id: str) -> None:
    """Record that a running job stopped for its cancel; a job that is already over is left as it is."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is not None and states.may_become(job.status, JobStatus.CANCELLED):
            states.advance(job, JobStatus.CANCELLED)
            job.claimed_by = job.lease_expires_at = None
            job.document = _failed_document(job, status="cancelled")


def _give_up_lost(job: Job, now: datetime) -> None:
    """Fail a job whose runs keep ending with their worker: a poison master is not tried again."""
    message = (
        f"the job was interrupted {job.lost_runs} times (its worker died or was killed while running it); "
        "it is not tried again"
    )
    states.fail(job, code="worker_lost", message=message, now=now)
    job.document = _failed_document(job)


def _failed_document(job: Job, status: str = "failed") -> dict[str, Any]:
    from pipelines.document import JobDocument, JobError  # the document imports the stages: only when needed

    return JobDocument(asset_id=job.asset_id, job_id=job.id, status=status,
                       error=JobError.stored(job.error_code, job.error_message)).to_json()


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time in the catalog is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def fail(catalog: Catalog, job_id: str, *, code: str, message: str) -> dict[str, Any]:
    """Mark a job failed for a reason found outside the pipeline (a time limit); return its document.

    The same failure as the pipeline's own (``states.fail``, as ``Catalog.fail_job`` records it), with the
    document of a job that has no results. A job that is already over keeps how it ended, and its document is
    returned; ``{}`` for no such job."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return {}
        if states.may_become(job.status, JobStatus.FAILED):
            states.fail(job, code=code, message=message)
            job.document = _failed_document(job)
        return dict(job.document or {})


def end_interrupted_local_jobs(catalog: Catalog, *, holder_is_gone: Callable[[str], bool]) -> list[str]:
    """End ``failed`` with code ``interrupted`` the jobs that a process ran without a lease (``mediaworker
    process``: see ``Catalog.start_job``) and that are still ``running`` although that process is gone —
    killed (SIGKILL), crashed, its machine restarted; return their ids.

    The local form of a worker's lease: a local job has no heartbeat for a lease to expire, so its row names
    its process (``holders.this_process()``) and whoever reads the catalog next (``process``, ``status``,
    ``failed``) asks whether that process still runs (``holder_is_gone``). A job held by a process of
    another host is left as it is, since it cannot be checked from here.
    """
    ended: list[str] = []
    with catalog.session() as session:
        running = session.scalars(
            select(Job).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at.is_(None),
                              Job.claimed_by.is_not(None))
            .with_for_update(skip_locked=True)
        )
        for job in running:
            holder = job.claimed_by or ""
            if not holder_is_gone(holder):
                continue
            host, _, rest = holder.partition(":")
            states.fail(job, code="interrupted", message=(
                f"the process that ran the job (pid {rest.partition(':')[0]} on {host}) ended before the job did: "
                "it was killed or crashed; process the master again"))
            job.document = _failed_document(job)
            ended.append(job.id)
    return ended


def failed_jobs(catalog: Catalog, *, limit: int = 50) -> list[Job]:
    """The jobs that ended ``failed`` — a rejected master, a poison master given up on (``worker_lost``,
    ``time_limit``), retries run out — most recently finished first: what an operator looks at. A failed job
    is never run again by a worker; submitting its master again starts a new job."""
    with catalog.session() as session:
        query = select(Job).where(Job.status == JobStatus.FAILED.value).order_by(Job.finished_at.desc()).limit(limit)
        jobs = list(session.scalars(query))
        session.expunge_all()
        return jobs


def enqueue(
    catalog: Catalog, job_id: str, *, asset_id: str, source_uri: str, uploader: str | None = None,
    version_id: str | None = None, etag: str | None = None,
) -> None:
    """Create a queued job row unless the job exists already (a notification delivered twice).

    ``uploader`` is the uploader's pseudonym; raises ``ValueError`` for anything else (a clear identity).
    ``version_id`` and ``etag`` are the master's version its notification announced: the row keeps them, so
    every run of the job, enqueued again or retried, processes that version.
    """
    if uploader is not None and not is_pseudonym(uploader):
        raise ValueError("a job keeps its uploader only as a pseudonym (hmac-sha256:…)")
    with catalog.session() as session:
        row = _queued_row(job_id, asset_id, source_uri, utcnow(), version_id, etag)
        insert_ignore(session, Job, {**row, "uploader": uploader})


def _queued_row(
    job_id: str, asset_id: str, source_uri: str, now: datetime, version_id: str | None = None,
    etag: str | None = None,
) -> dict[str, Any]:
    return {
        "id": job_id, "asset_id": asset_id, "source_uri": source_uri, "status": states.INITIAL.value, "percent": 0.0,
        "attempts": 0, "lost_runs": 0, "cancel_requested": False, "created_at": now,
        "source_version_id": version_id, "source_etag": etag,
    }


def requeue_abandoned(
    catalog: Catalog,
    *,
    max_lost_runs: int,
    holder_is_alive: Callable[[str], bool] = lambda _holder: False,
    alive_grace_s: float = 0.0,
) -> list[Requeued]:
    """Jobs left ``running`` under an expired lease — their worker died with them, and their message may not
    come back before the broker's visibility timeout — set to ``retrying`` (or failed as ``worker_lost`` after
    ``max_lost_runs``); return those to enqueue again, with the master's version each must process.

    A job whose holder is known to be alive (a process of this host, its retry waiting out a database outage
    that stopped its heartbeat) is left to it for ``alive_grace_s`` more — the longest a retry waits — and is
    not counted as a lost run when it is taken back."""
    now = utcnow()
    requeue: list[Requeued] = []
    with catalog.session() as session:
        abandoned = session.scalars(
            select(Job).where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < now)
            .with_for_update(skip_locked=True).limit(100)
        )
        for job in abandoned:
            alive = bool(job.claimed_by) and holder_is_alive(job.claimed_by or "")
            expired = _aware(job.lease_expires_at)
            if alive and expired is not None and expired > now - timedelta(seconds=alive_grace_s):
                continue
            job.lost_runs += 0 if alive else 1
            job.claimed_by = job.lease_expires_at = None
            if job.lost_runs >= max_lost_runs:
                _give_up_lost(job, now)
            else:
                states.advance(job, JobStatus.RETRYING, now=now)
                requeue.append(Requeued(job.id, job.asset_id, job.source_uri, job.source_version_id, job.source_etag))
    return requeue
