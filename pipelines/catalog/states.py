"""A job's status and the changes allowed to it: the one place a job row's ``status`` is written.

A job is born ``queued`` (a row made by ``mediaworker submit``, an upload notification or the first delivery
of its message). A worker's claim makes it ``running``; it ends ``succeeded``, ``failed`` or ``cancelled``,
or goes ``retrying`` when a transient failure or a lost worker means it runs again. The three final statuses
are final: a finished job is never run again, and nothing changes its status afterwards.

=============  ==========================================================================================
from           may become
=============  ==========================================================================================
``queued``     ``running`` (claimed, or started by ``mediaworker process``), ``retrying`` (a transient failure
               before it ran), ``failed`` (its master could not be fetched), ``cancelled``, ``succeeded``
               (recorded whole by a caller that runs and records it in one go)
``running``    ``running`` (another worker takes over an expired lease), ``retrying``, ``succeeded``,
               ``failed``, ``cancelled``
``retrying``   ``running`` (the retry's claim), ``retrying`` (a second transient failure), ``succeeded`` and
               ``failed`` (a run that outlived its lease still records its end), ``cancelled``
final          nothing
=============  ==========================================================================================

Nothing returns to ``queued``: a job that must run again is ``retrying``, so a client polling its status sees
that it already ran once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pipelines.catalog.models import Job, utcnow
from pipelines.errors import CatalogError


class JobStatus(StrEnum):
    """The status of a job row, as stored in the catalog and shown by ``mediaworker status``."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for ``succeeded``, ``failed`` and ``cancelled``: the job is over and stays so."""
        return self in FINAL


INITIAL: Final = JobStatus.QUEUED
"""The status a job row is created with."""

FINAL: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_ENDS = frozenset({JobStatus.RETRYING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = MappingProxyType({
    JobStatus.QUEUED: _ENDS | {JobStatus.RUNNING},
    JobStatus.RUNNING: _ENDS | {JobStatus.RUNNING},
    JobStatus.RETRYING: _ENDS | {JobStatus.RUNNING},
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
})
"""The table of the module's docstring: each status → the statuses it may become."""


class JobStateError(CatalogError):
    """A job was asked to change to a status its current one does not allow: it finished, or was cancelled,
    while the caller was not looking. A ``CatalogError``, so a worker retries, and its retry's claim finds the
    job as it now is (``done``) instead of overwriting how it ended."""

    def __init__(self, job_id: str, current: str, wanted: JobStatus) -> None:
        super().__init__(f"job {job_id} is {current}: it cannot become {wanted}")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


def may_become(current: str, wanted: JobStatus) -> bool:
    """True when a job whose status is ``current`` may change to ``wanted`` (see :data:`TRANSITIONS`).

    Raises ``ValueError`` for a ``current`` that is no status at all (a row written by something else)."""
    return wanted in TRANSITIONS[JobStatus(current)]


def is_final(current: str) -> bool:
    """True when a job whose status is ``current`` is over: ``succeeded``, ``failed`` or ``cancelled``."""
    return JobStatus(current).final


def advance(job: Job, wanted: JobStatus, *, now: datetime | None = None) -> None:
    """Change ``job``'s status to ``wanted`` — every status change goes through here.

    Entering a final status stamps ``finished_at`` (``now``, default the current time); any other status
    clears it, since a job that is not over has no end. The lease, the error and the document are the
    caller's to write. Raises :class:`JobStateError` when :data:`TRANSITIONS` does not allow the change.
    """
    if not may_become(job.status, wanted):
        raise JobStateError(job.id, job.status, wanted)
    job.status = wanted.value
    job.finished_at = (now or utcnow()) if wanted.final else None


def fail(job: Job, *, code: str, message: str, retrying: bool = False, now: datetime | None = None) -> None:
    """End ``job``'s run with an error: ``failed``, or ``retrying`` when its caller will run it again.

    The one way a job fails, whoever finds the failure (the pipeline, a time limit, a worker lost too often):
    the status, the error ``code`` and ``message``, and the end of its lease, together. The document is the
    caller's to write. Raises :class:`JobStateError` for a job that is already over.
    """
    advance(job, JobStatus.RETRYING if retrying else JobStatus.FAILED, now=now)
    job.error_code, job.error_message = code, message
    job.claimed_by = job.lease_expires_at = None
