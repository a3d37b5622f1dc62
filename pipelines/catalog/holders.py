"""Who holds a running job, as its row names it (``claimed_by``), and whether that process still runs.

A Celery worker names itself ``host:pid`` in the leases it takes (``WorkerRuntime.worker_id``); the lease's
expiry is its main liveness rule and the holder's pid only lets a worker on the same host take over at once.
A job that ``mediaworker process`` runs has no lease and no heartbeat: its holder is the process itself,
named ``host:pid:start``, where ``start`` is the boot and the moment (in clock ticks since that boot) the
process started. A pid is reused once its process is gone; with the start the name stays unique, so a
reused pid is never mistaken for the job's process (nor, after a reboot, a process that happens to start at
the same tick with the same pid).

Only processes of this host can be checked: a holder on another host is never called gone or alive here.
"""

from __future__ import annotations

import os
from pathlib import Path
import socket


def this_process() -> str:
    """``host:pid:start`` of the calling process: the holder a local job's row names."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start(pid)}"


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` (``host:pid`` or ``host:pid:start``) is a process of this host that no longer runs:
    its pid names no process (or a zombie), or, with ``start``, a process started later with the same pid."""
    parsed = _parse(holder)
    if parsed is None:
        return False
    pid, start = parsed
    now = _start(pid)
    return now is None or (start is not None and now != start)


def holder_is_alive(holder: str) -> bool:
    """True when ``holder`` is a process of this host that still runs (the same process, with ``start``)."""
    parsed = _parse(holder)
    if parsed is None:
        return False
    pid, start = parsed
    now = _start(pid)
    return now is not None and start in (None, now)


def _parse(holder: str) -> tuple[int, str | None] | None:
    """``(pid, start or None)`` of a holder of this host; ``None`` for another host's or an unreadable one."""
    host, _, rest = holder.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid), start or None


def _start(pid: int) -> str | None:
    """``<boot id>.<start time in clock ticks since boot>`` of a running process; ``None`` when ``pid`` names
    no process or a zombie (a process that ended, waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces and parentheses
    if fields[0] in {"Z", "X"}:
        return None
    return f"{_boot_id()}.{fields[19]}"  # field 22 of proc(5), counted from field 3 (the state)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:  # pragma: no cover - every Linux has it
        return "boot"
