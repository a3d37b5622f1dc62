"""The liveness rule of a job run by ``mediaworker process``: its row names its process (host, pid and start),
and a job whose process is gone is ended ``interrupted`` — only such a job (see also test_interrupted_jobs.py,
where real processes are killed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from pipelines.catalog import Catalog
from pipelines.catalog.holders import holder_is_alive, holder_is_gone, this_process
from pipelines.catalog.leases import claim, end_interrupted_local_jobs
from pipelines.catalog.models import Job


def _holder_of_a_finished_process() -> str:
    """The holder name of a process that has ended (and been reaped)."""
    code = "from pipelines.catalog.holders import this_process; print(this_process())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_a_holder_is_its_process_not_only_its_pid() -> None:
    me = this_process()
    host, pid, start = me.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid()) and start
    assert holder_is_alive(me) and not holder_is_gone(me)
    assert holder_is_alive(f"{host}:{pid}")  # a worker's lease names host:pid only

    reused = f"{host}:{pid}:{start}0"  # this pid, but another process's start: the pid was reused
    assert holder_is_gone(reused) and not holder_is_alive(reused)

    finished = _holder_of_a_finished_process()
    assert holder_is_gone(finished) and not holder_is_alive(finished)

    elsewhere = f"not-{host}:{pid}:{start}"  # another host's process cannot be checked from here
    assert not holder_is_gone(elsewhere) and not holder_is_alive(elsewhere)


def test_only_local_jobs_whose_process_is_gone_are_ended(catalog: Catalog) -> None:
    """Through the state machine: ``failed``, ``interrupted``, the holder cleared, a document; a job of a live
    process, a job held under a worker's lease and a job that never started are left as they are."""
    def started(asset_id: str, holder: str | None) -> str:
        job_id = catalog.create_job(asset_id=asset_id, source_uri=f"/masters/{asset_id}.wav")
        catalog.start_job(job_id, holder=holder)
        return job_id

    dead = started("dead", _holder_of_a_finished_process())
    live = started("live", this_process())
    unnamed = started("unnamed", None)
    leased = "leased-job"
    assert claim(catalog, leased, asset_id="leased", source_uri="s3://masters/x.wav",
                 worker=_holder_of_a_finished_process(), lease_s=600, max_lost_runs=3).outcome == "claimed"
    queued = catalog.create_job(asset_id="queued", source_uri="/masters/q.wav")

    assert end_interrupted_local_jobs(catalog, holder_is_gone=holder_is_gone) == [dead]
    assert end_interrupted_local_jobs(catalog, holder_is_gone=holder_is_gone) == []  # once

    def state(job_id: str) -> tuple[str, str | None]:
        job = catalog.get_job(job_id)
        assert isinstance(job, Job)
        return job.status, job.error_code

    assert state(dead) == ("failed", "interrupted")
    ended = catalog.get_job(dead)
    assert ended is not None and ended.claimed_by is None and ended.finished_at is not None
    assert ended.document is not None and ended.document["error"]["code"] == "interrupted"
    assert [state(j) for j in (live, unnamed, leased, queued)] == [
        ("running", None), ("running", None), ("running", None), ("queued", None)]
