"""The project's error tree, one branch per boundary, and the codes a failed job is recorded with.

``MediaError`` is bad input: it is never retried and is recorded on the job with a code a content team can
act on. ``StorageError`` and ``CatalogError`` are transient: the distributed mode retries them with backoff.
``FFmpegError`` is what the subprocess runner raises; the job translates it into a ``MediaError`` when the
master is to blame (a decode failure) and lets it through when the worker is (a missing binary).
``PackagingError`` is the encoder's output found unfit to publish. Anything else raised inside a stage is a
defect of this project: the job records it as ``internal_error`` (see :func:`pipelines.job.run_job`).

:data:`ErrorCode` lists every code a job or a clip can fail with; the README's table of codes says what each
means and whether it is retried (:data:`RETRIED_CODES`), and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
import errno
import reprlib
import shlex
import sqlite3
from typing import Literal, get_args

ErrorCode = Literal[
    # The master (or a clip) is rejected: MediaError, never retried.
    "empty_file", "not_media", "no_media_streams", "no_duration", "no_resolution", "no_audio", "no_video",
    "duration_too_long", "resolution_too_large", "too_many_streams", "tags_too_large", "clip_too_long",
    "truncated_master", "decode_failed", "transcode_timeout", "probe_timeout", "decode_timeout",
    "quality_failed", "quality_timeout", "resource_limit",
    "source_not_found", "invalid_source", "source_replaced",
    # The job's own work went wrong: not retried, a rerun would do the same.
    "packaging_failed", "internal_error",
    # Outside the master: the store, the worker's programs, the catalog. Retried.
    "storage_error", "worker_error", "catalog_error",
    # Found by the worker around the job.
    "invalid_request", "time_limit", "worker_lost",
    # The worker's own disk, and a job whose process was stopped or died under it.
    "no_space", "interrupted",
]
"""Every ``error.code`` of a job document (and of ``match_clip``'s error), as the README's table lists them."""

ERROR_CODES: frozenset[ErrorCode] = frozenset(get_args(ErrorCode))

RETRIED_CODES: frozenset[ErrorCode] = frozenset({"storage_error", "worker_error", "catalog_error", "no_space"})
"""The codes of a failure a retry may cure: the distributed mode runs such a job again, with backoff, and the job
is ``retrying`` meanwhile. Every other code is final: the same master through the same code fails the same way."""


class MediaWorkerError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(MediaWorkerError):
    """The environment describes an impossible configuration (usage error, exit code 1)."""


class MediaError(MediaWorkerError):
    """The master is rejected: empty, not media, unsupported, or past a configured limit.

    ``code`` is a stable machine-readable reason (``empty_file``, ``not_media``, ``resolution_too_large``…)
    and ``message`` a sentence for the person who uploaded the master.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StorageError(MediaWorkerError):
    """The object store failed or refused (transient unless ``missing``)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing

    @property
    def code(self) -> ErrorCode:
        """The job's code for it: ``source_not_found`` for a missing object, ``no_space`` when what failed was a
        full disk (the worker's, copying an object into its work folder), else ``storage_error``."""
        if self.missing:
            return "source_not_found"
        return "no_space" if out_of_space(self) else "storage_error"


class CatalogError(MediaWorkerError):
    """The catalog database failed (transient)."""


class InvalidRequest(MediaWorkerError):
    """A request from outside — a task message, ``mediaworker submit``, an HTTP call — that the worker does not
    take: an argument of the wrong type, too long or unknown, a source it may not read (:mod:`pipelines.requests`).

    ``code`` is ``invalid_request``, or ``invalid_source`` for an ``s3://`` address in an allowed bucket whose key
    is malformed (as the command line reports it); ``message`` is short and never holds the refused value whole
    (see :func:`shown`); ``field`` names the argument at fault (``None`` for the message as a whole). Never
    retried: the same message is refused the same way.
    """

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode = "invalid_request") -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message
        self.field = field


class PackagingError(MediaWorkerError):
    """What the encoder wrote cannot be published as it is: a playlist or an MP4 box that this project's
    encoder should never have written (``packaging_failed``, not retried: a rerun writes the same output)."""

    code: ErrorCode = "packaging_failed"


class FFmpegError(MediaWorkerError):
    """A subprocess (ffmpeg or ffprobe) exited non-zero, timed out, or could not start.

    ``returncode`` is ``None`` when the process was killed for running past its wall-clock limit.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        returncode: int | None,
        stderr_tail: str,
        *,
        timed_out: bool = False,
    ) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out
        what = "timed out" if timed_out else f"exited with {returncode}"
        super().__init__(f"{self.cmd[0]} {what}: {stderr_tail.strip()[-500:]}\n  command: {shlex.join(self.cmd)}")

    @property
    def out_of_memory(self) -> bool:
        """True when the program died of its memory limit (RLIMIT_AS) rather than of its input."""
        return self.returncode in _KILLED_BY_SIGNAL or any(sign in self.stderr_tail for sign in _OUT_OF_MEMORY)

    @property
    def no_space(self) -> bool:
        """True when the program stopped because a disk or a quota was full, not because of its input."""
        return any(sign in self.stderr_tail for sign in _NO_SPACE)

    @property
    def reason(self) -> str:
        """For a person: the last line the program said that names an error, else its last line."""
        lines = [line.strip() for line in self.stderr_tail.splitlines() if line.strip()]
        errors = [line for line in lines if "rror" in line or "nvalid" in line]
        chosen = (errors or lines or ["no diagnostic"])[-1]
        return chosen[:300]


_OUT_OF_MEMORY = (
    "Cannot allocate memory", "failed to map segment", "std::bad_alloc", "Out of memory",
    "malloc of size",  # x264: "malloc of size 12116928 failed"
    "Resource temporarily unavailable",  # a thread's stack refused (EAGAIN) under the address-space limit
)
"""What ffmpeg, its libraries and the loader say when an allocation fails; each seen under RLIMIT_AS."""
_NO_SPACE = ("No space left on device", "Disk quota exceeded")
"""How ffmpeg reports ENOSPC and EDQUOT (``strerror``), for an output or a log it could not write."""
_KILLED_BY_SIGNAL = (-6, -9, -11)  # SIGABRT, SIGKILL, SIGSEGV: how allocators and the kernel end a process


def shown(value: object, *, limit: int = 60) -> str:
    """``value`` as a short, printable description for an error message: a ``repr`` with non-printable characters
    escaped, at most about ``limit`` characters, elided in the middle (``'s3://mas...x.ogg'``). Cheap for a
    20 MB string or a deeply nested list: only the parts shown are looked at."""
    brief = reprlib.Repr()
    brief.maxstring = brief.maxother = max(limit, 8)
    brief.maxlevel, brief.maxlist, brief.maxtuple, brief.maxdict = 2, 4, 4, 4
    text = brief.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def blame_master(
    exc: FFmpegError, *, doing: str, timeout_code: ErrorCode, failed_code: ErrorCode, memory_mb: int
) -> MediaError | FFmpegError:
    """What an ffmpeg run over a master that the probe accepted means for its job.

    A run that ffmpeg gave up on is the master's fault: ``timeout_code`` past its wall-clock limit,
    ``resource_limit`` past its memory limit, else ``failed_code`` with ffmpeg's reason. A run that could not
    start at all, or that filled the worker's disk, is the worker's fault, and ``exc`` itself is returned
    (``worker_error``, or ``no_space`` as :func:`out_of_space` finds it; both retried).
    ``doing`` names the run in the message: "the transcode", "the VMAF pass"…
    """
    if exc.timed_out:
        return MediaError(timeout_code, f"{doing} ran past its time limit for a master of this length")
    if exc.returncode is None or exc.no_space:
        return exc
    if exc.out_of_memory:
        return resource_limit_error(exc, memory_mb=memory_mb)
    return MediaError(failed_code, f"{doing} failed: {exc.reason}")


def resource_limit_error(exc: FFmpegError, *, memory_mb: int) -> MediaError:
    """The ``MediaError`` for a subprocess that ran out of its memory limit."""
    return MediaError(
        "resource_limit",
        f"{exc.cmd[0]} ran out of its {memory_mb} MiB memory limit (MEDIAWORKER_PROCESS_MEMORY_MB) on this master",
    )


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""A full disk, a full quota, and a file larger than the file system (or this process's RLIMIT_FSIZE) allows:
no room for the file either way. (ffmpeg's "File too large" is not among them: it is what its own output limit
says to a runaway encode, the master's doing.)"""
_UNWRITABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
_POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def out_of_space(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, says that a disk or a quota is full.

    Each layer says it its own way: an ``OSError`` (ENOSPC, EDQUOT, EFBIG) from the worker's own writes, SQLite's
    ``SQLITE_FULL`` and PostgreSQL's ``disk_full`` under a ``CatalogError``, ffmpeg's "No space left on device"
    in an ``FFmpegError``. Such a failure is the machine's, never the master's (``no_space``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _POSTGRES_DISK_FULL:
            return True
        if isinstance(current, FFmpegError) and current.no_space:
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_error_code(exc: BaseException) -> ErrorCode | None:
    """What a failure of the worker's own disk (its work folder, the embedded store) means for a job:
    ``no_space`` when a disk is full (:func:`out_of_space`), ``storage_error`` for an ``OSError`` that refuses
    the write (a read-only or unwritable folder, an I/O error); ``None`` for anything else."""
    if out_of_space(exc):
        return "no_space"
    if isinstance(exc, OSError) and exc.errno in _UNWRITABLE_ERRNOS:
        return "storage_error"
    return None
