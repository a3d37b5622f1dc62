"""The distributed mode against real parts: Redis and RabbitMQ brokers, a real S3 server, PostgreSQL, and
``mediaworker worker`` processes — including workers killed mid-transcode and jobs cancelled while running."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import uuid

from celery import Celery
import pytest
from sqlalchemy import func, select

from pipelines.catalog import Job, Rendition
from tests.conftest import MEDIAWORKER, make_media
from tests.distributed import System
from tests.workerproc import processes_mentioning, wait_for


def _short_master(folder: Path, n: int) -> Path:
    return make_media(folder / f"short-{n}.flac", "-f", "lavfi", "-i",
                      f"sine=frequency={200 + n * 10}:sample_rate=44100:duration=2", "-ac", "2")


def test_a_job_sent_by_name_from_a_bare_client_completes(system: System, masters: dict[str, Path]) -> None:
    """The catalog service's view: ``send_task`` by name; the ladder lands in S3 and the catalog in PostgreSQL."""
    source = system.upload(masters["video"], f"{uuid.uuid4()}/video.mp4")
    asset_id = f"dist-{uuid.uuid4().hex[:8]}"
    with system.worker("w1") as worker:
        client = system.bare_client()
        sent = client.send_task("mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source},
                                queue="transcode")
        job = system.wait_status(sent.id, {"succeeded", "failed"}, 120, worker)
        # Sent to Celery's default queue by a client that knows no routing at all: forwarded, then run.
        default = client.send_task("mediaworker.process_asset", kwargs={"asset_id": asset_id + "-b", "source": source})
        second = system.wait_status(default.id, {"succeeded", "failed"}, 120, worker)
    assert job.status == "succeeded", job.error_message
    assert second.status == "succeeded", second.error_message
    assert job.document is not None
    master = job.document["hls"]["master"]
    assert master.startswith(f"s3://media-out/hls/{asset_id}/") and master.endswith("/master.m3u8")
    keys = system.output_keys(asset_id)
    assert {k.rsplit("/", 2)[1] for k in keys if k.endswith("index.m3u8")} == {"540p", "360p", "234p", "audio-128k"}
    stat = system.s3.client().stat_object("media-out", master.removeprefix("s3://media-out/"))
    assert stat.content_type == "application/vnd.apple.mpegurl"
    with system.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Rendition).where(Rendition.asset_id == asset_id)) == 4


def test_submit_and_status_through_the_command_line(system: System, masters: dict[str, Path]) -> None:
    env = system.env
    with system.worker("w1") as worker:
        submitted = subprocess.run([MEDIAWORKER, "submit", str(masters["audio"]), "--asset-id", "cli-submit"],
                                   capture_output=True, text=True, env=env, timeout=60)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        system.wait_status(job_id, {"succeeded"}, 120, worker)
    status = subprocess.run([MEDIAWORKER, "status", job_id], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0 and "succeeded" in status.stdout and "audio-256k" in status.stdout


def test_killing_the_pool_process_mid_transcode_runs_the_job_exactly_once(
    system: System, long_master: Path
) -> None:
    source = system.upload(long_master, f"{uuid.uuid4()}/long.mp4")
    asset_id = f"kill-{uuid.uuid4().hex[:8]}"
    with system.worker("w1") as worker:
        sent = system.bare_client().send_task(
            "mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source}, queue="transcode"
        )
        wait_for(lambda: (j := system.job(sent.id)) is not None and j.stage == "transcode" and j.percent > 20, 600,
                 what="the transcode to be under way", on_timeout=worker.tail)
        home = system.env["MEDIAWORKER_HOME"]
        wait_for(lambda: processes_mentioning(home), 30, what="the job's ffmpeg", on_timeout=worker.tail)
        for pid in worker.pool_pids():
            os.kill(pid, 9)
        job = system.wait_status(sent.id, {"succeeded", "failed"}, 600, worker)
        assert processes_mentioning(f"{home}/work") == []  # no orphan ffmpeg from the killed run
    assert job.status == "succeeded", job.error_message
    assert (job.attempts, job.lost_runs) == (2, 1)
    with system.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id == asset_id)) == 1
        assert session.scalar(select(func.count()).select_from(Rendition).where(Rendition.asset_id == asset_id)) == 3
    assert job.document is not None
    keys = system.output_keys(asset_id)
    prefix = job.document["hls"]["prefix"] + "/"
    assert keys and all(key.startswith(prefix) for key in keys), keys  # one ladder, nothing half-published beside it


def test_a_cancelled_job_stops_and_leaves_no_output(system: System, long_master: Path) -> None:
    source = system.upload(long_master, f"{uuid.uuid4()}/long.mp4")
    asset_id = f"cancel-{uuid.uuid4().hex[:8]}"
    # A slow preset keeps the transcode running well past the cancel, however busy the machine is.
    with system.worker("w1", MEDIAWORKER_X264_PRESET="slower") as worker:
        sent = system.bare_client().send_task(
            "mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source}, queue="transcode"
        )
        wait_for(lambda: (j := system.job(sent.id)) is not None and j.stage == "transcode", 600,
                 what="the transcode to start", on_timeout=worker.tail)
        if system.broker_url.startswith("redis://"):
            # Celery's own view of a running job, through the result backend: PROGRESS with stage and percent.
            result = Celery(broker=system.broker_url, backend=system.broker_url).AsyncResult(sent.id)
            wait_for(lambda: result.state == "PROGRESS" and result.info.get("stage") == "transcode", 30,
                     what="a PROGRESS state", on_timeout=lambda: f"{result.state} {result.info}")
            assert 0 <= result.info["percent"] <= 100 and result.info["asset_id"] == asset_id
        cancel = subprocess.run([MEDIAWORKER, "cancel", sent.id], capture_output=True, text=True, env=system.env,
                                timeout=60)
        assert cancel.returncode == 0 and "running" in cancel.stdout, cancel.stderr
        job = system.wait_status(sent.id, {"cancelled", "succeeded", "failed"}, 180, worker)
        assert processes_mentioning(f"{system.env['MEDIAWORKER_HOME']}/work") == []
    assert job.status == "cancelled"
    assert system.output_keys(asset_id) == []


def test_fifty_jobs_on_two_workers_each_complete_exactly_once(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("fifty")
    client = system.bare_client()
    runs: list[tuple[str, str]] = []
    with system.worker("w1") as first, system.worker("w2") as second:
        for n in range(50):
            source = system.upload(_short_master(folder, n), f"fifty/{uuid.uuid4()}.flac")
            asset_id = f"fifty-{n:02d}-{uuid.uuid4().hex[:6]}"
            sent = client.send_task("mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source},
                                    queue="transcode")
            runs.append((sent.id, asset_id))
        for job_id, _ in runs:
            system.wait_status(job_id, {"succeeded", "failed"}, 300, first, second)
        def done_by() -> list[int]:  # Celery logs a task's end just after its job is recorded: wait for the lines
            return [w.log.read_text().count("succeeded in") for w in (first, second)]

        wait_for(lambda: sum(done_by()) >= 50, 30, what="every task's end in the logs", on_timeout=lambda: str(done_by()))
    jobs = [system.job(job_id) for job_id, _ in runs]
    assert [j.status for j in jobs if j is not None] == ["succeeded"] * 50
    assert {j.attempts for j in jobs if j is not None} == {1}
    holders = {(j.document or {}).get("job_id") for j in jobs if j is not None}
    assert len(holders) == 50
    with system.catalog.session() as session:
        asset_ids = [asset for _, asset in runs]
        assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id.in_(asset_ids))) == 50
        rows = session.scalar(select(func.count()).select_from(Rendition).where(Rendition.asset_id.in_(asset_ids)))
        assert rows == 150  # three AAC rungs per asset, none doubled
    counts = done_by()
    assert sum(counts) == 50 and min(counts) > 0, counts  # each job ran once, and both workers took a share


@pytest.mark.parametrize("system", ["rabbitmq"], indirect=True)
def test_an_upload_notification_becomes_a_job(system: System, masters: dict[str, Path]) -> None:
    """MinIO's AMQP notification (its documented event JSON) for a new master starts its job, once, even when
    the notification arrives twice; a tagging event for the same object starts nothing."""
    from kombu import Connection, Exchange, Producer

    from tests.test_events import _event

    key = f"uploads/{uuid.uuid4().hex}/tone.flac"
    system.upload(masters["audio"], key)
    etag = system.s3.client().stat_object("masters", key).etag  # the job checks it is processing this upload
    put = _event(s3__object__key=key.replace("/", "%2F"), s3__object__eTag=etag,
                 s3__object__userMetadata={"X-Amz-Meta-Asset-Id": f"evt-{uuid.uuid4().hex[:8]}"})
    tagging = _event(eventName="s3:ObjectCreated:PutTagging", s3__object__key=key.replace("/", "%2F"))
    asset_id = put["Records"][0]["s3"]["object"]["userMetadata"]["X-Amz-Meta-Asset-Id"]
    with system.worker("w1") as worker:
        with Connection(system.broker_url) as connection:
            producer = Producer(connection.channel(), exchange=Exchange("minio-events", type="direct", durable=True))
            for event in (put, put, tagging):
                producer.publish(json.dumps(event), routing_key="masters", content_type="application/json",
                                 content_encoding="utf-8", serializer=None)

        def jobs() -> list[Job]:
            with system.catalog.session() as session:
                return list(session.scalars(select(Job).where(Job.asset_id == asset_id)))

        wait_for(lambda: [j for j in jobs() if j.status == "succeeded"], 120, what="the notified job",
                 on_timeout=worker.tail)
        assert "not a new object" in worker.tail()
    (job,) = jobs()
    assert job.source_uri == f"s3://masters/{key}" and job.attempts == 1
    assert system.output_keys(asset_id)


@pytest.mark.parametrize("system", ["redis"], indirect=True)
def test_match_clip_by_task_name_returns_the_match_document(system: System, tmp_path: Path) -> None:
    """The rights team's service asks a worker by name; a track processed by another task is found."""
    from tests.conftest import FIXTURES

    track = FIXTURES / "music_hyperrogue_desert_30s.ogg"
    clip = make_media(tmp_path / "clip.wav", "-ss", "10", "-t", "8", "-i", str(track))
    asset_id = f"rights-{uuid.uuid4().hex[:8]}"
    client = Celery(broker=system.broker_url, backend=system.broker_url)
    with system.worker("w1") as worker:
        sent = client.send_task("mediaworker.process_asset", queue="transcode",
                                kwargs={"asset_id": asset_id, "source": system.upload(track, f"{asset_id}.ogg")})
        system.wait_status(sent.id, {"succeeded"}, 600, worker)
        asked = client.send_task("mediaworker.match_clip", queue="analysis",
                                 kwargs={"source": system.upload(clip, f"clips/{asset_id}.wav")})
        document = asked.get(timeout=300)
    best = document["matches"][0]
    assert best["asset_id"] == asset_id
    assert best["asset_offset_s"] - best["query_offset_s"] == pytest.approx(10.0, abs=0.5)
