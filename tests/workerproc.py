"""Real ``mediaworker worker`` processes for tests, and what tests ask of the running system."""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from types import TracebackType

MEDIAWORKER = str(Path(sys.executable).with_name("mediaworker"))


class WorkerProcess:
    """``mediaworker worker`` (prefork, one pool process) with its log in a file; a context manager."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *, concurrency: int = 1) -> None:
        self.name = name
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        args = [MEDIAWORKER, "worker", "--pool", "prefork", "--concurrency", str(self.concurrency),
                "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return " ready." in self.log.read_text(errors="replace")

        wait_for(ready, timeout, what=f"worker {self.name} to be ready", on_timeout=self.tail)
        return self

    def pool_pids(self) -> list[int]:
        assert self.proc is not None
        return children_of(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the worker's main process (its pool processes are left to notice)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        # Whatever is left of the process group (a pool process of a killed worker) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def wait_for(check: Callable[[], object], timeout: float, *, what: str, on_timeout: Callable[[], str] | None = None,
             interval: float = 0.2) -> object:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{detail}")
        time.sleep(interval)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``: orphan hunting."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
