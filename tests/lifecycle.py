"""Helpers of the lifecycle tests: ``mediaworker process`` as a real background process, the catalog it writes
read while it runs, its children, and small or read-only file systems mounted for a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import signal
import sqlite3
import subprocess
import time

from pipelines.media.runner import process_is_gone
from tests.conftest import MEDIAWORKER

DEADLINE_S = 600.0
"""How long a condition may take to come true on a busy 2-core machine before the test gives up."""


class Background:
    """``mediaworker ARGS`` started in the background against ``home``; its output goes to files."""

    def __init__(self, home: Path, *args: str, out: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        out.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = out / "stdout", out / "stderr"
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [MEDIAWORKER, *args], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                env={**os.environ, "MEDIAWORKER_HOME": str(home), **(env or {})},
                # As from a terminal: Ctrl-C is not ignored, whatever the shell that runs the tests ignores.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self) -> int:
        return self.proc.wait(timeout=DEADLINE_S)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


def job_row(home: Path, asset_id: str) -> dict[str, object] | None:
    """The newest job row of ``asset_id`` in the home's SQLite catalog, read as it is now; ``None`` before the
    catalog or the row exists."""
    try:
        with sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=30) as connection:
            connection.row_factory = sqlite3.Row
            row = connection.execute("SELECT * FROM jobs WHERE asset_id = ? ORDER BY created_at DESC LIMIT 1",
                                     (asset_id,)).fetchone()
    except sqlite3.OperationalError:  # no catalog yet, or no table yet
        return None
    return dict(row) if row is not None else None


def wait_until_transcoding(job: Background, asset_id: str) -> dict[str, object]:
    """Wait until the job's row says the transcode is under way (its progress past the stage's start: ffmpeg is
    encoding), and return the row. Fails if the process ends first."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert job.proc.poll() is None, f"the job ended before its transcode: {job.stderr[-2000:]}"
        row = job_row(job.home, asset_id)
        if row is not None and row["stage"] == "transcode" and float(row["percent"]) > 18.5:  # type: ignore[arg-type]
            return row
        time.sleep(0.2)
    raise AssertionError(f"the job never reached its transcode: {job.stderr[-2000:]}")


def children(pid: int) -> set[int]:
    """The processes ``pid`` started that still run (ffmpeg, for a job mid-transcode)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def wait_gone(pids: set[int]) -> set[int]:
    """Wait (up to the deadline) for every process of ``pids`` to be gone; return those still running."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        left = {pid for pid in pids if not process_is_gone(pid)}
        if not left:
            return left
        time.sleep(0.1)
    return {pid for pid in pids if not process_is_gone(pid)}


@contextmanager
def tmpfs(path: Path, *, size_bytes: int, read_only: bool = False) -> Iterator[bool]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (made if missing) for the block, read-only if asked;
    yields ``False`` (nothing mounted) where this machine refuses the mount (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if mounted and read_only and subprocess.run(["mount", "-o", "remount,ro", str(path)],
                                                 capture_output=True).returncode != 0:
        subprocess.run(["umount", str(path)], check=True)
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(path)], check=True)
