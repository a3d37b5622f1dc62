"""The one place that runs subprocesses.

Every external program runs through :func:`run`: an argv list, standard input closed, its own session and
process group, a wall-clock limit, ffmpeg's ``-progress pipe:1`` parsed as it arrives, and the whole process
group killed when the call ends for any reason — so an ffmpeg that hangs on a crafted file, or whose task is
cancelled, never outlives the call. Should the calling process itself be killed outright (a Celery hard time
limit, ``kill -9``), the kernel kills the child too (``PR_SET_PDEATHSIG``).

The child also gets a CPU-time limit worth its wall-clock limit on every core — a backstop the kernel enforces
should the caller be frozen rather than killed — an environment with nothing but ``PATH`` (no credentials for
a subverted decoder to read), and, given a :class:`~pipelines.media.sandbox.Sandbox`, a Landlock ruleset that keeps
it to the job's files and off the network. ffmpeg and ffprobe reach this function only through
:func:`pipelines.media.confined.run_confined`, which chooses those walls for them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
import contextlib
import ctypes
from dataclasses import dataclass
import functools
import logging
import math
import os
from pathlib import Path
import resource
import selectors
import shlex
import signal
import subprocess
import sys
import time

from pipelines.errors import FFmpegError
from pipelines.media.sandbox import Sandbox, SandboxError, build_ruleset, restrict_self

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
# Loaded once, here: the code that runs between fork and exec must not import or allocate.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass(frozen=True)
class Progress:
    """One ``-progress`` block from ffmpeg: how far the output has got, in seconds of media."""

    out_time_s: float
    speed: float | None
    done: bool


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Completed:
    """What a program that exited 0 left: its standard output (unless streamed to a callback) and the last
    ``STDERR_TAIL_LINES`` lines of its standard error."""

    stdout: bytes
    stderr_tail: str


def parse_progress_block(lines: Sequence[str]) -> Progress | None:
    """Turn one block of ``key=value`` lines ending in ``progress=…`` into a :class:`Progress`.

    ffmpeg reports ``out_time_us`` (microseconds; older builds call it ``out_time_ms`` with the same unit) and
    ``N/A`` before the first packet; such blocks give ``out_time_s = 0``. Returns ``None`` for a block without a
    ``progress`` line.
    """
    fields = dict(line.split("=", 1) for line in lines if "=" in line)
    if "progress" not in fields:
        return None
    raw_us = fields.get("out_time_us") or fields.get("out_time_ms") or ""
    try:
        out_time_s = max(0.0, int(raw_us) / 1e6)
    except ValueError:
        out_time_s = 0.0
    speed_text = fields.get("speed", "").strip().rstrip("x")
    try:
        speed: float | None = float(speed_text)
    except ValueError:
        speed = None
    return Progress(out_time_s=out_time_s, speed=speed, done=fields["progress"].strip() == "end")


def run(
    cmd: Sequence[str],
    *,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    rlimits: Mapping[int, int] | None = None,
    sandbox: Sandbox | None = None,
) -> Completed:
    """Run ``cmd`` to completion within ``timeout_s`` seconds of wall-clock time.

    Standard output is, with ``on_progress``, read as ffmpeg ``-progress pipe:1`` blocks, each passed on as it
    arrives; with ``on_stdout``, passed on raw as it arrives (decoded PCM, never held whole); otherwise
    collected and returned (ffprobe's JSON).

    ``rlimits`` (``resource.RLIMIT_*`` → limit) are set in the child before it starts: a program that passes
    its memory limit fails there, not in the worker. ``RLIMIT_CPU`` defaults to ``timeout_s`` on every core.
    With ``sandbox``, the program runs under Landlock (see :mod:`pipelines.media.sandbox`). Raises ``FFmpegError`` if
    the program cannot start or be confined (``returncode`` ``None``), exits non-zero or runs past
    ``timeout_s`` (or its CPU time); in every case the process group is gone when this returns.
    """
    argv = [str(part) for part in cmd]
    log.debug("running %s", shlex.join(argv))
    limits = {which: _within_hard_limit(which, value)
              for which, value in {resource.RLIMIT_CPU: cpu_limit_s(timeout_s), **(rlimits or {})}.items()}
    started = time.monotonic()
    ruleset: int | None = None
    try:
        ruleset = build_ruleset(argv[0], sandbox) if sandbox is not None else None
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={"PATH": os.environ.get("PATH", os.defpath)},
            start_new_session=True,
            close_fds=True,
            preexec_fn=functools.partial(_confine, tuple(limits.items()), ruleset),
        )
    except SandboxError as exc:
        raise FFmpegError(argv, None, f"cannot confine {argv[0]}: {exc}") from exc
    except (OSError, subprocess.SubprocessError) as exc:  # the latter: _confine failed in the child
        raise FFmpegError(argv, None, f"cannot start {argv[0]}: {exc}") from exc
    finally:
        if ruleset is not None:
            os.close(ruleset)

    stdout_chunks: list[bytes] = []
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    progress_lines: list[str] = []
    partial = {"out": b"", "err": b""}
    timed_out = False

    def consume(name: str, data: bytes) -> None:
        buffered = partial[name] + data
        *complete, partial[name] = buffered.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if name == "err":
                stderr_tail.append(line)
            else:
                progress_lines.append(line)
                if line.startswith("progress="):
                    block = parse_progress_block(progress_lines)
                    progress_lines.clear()
                    if block is not None and on_progress is not None:
                        on_progress(block)

    try:
        assert proc.stdout is not None and proc.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, "out")
            selector.register(proc.stderr, selectors.EVENT_READ, "err")
            open_streams = 2
            while open_streams:
                remaining = timeout_s - (time.monotonic() - started)
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(timeout=min(remaining, 1.0)):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                    elif key.data == "out" and on_stdout is not None:
                        on_stdout(data)
                    elif key.data == "out" and on_progress is None:
                        stdout_chunks.append(data)
                    else:
                        consume(key.data, data)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.1, timeout_s - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)
        proc.stdout and proc.stdout.close()
        proc.stderr and proc.stderr.close()

    if partial["err"]:
        stderr_tail.append(partial["err"].decode("utf-8", "replace"))
    tail = "\n".join(stderr_tail)
    if timed_out or proc.returncode == -signal.SIGXCPU:
        raise FFmpegError(argv, None, tail, timed_out=True)
    if proc.returncode != 0:
        raise FFmpegError(argv, proc.returncode, tail)
    return Completed(stdout=b"".join(stdout_chunks), stderr_tail=tail)


def cpu_limit_s(timeout_s: float) -> int:
    """``RLIMIT_CPU`` for a wall-clock limit: that long on every core, so it never ends a run the wall clock
    would allow, yet stops a decoder spinning on a crafted file even when no caller is left to time it."""
    return math.ceil(timeout_s * (os.cpu_count() or 1)) + 1


def _within_hard_limit(which: int, value: int) -> int:
    """``value``, lowered to this process's hard limit: only root may raise a hard limit."""
    _soft, hard = resource.getrlimit(which)
    margin = 5 if which == resource.RLIMIT_CPU else 0
    return value if hard == resource.RLIM_INFINITY else max(0, min(value, hard - margin))


def _confine(rlimits: tuple[tuple[int, int], ...], ruleset: int | None) -> None:
    """In the child, before exec: set its resource limits, ask the kernel to SIGKILL it when the thread that
    started it dies, and enter its Landlock sandbox."""
    for which, limit in rlimits:
        # The CPU limit first sends SIGXCPU (reported as a timeout), then SIGKILL a few seconds later.
        resource.setrlimit(which, (limit, limit + 5) if which == resource.RLIMIT_CPU else (limit, limit))
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if ruleset is not None:
        restrict_self(ruleset)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group led by ``proc`` (ffmpeg and anything it spawned) and reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process that will not die
        log.error("process %d did not exit after SIGKILL", proc.pid)


def process_is_gone(pid: int) -> bool:
    """True when ``pid`` names no running process of this host: absent, or a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}
