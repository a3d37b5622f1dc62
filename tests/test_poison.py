"""Poison masters in the distributed mode: a master whose decoder takes its worker down, or hangs, is tried a
bounded number of times, then parked as ``failed`` with its reason, where ``mediaworker failed`` shows it — and
the worker goes on serving.

A real worker (prefork, one pool process) on a Redis database of its own, the real S3 server and PostgreSQL.
The decoder is ffmpeg behind a wrapper (``MEDIAWORKER_FFMPEG``) that misbehaves only on masters carrying a
marker tag: it SIGKILLs the pool process that started it (as the kernel's OOM killer would), or hangs. The
Landlock sandbox is off for this worker: it would stop the wrapper from signalling its parent, and from
starting ``grep`` and the real ffmpeg at all.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import subprocess
import time
from typing import Any
import uuid

import pytest
import redis

from pipelines.catalog import Catalog
from tests.conftest import make_media
from tests.distributed import System
from tests.workerproc import MEDIAWORKER, processes_mentioning, wait_for

REDIS_DB = 14  # tests.distributed uses 9, test_faults 11, test_browser_s3 13
TIME_LIMIT_S = 40


def _wrapper(folder: Path) -> tuple[Path, Path]:
    """The misbehaving ffmpeg, and the file where it counts the poisoned runs."""
    counter = folder / "poisoned-runs"
    script = folder / "ffmpeg"
    script.write_text(f"""#!/bin/sh
for arg in "$@"; do
  if [ -f "$arg" ] && grep -q MEDIAWORKER-POISON-KILL "$arg"; then
    echo kill >> {counter}
    kill -9 $PPID
    sleep 30
    exit 1
  fi
  if [ -f "$arg" ] && grep -q MEDIAWORKER-POISON-HANG "$arg"; then
    echo hang >> {counter}
    sleep 600
  fi
done
exec ffmpeg "$@"
""")
    script.chmod(0o755)
    return script, counter


@pytest.fixture
def poison_system(postgres_url: str, s3_server: Any, tmp_path: Path) -> Iterator[tuple[System, Path]]:
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis(db=REDIS_DB).flushdb()
    wrapper, counter = _wrapper(tmp_path)
    env = {
        **os.environ, **s3_server.env,
        "MEDIAWORKER_HOME": str(tmp_path / "home"),
        "MEDIAWORKER_BROKER_URL": broker,
        "MEDIAWORKER_CATALOG_URL": postgres_url,
        "MEDIAWORKER_LEASE_S": "6",
        "MEDIAWORKER_RETRY_BASE_S": "1",
        "MEDIAWORKER_FFMPEG": str(wrapper),
        "MEDIAWORKER_SANDBOX": "false",
        "MEDIAWORKER_TASK_TIME_LIMIT_S": str(TIME_LIMIT_S),
    }
    catalog = Catalog.open(postgres_url)
    (tmp_path / "logs").mkdir()
    try:
        yield System(broker, env, catalog, s3_server, tmp_path / "logs"), counter
    finally:
        catalog.dispose()


def _master(folder: Path, marker: str) -> Path:
    return make_media(folder / f"{marker or 'good'}.flac", "-f", "lavfi", "-i", "sine=frequency=600:duration=2",
                      "-metadata", f"comment={marker or 'fine'}")


def _send(system: System, path: Path) -> tuple[str, str]:
    source = system.upload(path, f"{uuid.uuid4()}/{path.name}")
    asset_id = f"poison-{uuid.uuid4().hex[:8]}"
    sent = system.bare_client().send_task("mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source},
                                          queue="transcode")
    return sent.id, asset_id


def _runs(counter: Path, kind: str) -> int:
    return counter.read_text().split().count(kind) if counter.exists() else 0


def test_a_master_that_kills_its_worker_is_parked_after_three_runs(
    poison_system: tuple[System, Path], tmp_path: Path
) -> None:
    system, counter = poison_system
    with system.worker("poison") as worker:
        job_id, _ = _send(system, _master(tmp_path, "MEDIAWORKER-POISON-KILL"))
        done = system.wait_status(job_id, {"succeeded", "failed", "cancelled"}, 180, worker)
        assert (done.status, done.error_code) == ("failed", "worker_lost"), vars(done)
        assert done.lost_runs == 3 and _runs(counter, "kill") == 3  # MEDIAWORKER_MAX_LOST_RUNS, then never again
        assert done.error_message and "not tried again" in done.error_message

        good_id, good_asset = _send(system, _master(tmp_path, ""))  # the same worker serves the next job
        good = system.wait_status(good_id, {"succeeded", "failed"}, 120, worker)
        assert good.status == "succeeded", (good.error_code, good.error_message)
        assert _runs(counter, "kill") == 3  # the poison message did not come back meanwhile
        _assert_listed_as_failed(system, job_id, "worker_lost")
        assert processes_mentioning(str(tmp_path / "home" / "work")) == []


def test_a_master_that_hangs_its_decoder_fails_at_the_time_limit_leaving_no_process(
    poison_system: tuple[System, Path], tmp_path: Path
) -> None:
    """Past the task's soft time limit the job fails ``time_limit``, once, never retried; the hung decoder and
    the ``sleep`` it started are killed with their process group: nothing of the job is left in the process
    table."""
    system, counter = poison_system
    with system.worker("hang") as worker:
        job_id, _ = _send(system, _master(tmp_path, "MEDIAWORKER-POISON-HANG"))
        wait_for(lambda: _runs(counter, "hang") == 1, 120, what="the decoder to hang", on_timeout=worker.tail)
        hung = processes_mentioning(str(tmp_path / "home" / "work"))
        assert hung, "the hung decoder should be running"
        groups = {os.getpgid(pid) for pid in hung}
        assert len(_in_groups(groups)) > len(hung)  # the wrapper's ``sleep`` is in its group too
        done = system.wait_status(job_id, {"succeeded", "failed", "cancelled"}, TIME_LIMIT_S + 60, worker)
        assert (done.status, done.error_code, done.attempts) == ("failed", "time_limit", 1), vars(done)
        wait_for(lambda: _in_groups(groups) == [], 60, what=f"the hung decoder's process group {groups} to be gone")
        assert processes_mentioning(str(tmp_path / "home" / "work")) == []
        time.sleep(3)
        assert _runs(counter, "hang") == 1  # not retried
        _assert_listed_as_failed(system, job_id, "time_limit")


def _in_groups(groups: set[int]) -> list[int]:
    """Live (not zombie) processes of the process table in any of ``groups``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and fields[0] not in {"Z", "X"} and int(fields[2]) in groups:
            found.append(int(entry.name))
    return found


def _assert_listed_as_failed(system: System, job_id: str, code: str) -> None:
    listed = subprocess.run([MEDIAWORKER, "failed", "--json"], capture_output=True, text=True, env=system.env,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = {row["job_id"]: row for row in json.loads(listed.stdout)["jobs"]}
    assert rows[job_id]["code"] == code and rows[job_id]["message"], rows.get(job_id)

