"""The tasks' door against a real worker on a real broker: what another service may send by name, and what not.

A bare Celery client (the catalog service's view) sends each message to a real ``mediaworker worker`` on Redis,
with the real S3 server (``rclone serve s3``) and PostgreSQL. A refused message must fail its job once —
``invalid_request``, a short message, never retried — before the worker reads a byte: the kernel's inotify
(``tests/fswatch.py``) watches the canary files a refused source names and the worker's scratch folder, and
sees nothing. Each test would fail on the worker before the door: it read local files and other buckets,
stored whatever it was sent in the catalog, and retried a malformed message as a database outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import json
from pathlib import Path
import subprocess
from typing import Any
import uuid

from celery import Celery
import pytest
from sqlalchemy import func, select

from pipelines.catalog import Job
from pipelines.requests import REFUSED_ASSET_ID
from tests.conftest import MEDIAWORKER, make_media
from tests.distributed import System, system_fixture
from tests.fswatch import FileWatch
from tests.workerproc import WorkerProcess, wait_for

MAX_MESSAGE = 300
MAX_SOURCE = 200


@dataclass
class Door:
    system: System
    worker: WorkerProcess
    client: Celery
    """A client that knows nothing of this project, with the result backend to read what a task answered."""
    scratch: Path
    """The worker's scratch folder: every job and clip makes its workspace in it."""
    s3_root: Path

    def process(self, *, args: tuple[Any, ...] = (), task_id: str | None = None, **kwargs: Any) -> str:
        return str(self.client.send_task("mediaworker.process_asset", args=args, kwargs=kwargs, queue="transcode",
                                         task_id=task_id).id)

    def match(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        sent = self.client.send_task("mediaworker.match_clip", kwargs=kwargs, queue="analysis")
        return sent.id, sent.get(timeout=180)

    def failed(self, job_id: str) -> Job:
        return self.system.wait_status(job_id, {"failed", "succeeded", "cancelled"}, 120, self.worker)

    def ran_once(self, task_id: str) -> None:
        """The task ran to its end on its first delivery and was never retried (Celery's own log lines)."""
        wait_for(lambda: f"[{task_id}] succeeded in" in self.worker.log.read_text(errors="replace"), 120,
                 what=f"task {task_id} to end", on_timeout=self.worker.tail)
        log = self.worker.log.read_text(errors="replace")
        assert log.count(f"[{task_id}] received") == 1, self.worker.tail()
        assert f"[{task_id}] retry" not in log

    def assert_refused(self, job_id: str, *, asset_id: str) -> Job:
        job = self.failed(job_id)
        assert (job.status, job.error_code) == ("failed", "invalid_request"), (job.error_code, job.error_message)
        assert job.error_message and len(job.error_message) <= MAX_MESSAGE
        assert len(job.source_uri) <= MAX_SOURCE and job.asset_id == asset_id
        assert job.attempts == 0  # never claimed, so never run: nothing fetched
        assert job.document is not None and job.document["error"]["code"] == "invalid_request"
        self.ran_once(job_id)
        return job


@pytest.fixture(scope="module", params=["redis"])
def door(request: pytest.FixtureRequest, postgres_url: str, s3_server: Any,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    """One worker for the module, reading sources from ``masters`` and ``clips`` (``MEDIAWORKER_SOURCE_BUCKETS``)."""
    client = s3_server.client()
    for bucket in ("clips", "other"):
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    for system in system_fixture(request, postgres_url, s3_server, tmp_path_factory.mktemp("door")):
        scratch = Path(system.env["MEDIAWORKER_HOME"]) / "work"
        scratch.mkdir(parents=True)
        with system.worker("door", MEDIAWORKER_SOURCE_BUCKETS="clips") as worker:
            yield Door(system, worker, Celery("catalog-service", broker=system.broker_url,
                                              backend=system.broker_url), scratch, s3_server.root)


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("tone") / "file.flac", "-f", "lavfi", "-i",
                      "sine=frequency=500:sample_rate=44100:duration=4", "-ac", "2")


def _asset() -> str:
    return f"door-{uuid.uuid4().hex[:10]}"


def test_a_local_path_is_refused_before_a_byte_is_read(door: Door, tone: Path) -> None:
    """``source="/tmp/some/file.flac"`` used to succeed and publish a ladder."""
    asset_id = _asset()
    with FileWatch(tone, door.scratch) as watch:
        job_id = door.process(asset_id=asset_id, source=str(tone))
        job = door.assert_refused(job_id, asset_id=asset_id)
        assert watch.events() == []
    assert job.source_uri == str(tone) and "local paths" in (job.error_message or "")
    assert door.system.output_keys(asset_id) == []


def test_the_workers_own_environment_is_never_copied_into_scratch(door: Door) -> None:
    """``source="/proc/self/environ"`` used to be copied into the job's workspace (the worker's secrets with it)
    before the probe failed it ``not_media``."""
    asset_id = _asset()
    with FileWatch(door.scratch) as watch:
        job_id = door.process(asset_id=asset_id, source="/proc/self/environ")
        door.assert_refused(job_id, asset_id=asset_id)
        assert watch.events() == []  # no workspace was made, so nothing was copied into one


def test_match_clip_reads_no_local_file(door: Door, tmp_path: Path) -> None:
    """``match_clip(source="/etc/passwd")`` used to read and probe the file; here a canary stands for it."""
    canary = tmp_path / "passwd"
    canary.write_text("root:x:0:0:canary-" + uuid.uuid4().hex + "\n")
    with FileWatch(canary, door.scratch) as watch:
        task_id, answer = door.match(source=str(canary))
        assert watch.events() == []
    assert answer["matches"] == [] and answer["error"]["code"] == "invalid_request"
    assert len(answer["error"]["message"]) <= MAX_MESSAGE
    door.ran_once(task_id)


def test_only_the_allowed_buckets_are_read(door: Door, tone: Path, tmp_path: Path) -> None:
    """``s3://other/x.ogg`` used to be processed from a bucket that is not the masters bucket. ``clips``, which
    ``MEDIAWORKER_SOURCE_BUCKETS`` lists, is read — and the watch sees that read, so it would see the other."""
    client = door.system.s3.client()
    clip = make_media(tmp_path / "x.ogg", "-i", str(tone), "-c:a", "libvorbis")
    client.fput_object("other", "x.ogg", str(clip))
    client.fput_object("clips", "x.ogg", str(clip))
    for bucket in ("other", "clips"):
        client.stat_object(bucket, "x.ogg")  # the upload is settled before the watch begins
    other, listed = door.s3_root / "other" / "x.ogg", door.s3_root / "clips" / "x.ogg"
    asset_id = _asset()
    with FileWatch(other, door.scratch) as watch:
        job_id = door.process(asset_id=asset_id, source="s3://other/x.ogg")
        job = door.assert_refused(job_id, asset_id=asset_id)
        _task, refused = door.match(source="s3://other/x.ogg")
        assert watch.events() == []
    assert "'other'" in (job.error_message or "") and refused["error"]["code"] == "invalid_request"
    assert door.system.output_keys(asset_id) == []
    with FileWatch(listed, door.scratch) as watch:
        task_id, answer = door.match(source="s3://clips/x.ogg")
        seen = watch.events()
    assert "error" not in answer and isinstance(answer["matches"], list), answer
    assert (listed, "open") in seen and any(what.startswith("created clip-") for _, what in seen), seen
    door.ran_once(task_id)


def test_malformed_arguments_fail_the_job_once(door: Door) -> None:
    """Each used to become a ``CatalogError`` retried as a database outage, a ``{s3://…}`` source left
    ``running``, or a ``TypeError`` before the task's first line that left no job row at all."""
    asset = {name: _asset() for name in ("number", "version", "list", "unknown", "long_id", "positional")}
    source = "s3://masters/uploads/door.flac"
    sent = {
        "number": (door.process(asset_id=asset["number"], source=123), asset["number"]),
        "version": (door.process(asset_id=asset["version"], source=source, version_id={"x": [1]}), asset["version"]),
        "list": (door.process(asset_id=asset["list"], source=[source]), asset["list"]),
        "unknown": (door.process(asset_id=asset["unknown"], sorce=source), asset["unknown"]),
        "long_id": (door.process(asset_id="x" * 10_000, source=source), REFUSED_ASSET_ID),
        "positional": (door.process(args=(asset["positional"], source)), REFUSED_ASSET_ID),
    }
    jobs = {name: door.assert_refused(job_id, asset_id=asset_id) for name, (job_id, asset_id) in sent.items()}
    assert "list" in (jobs["list"].error_message or "") and jobs["list"].source_uri != "{" + source + "}"
    assert "'sorce'" in (jobs["unknown"].error_message or "")
    assert "x" * 100 not in (jobs["long_id"].error_message or "")
    assert "keyword arguments only" in (jobs["positional"].error_message or "")


def test_a_20_mb_source_is_neither_stored_nor_printed(door: Door) -> None:
    """It used to be written to the catalog whole, and ``mediaworker failed --json`` printed 20 MB."""
    asset_id = _asset()
    job_id = door.process(asset_id=asset_id, source="s3://masters/" + "k" * (20 << 20))
    job = door.assert_refused(job_id, asset_id=asset_id)
    assert "characters long" in (job.error_message or "")
    listed = subprocess.run([MEDIAWORKER, "failed", "--json"], capture_output=True, text=True,
                            env=door.system.env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout) < 50 * 2048, len(listed.stdout)  # 50 rows at most, each short
    rows = {row["job_id"]: row for row in json.loads(listed.stdout)["jobs"]}
    assert rows[job_id]["code"] == "invalid_request" and len(rows[job_id]["source"]) <= MAX_SOURCE


def test_a_task_id_no_job_row_can_hold_is_refused_not_retried(door: Door) -> None:
    """A 100-character task id used to fail the catalog's insert and be retried as a database outage."""
    task_id = "t" * 100
    sent = door.client.send_task("mediaworker.process_asset", queue="transcode", task_id=task_id,
                                 kwargs={"asset_id": _asset(), "source": "s3://masters/uploads/door.flac"})
    answer = sent.get(timeout=120)
    assert answer["status"] == "failed" and answer["error"]["code"] == "invalid_request", answer
    door.ran_once(task_id)
    assert door.system.job(task_id) is None


def test_a_missing_object_is_final_not_transient(door: Door) -> None:
    """``match_clip`` of a missing object used to be retried as a store failure."""
    missing = f"s3://masters/missing-{uuid.uuid4().hex}.wav"
    task_id, answer = door.match(source=missing)
    assert answer["matches"] == [] and answer["error"]["code"] == "source_not_found", answer
    door.ran_once(task_id)
    asset_id = _asset()
    job_id = door.process(asset_id=asset_id, source=missing)
    job = door.failed(job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "source_not_found", 1)
    door.ran_once(job_id)


def test_submit_refuses_a_source_outside_the_allowed_buckets(door: Door) -> None:
    """``mediaworker submit s3://other/x.ogg`` used to enqueue it; now it is a usage error, and nothing is made."""
    for source in ("s3://other/x.ogg", "s3://masters/uploads/../../x.ogg"):
        asset_id = _asset()
        submitted = subprocess.run([MEDIAWORKER, "submit", source, "--asset-id", asset_id], capture_output=True,
                                   text=True, env=door.system.env, timeout=60)
        assert submitted.returncode == 1 and "cannot submit this source" in submitted.stderr, submitted.stderr
        assert submitted.stdout == ""
        with door.system.catalog.session() as session:
            assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id == asset_id)) == 0


def test_the_watch_sees_another_process_read_a_file(tmp_path: Path) -> None:
    """The check the tests above rely on can fail: a read by another process is seen."""
    canary = tmp_path / "canary"
    canary.write_text("x")
    with FileWatch(canary, tmp_path) as watch:
        subprocess.run(["cat", str(canary)], check=True, capture_output=True)
        (tmp_path / "new").mkdir()
        seen = watch.events()
    assert (canary, "open") in seen and (canary, "read") in seen and (tmp_path, "created new") in seen

