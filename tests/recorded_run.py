"""Run a ``mediaworker`` command in this process and record every program it starts (for ``test_one_door.py``).

    python tests/recorded_run.py RECORD.json process MASTER --json

Two observers, both of the real processes:

* an audit hook (``sys.addaudithook``) hears every way Python starts a program — ``subprocess.Popen``,
  ``os.exec*``, ``os.posix_spawn``, ``os.spawn*``, ``os.system`` — with its argv;
* ``subprocess.Popen`` is replaced by a subclass that notes whether
  :func:`pipelines.media.confined.run_confined` is on the stack (the one door, and which call it runs), the
  environment the program is given, and — as soon as the child has exec'd, which is when ``Popen()`` returns —
  its ``/proc/<pid>/status`` and ``/proc/<pid>/limits`` as the kernel holds them. Only this process may reap
  the child, so both are still there even if it has already exited.

In a process of its own so that the audit hook (which cannot be removed) and the replaced ``Popen`` never reach
the test session. The records are written to RECORD.json; the exit code is the command's.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
import subprocess
import sys
from typing import Any

from pipelines.media.confined import run_confined
from workers.cli import main

_STARTS = frozenset({"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile"})
starts: list[dict[str, Any]] = []
children: list[dict[str, Any]] = []


def _hear(event: str, args: tuple[Any, ...]) -> None:
    if event in _STARTS:
        starts.append({"event": event, "args": [str(a) for a in args[:2]]})


def _door() -> dict[str, Any] | None:
    """The call :func:`run_confined` is running, if it is on the stack, and the stage that asked for it."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code is run_confined.__code__:
            call = frame.f_locals["call"]
            stage = frame.f_back.f_code.co_name if frame.f_back is not None else "?"
            return {"kind": call.kind, "duration_s": call.duration_s, "stage": stage}
        frame = frame.f_back
    return None


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _limits(pid: int) -> dict[str, list[str]]:
    """``/proc/<pid>/limits`` as ``{name: [soft, hard]}``."""
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): row[26:].split()[:2] for row in rows}


class InspectedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` that records the child it started, seen from the kernel's side."""

    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        door = _door()
        super().__init__(args, *rest, **kwargs)
        env = kwargs.get("env")
        children.append({
            "argv": [str(a) for a in args], "door": door, "env": None if env is None else sorted(env),
            "pid": self.pid, "status": _status(self.pid), "limits": _limits(self.pid),
        })


if __name__ == "__main__":
    record, command = Path(sys.argv[1]), sys.argv[2:]
    sys.addaudithook(_hear)
    subprocess.Popen = InspectedPopen  # type: ignore[misc]
    try:
        code = main(command)
    finally:
        record.write_text(json.dumps({"starts": starts, "children": children}))
    sys.exit(code)
