"""A ``mediaworker process`` that is stopped or killed mid-transcode leaves no job ``running``.

Real processes killed by pid while their ffmpeg encodes (found by the stage and percent the catalog shows,
never by a sleep). SIGTERM and SIGINT stop the job: ffmpeg killed, nothing published, the job ``failed`` with
code ``interrupted``, the document printed, exit 143 or 130, no traceback. SIGKILL gives the process no chance:
its job stays ``running`` under its process's name, and the next ``status``, ``failed`` or ``process`` finds
that process gone and ends the job ``interrupted``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal

import pytest

from tests.conftest import CliRunner, files_under
from tests.lifecycle import Background, children, job_row, wait_gone, wait_until_transcoding


def _start(home: Path, master: Path, asset_id: str, out: Path) -> tuple[Background, set[int]]:
    """``process`` of ``master`` in the background, returned once its ffmpeg encodes, with ffmpeg's pid."""
    job = Background(home, "process", str(master), "--asset-id", asset_id, "--json", out=out)
    wait_until_transcoding(job, asset_id)
    encoders = children(job.pid)
    assert encoders, "the transcode runs in a child process"
    return job, encoders


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_process_ends_its_job_interrupted_and_exits_as_the_signal_says(
    long_master: Path, home: Path, tmp_path: Path, signum: signal.Signals, exit_code: int
) -> None:
    job, encoders = _start(home, long_master, "stopped", tmp_path / "run")
    os.kill(job.pid, signum)

    assert job.wait() == exit_code
    assert wait_gone(encoders) == set(), "ffmpeg was stopped with the job"
    assert "Traceback" not in job.stderr and "KeyboardInterrupt" not in job.stderr, job.stderr
    document = json.loads(job.stdout)
    assert (document["status"], document["error"]["code"], document["hls"]) == ("failed", "interrupted", None)
    assert signum.name in document["error"]["message"]
    row = job_row(home, "stopped")
    assert row is not None
    assert (row["status"], row["error_code"], row["claimed_by"]) == ("failed", "interrupted", None)
    assert row["id"] == document["job_id"]
    assert files_under(home / "objects" / "media-out") == [], "nothing of the job is published"
    assert list((home / "work").glob("job-*")) == [], "its scratch folder is gone"


@pytest.mark.parametrize("next_command", ["status", "failed", "process"])
def test_a_killed_process_leaves_its_job_to_be_ended_interrupted_by_the_next_command(
    long_master: Path, masters: dict[str, Path], home: Path, tmp_path: Path, cli: CliRunner, next_command: str
) -> None:
    job, encoders = _start(home, long_master, "killed", tmp_path / "run")
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL
    assert wait_gone(encoders) == set(), "ffmpeg dies with the process that ran it"
    row = job_row(home, "killed")
    assert row is not None and row["status"] == "running"  # nobody could record anything yet

    if next_command == "status":
        shown = cli("status", "killed", "--json")
        assert shown.returncode == 2, shown.stderr
        assert (shown.document["status"], shown.document["error"]["code"]) == ("failed", "interrupted")
    elif next_command == "failed":
        listed = cli("failed", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(j["asset_id"], j["code"]) for j in json.loads(listed.stdout)["jobs"]] == [("killed", "interrupted")]
    else:
        other = cli("process", str(masters["audio"]), "--asset-id", "next", "--json")
        assert other.returncode == 0, other.stderr
        assert list((home / "work").glob(f"job-{job.pid}-*")) == [], "the dead job's scratch is swept"

    row = job_row(home, "killed")
    assert row is not None
    assert (row["status"], row["error_code"], row["claimed_by"]) == ("failed", "interrupted", None)
    assert f"pid {job.pid}" in str(row["error_message"])
    assert json.loads(str(row["document"]))["error"]["code"] == "interrupted"


def test_a_running_process_keeps_its_job(long_master: Path, home: Path, tmp_path: Path, cli: CliRunner) -> None:
    """The rule ends only jobs whose process is gone: ``status`` of a live job shows it running."""
    job, _ = _start(home, long_master, "alive", tmp_path / "run")
    try:
        shown = cli("status", "alive", "--json")
        assert shown.returncode == 0, shown.stderr
        assert (shown.document["status"], shown.document["stage"]) == ("running", "transcode")
    finally:
        os.kill(job.pid, signal.SIGTERM)
        job.wait()
