"""Faults in the distributed mode: a worker killed outright, the S3 server down, PostgreSQL restarted — each
in the middle of a job, against the real parts (``tests.distributed.System``).

Every test asserts that nothing was lost and nothing doubled: one job row, which ends ``succeeded`` (or
``failed`` with a reason where that is the documented outcome) after exactly one successful run; the asset's
renditions not doubled; its published ladder complete and alone under the asset's prefix; no ffmpeg left
running and no scratch folder left behind.

A row trigger, installed in the test database for the duration of each test (``history``), records every
change of a job's status, holder, attempts or end — so "exactly one successful run" is read from what the
database saw, not inferred from the final row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
import gc
import http.client
import os
from pathlib import Path
import re
import shutil
import socket
import subprocess
import time
from typing import Any
import uuid

from celery import Celery
import pytest
import redis
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from pipelines.catalog import Job, Rendition
from pipelines.errors import CatalogError
from tests.distributed import System
from tests.s3server import S3Server, rclone_binary
from tests.workerproc import WorkerProcess, processes_mentioning, wait_for

ON_REDIS = pytest.mark.parametrize("system", ["redis"], indirect=True)
ON_RABBITMQ = pytest.mark.parametrize("system", ["rabbitmq"], indirect=True)

# The rungs of the long master (640x360): 360p and 234p video, one AAC group.
LONG_MASTER_RUNGS = {"360p", "234p", "audio-128k"}

History = Callable[[str], list[dict[str, Any]]]



# --- a broker of our own ---------------------------------------------------------------------------------------

FAULTS_REDIS_DB = 11
FAULTS_VHOST = "mediaworker-faults"


def _private_vhost() -> str | None:
    """A RabbitMQ virtual host for these tests alone, made with ``rabbitmqctl`` where this machine runs the
    server (``.ci/run`` does); ``None`` where it cannot be made (then the default one is used)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return None
    try:
        subprocess.run([rabbitmqctl, "add_vhost", FAULTS_VHOST], capture_output=True, timeout=60)  # exists: fine
        permitted = subprocess.run([rabbitmqctl, "set_permissions", "-p", FAULTS_VHOST, "guest", ".*", ".*", ".*"],
                                   capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return FAULTS_VHOST if permitted.returncode == 0 else None


@pytest.fixture
def isolated(system: System) -> System:
    """``system`` on a Redis database / RabbitMQ virtual host of its own.

    Faults make messages wait (a redelivery, a retry's countdown): on the shared database and virtual host, a
    worker of another test session running at the same time on this machine could take them, or that
    session's set-up could flush them. Everything else — catalog, S3 server, home, logs — is ``system``'s."""
    url = make_url(system.broker_url)
    if url.drivername.startswith("redis"):
        broker = f"redis://{url.host}:{url.port}/{FAULTS_REDIS_DB}"
        redis.Redis(host=url.host or "127.0.0.1", port=url.port or 6379, db=FAULTS_REDIS_DB).flushdb()
    else:
        vhost = _private_vhost()
        if vhost is None:
            return system
        broker = f"{system.broker_url.rstrip('/')}/{vhost}"
        with Celery(broker=broker).connection_for_write() as connection:
            for queue in ("transcode", "celery"):
                try:
                    connection.default_channel.queue_purge(queue)
                except Exception:  # noqa: BLE001 - a queue that does not exist yet has nothing to purge
                    connection.close()
                    connection.connect()
    return replace(system, broker_url=broker, env={**system.env, "MEDIAWORKER_BROKER_URL": broker})


# --- what the database saw ------------------------------------------------------------------------------------

_HISTORY_DDL = """
CREATE TABLE faults_job_history (
    seq bigserial PRIMARY KEY, job_id text, status text, claimed_by text, attempts int, lost_runs int,
    error_code text, finished_at timestamp, at timestamptz DEFAULT clock_timestamp()
);
CREATE FUNCTION faults_record_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status OR NEW.claimed_by IS DISTINCT FROM OLD.claimed_by
       OR NEW.attempts IS DISTINCT FROM OLD.attempts OR NEW.finished_at IS DISTINCT FROM OLD.finished_at THEN
        INSERT INTO faults_job_history (job_id, status, claimed_by, attempts, lost_runs, error_code, finished_at)
        VALUES (NEW.id, NEW.status, NEW.claimed_by, NEW.attempts, NEW.lost_runs, NEW.error_code, NEW.finished_at);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER faults_job_history AFTER INSERT OR UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION faults_record_job();
"""
_HISTORY_DROP = """
DROP TRIGGER IF EXISTS faults_job_history ON jobs;
DROP FUNCTION IF EXISTS faults_record_job();
DROP TABLE IF EXISTS faults_job_history;
"""


@pytest.fixture
def history(system: System) -> Iterator[History]:
    """``history(job_id)``: every row state the job passed through (status, holder, attempts…), in order."""
    with system.catalog.engine.begin() as connection:
        connection.execute(text(_HISTORY_DROP))
        connection.execute(text(_HISTORY_DDL))

    def read(job_id: str) -> list[dict[str, Any]]:
        with system.catalog.engine.connect() as connection:
            rows = connection.execute(text("SELECT status, claimed_by, attempts, lost_runs, error_code, finished_at "
                                           "FROM faults_job_history WHERE job_id = :id ORDER BY seq"), {"id": job_id})
            return [dict(row._mapping) for row in rows]

    try:
        yield read
    finally:
        _until_database_answers()  # a test that restarted PostgreSQL and failed: let the server come back first
        with system.catalog.engine.begin() as connection:
            connection.execute(text(_HISTORY_DROP))


# --- checks shared by every test -------------------------------------------------------------------------------


def _send(system: System, path: Path, prefix: str) -> tuple[str, str]:
    """Upload ``path`` and enqueue its job from a bare client; return ``(job_id, asset_id)``."""
    source = system.upload(path, f"{uuid.uuid4()}/{path.name}")
    asset_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sent = system.bare_client().send_task("mediaworker.process_asset",
                                          kwargs={"asset_id": asset_id, "source": source}, queue="transcode")
    return sent.id, asset_id


def _wait_stage(system: System, job_id: str, stage: str, min_percent: float, *workers: WorkerProcess) -> Job:
    def check() -> Job | None:
        job = system.job(job_id)
        return job if job is not None and job.stage == stage and job.percent >= min_percent else None

    found = wait_for(check, 600, what=f"job {job_id} to be in {stage} past {min_percent}%",
                     on_timeout=lambda: "\n".join(w.tail() for w in workers))
    assert isinstance(found, Job)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def _runs_logged(job_id: str, *workers: WorkerProcess) -> int:
    """How many times a worker logged the task ending normally (Celery's ``… succeeded in``)."""
    pattern = re.compile(rf"Task mediaworker\.process_asset\[{re.escape(job_id)}\] succeeded in")
    return sum(len(pattern.findall(w.log.read_text(errors="replace"))) for w in workers)


def _assert_published_once(system: System, job: Job, rungs: set[str]) -> None:
    """One job row for the asset, succeeded; its renditions not doubled; its ladder complete and alone."""
    assert job.status == "succeeded", (job.error_code, job.error_message)
    asset_id = job.asset_id
    with system.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id == asset_id)) == 1
        renditions = list(session.scalars(select(Rendition).where(Rendition.asset_id == asset_id)))
    assert sorted(r.name for r in renditions) == sorted(rungs)  # one row per rung: none doubled, none missing
    assert {r.job_id for r in renditions} == {job.id}
    assert job.document is not None and job.document["status"] == "succeeded"
    prefix = job.document["hls"]["prefix"]
    assert {r["name"] for r in job.document["hls"]["renditions"]} == rungs
    # Every object the ladder needs is there — master, each rendition's playlist, its init segment and every
    # segment it lists — and nothing else is under the asset's prefix (no half-published ladder beside it).
    client = system.s3.client()

    def read(key: str) -> str:
        response = client.get_object("media-out", key)
        try:
            return bytes(response.read()).decode()
        finally:
            response.close()
            response.release_conn()

    master = read(f"{prefix}/master.m3u8")
    expected = {f"{prefix}/master.m3u8"}
    playlists = re.findall(r"^([^#\s][^\s]*index\.m3u8)$", master, re.M) + re.findall(r'URI="([^"]+)"', master)
    assert {p.split("/")[0] for p in playlists} == rungs, master
    for playlist in playlists:
        folder = playlist.rsplit("/", 1)[0]
        body = read(f"{prefix}/{playlist}")
        assert "#EXT-X-ENDLIST" in body
        parts = re.findall(r"^([^#\s]\S*)$", body, re.M) + re.findall(r'#EXT-X-MAP:URI="([^"]+)"', body)
        assert len(parts) >= 2, body  # an init segment and at least one media segment
        expected |= {f"{prefix}/{playlist}"} | {f"{prefix}/{folder}/{part}" for part in parts}
    expected |= {f"{prefix}/{uri.rsplit('/', 1)[1]}" for uri in _linked_pictures_and_report(job.document)}
    assert set(system.output_keys(asset_id)) == expected


def _linked_pictures_and_report(document: dict[str, Any]) -> list[str]:
    """The URIs of the files published beside the ladder that the job document links: poster, sprite, cover…"""
    video, metadata, quality = document.get("video") or {}, document.get("metadata") or {}, document["quality"] or {}
    linked = [quality.get("report"), metadata.get("cover_art"), video.get("thumbnails_vtt"),
              (video.get("poster") or {}).get("uri"), (video.get("sprite") or {}).get("uri")]
    assert all(uri is None or isinstance(uri, str) for uri in linked), linked
    return [uri for uri in linked if uri is not None]


def _assert_no_leftovers(system: System) -> None:
    """No ffmpeg (or anything else) running on the home's scratch space, and no scratch folder left, not even a
    killed worker's (the next run's sweep removes it: see ``test_the_scratch_sweep_treats_a_zombie_as_dead``).

    The worker records the job's outcome first and removes its scratch folder just after, so the check allows
    that moment (up to 60 s, for a busy machine) before it calls a folder left behind.
    """
    work = Path(system.env["MEDIAWORKER_HOME"]) / "work"

    def leftovers() -> str:
        folders = [p.name for p in work.glob("job-*")]
        processes = processes_mentioning(str(work))
        return f"scratch folders {sorted(folders)}, processes {processes}" if folders or processes else ""

    wait_for(lambda: not leftovers(), 60, what="the job's scratch space to be cleared", on_timeout=leftovers)


def _successes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["status"] == "succeeded"]


# --- 1. kill -9 of a worker's main process ---------------------------------------------------------------------


@ON_RABBITMQ
def test_kill_9_of_the_worker_main_process_mid_transcode_hands_the_job_to_the_other_worker(
    isolated: System, long_master: Path, history: History
) -> None:
    """The whole worker (main process, not only its pool process) is SIGKILLed mid-transcode while a second
    worker runs. Its pool process and ffmpeg die with it (``PR_SET_PDEATHSIG``); the broker puts the unacked
    message back; the second worker finds the holder's process gone, takes the job over and completes it.

    On RabbitMQ, because a dead connection requeues its unacked message at once. On Redis the message would
    come back only after the transport's ``visibility_timeout``, which the settings put at the task's hard time
    limit plus 600 s — at least ten minutes whatever ``MEDIAWORKER_TASK_TIME_LIMIT_S`` says, far past this test
    (see ``test_kill_9_on_redis_the_job_is_taken_over_after_its_lease``)."""
    system = isolated
    home = system.env["MEDIAWORKER_HOME"]
    with system.worker("w1") as first, system.worker("w2") as second:
        job_id, _ = _send(system, long_master, "kill9")
        job = _wait_stage(system, job_id, "transcode", 10, first, second)
        holder_pid = int((job.claimed_by or "").rsplit(":", 1)[-1])
        victim, survivor = (first, second) if holder_pid in first.pool_pids() else (second, first)
        assert holder_pid in victim.pool_pids(), (job.claimed_by, first.pool_pids(), second.pool_pids())
        doomed = victim.pool_pids() + processes_mentioning(f"{home}/work")
        assert len(doomed) >= 2, doomed  # the pool process and the job's ffmpeg

        victim.kill()  # SIGKILL to the worker's main process only
        wait_for(lambda: not any(_alive(pid) for pid in doomed), 60,
                 what=f"the killed worker's pool process and ffmpeg {doomed} to die with it")

        done = system.wait_status(job_id, {"succeeded", "failed", "cancelled"}, 600, first, second)
        _assert_no_leftovers(system)
    rows = history(job_id)
    assert (done.attempts, done.lost_runs) == (2, 1), rows
    # The database saw the job run by the killed worker's pool process, then by the survivor's, then succeed once.
    holders = [row["claimed_by"] for row in rows if row["status"] == "running"]
    assert holders == [job.claimed_by, done.claimed_by] and holders[0] != holders[1], rows
    assert len(_successes(rows)) == 1, rows
    assert _runs_logged(job_id, first, second) == _runs_logged(job_id, survivor) == 1
    _assert_published_once(system, done, LONG_MASTER_RUNGS)


@ON_REDIS
def test_kill_9_on_redis_the_job_is_taken_over_after_its_lease(
    isolated: System, long_master: Path, history: History
) -> None:
    """The README: ``MEDIAWORKER_LEASE_S`` is the time after which "a dead worker's job is taken over". On Redis,
    with the worker's main process killed (a crashed machine, the OOM killer, ``docker kill``), the broker
    redelivers the message only after ``visibility_timeout`` = task time limit + 600 s (11 min here even with
    the limit at 60 s); the lease sweeper of the surviving worker must enqueue the job again once its lease
    runs out. This waits three leases past the kill, and the time of a whole run, for that takeover."""
    system = isolated
    limit = {"MEDIAWORKER_TASK_TIME_LIMIT_S": "60"}  # the visibility timeout becomes 660 s
    with system.worker("w1", **limit) as first, system.worker("w2", **limit) as second:
        job_id, _ = _send(system, long_master, "kill9r")
        job = _wait_stage(system, job_id, "transcode", 10, first, second)
        holder_pid = int((job.claimed_by or "").rsplit(":", 1)[-1])
        (first if holder_pid in first.pool_pids() else second).kill()
        lease_s = float(system.env["MEDIAWORKER_LEASE_S"])
        try:
            # The second worker runs the job from the start (ladder, scenes, VMAF, report): minutes on a busy
            # machine. The wait stays well under the 660 s after which the broker's redelivery could do it instead.
            whole_run_s = 450
            done = system.wait_status(job_id, {"succeeded", "failed", "cancelled"}, 3 * lease_s + whole_run_s,
                                      first, second)
        except AssertionError:
            raise AssertionError(f"not taken over: {vars(system.job(job_id))}\nhistory: {history(job_id)}") from None
    assert done.status == "succeeded"


# --- 2. the S3 server down for a while -------------------------------------------------------------------------


class RestartableS3Server(S3Server):
    """An :class:`S3Server` that can crash and come back on the same port, folder and keys: an outage."""

    def crash(self) -> None:
        """SIGKILL rclone: from now on every connection is refused."""
        proc, self._proc = self._proc, None
        assert proc is not None, "the server is not running"
        proc.kill()
        proc.wait(timeout=10)

    def restart(self, timeout: float = 60) -> None:
        """Serve the same folder on the same port again (objects stay; rclone's in-memory metadata does not)."""
        assert self._proc is None and self.port, "crash() it first"
        cmd = [rclone_binary(), "serve", "s3", "--config", "", "--addr", self.endpoint,
               "--auth-key", f"{self.access_key},{self.secret_key}", str(self.root)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        proc = self._proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"rclone did not start again on {self.endpoint}:\n{self.log()}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                return True
            except OSError:
                return False
            finally:
                connection.close()

        wait_for(answers, timeout, what=f"the S3 server to answer again on {self.endpoint}", on_timeout=self.log)


@pytest.fixture
def own_s3(isolated: System, tmp_path: Path) -> Iterator[System]:
    """``isolated`` on an S3 server of its own (the session's server serves every other test: it stays up)."""
    with RestartableS3Server(tmp_path / "s3-own", buckets=("masters",)) as server:
        yield replace(isolated, s3=server, env={**isolated.env, **server.env})


def _attempted(system: System, job_id: str, times: int) -> Callable[[], Job | None]:
    """A check: the job has failed on the outage and been given back for a retry (or retried ``times``)."""
    def check() -> Job | None:
        job = system.job(job_id)
        return job if job is not None and (job.status == "retrying" or job.attempts >= times) else None
    return check


@ON_REDIS
def test_the_s3_server_down_mid_job_delays_the_job_which_then_completes(
    own_s3: System, masters: dict[str, Path], history: History
) -> None:
    """S3 goes down while the job transcodes, so its publish fails, and so does the re-fetch of each retry
    while it stays down; it comes back on the same port and folder after ~10 s. The job retries with backoff
    and completes: one row, one success, the ladder complete and alone under the asset's prefix.

    The outage lasts 10 s from the crash but ends no later than 3 s after the job first failed on it: five
    retries (``MEDIAWORKER_MAX_RETRIES``) cannot all fail in 3 s — each spends over a second on refused
    connections alone — so the test is about recovery; running out of retries is the next test."""
    system = own_s3
    server: RestartableS3Server = system.s3
    rungs = {"540p", "360p", "234p", "audio-128k"}
    with system.worker("w1") as worker:
        job_id, asset_id = _send(system, masters["video"], "s3down")
        _wait_stage(system, job_id, "transcode", 5, worker)
        server.crash()
        crashed = time.monotonic()
        wait_for(_attempted(system, job_id, 2), 600, what="the job to fail on the outage", on_timeout=worker.tail)
        time.sleep(max(0.0, min(3.0, 10.0 - (time.monotonic() - crashed))))
        server.restart()
        down_s = time.monotonic() - crashed
        done = system.wait_status(job_id, {"succeeded", "cancelled"}, 600, worker)
        _assert_no_leftovers(system)
        log = worker.log.read_text(errors="replace")
    rows = history(job_id)
    assert done.attempts >= 2 and done.lost_runs == 0, rows
    assert len(_successes(rows)) == 1, rows
    assert _runs_logged(job_id, worker) == 1
    retries = re.findall(rf"retrying {job_id} in ([0-9.]+) s \(retry (\d+) of \d+\)", log)
    assert [int(n) for _, n in retries] == list(range(1, done.attempts)), log[-3000:]
    assert "storage_error" in log and "Connection refused" in log
    _assert_published_once(system, done, rungs)
    master = done.document["hls"]["master"].removeprefix("s3://media-out/")  # type: ignore[index]
    assert server.client().stat_object("media-out", master).content_type == "application/vnd.apple.mpegurl"
    print(f"S3 down {down_s:.1f} s; {done.attempts} attempts; backoffs {[float(t) for t, _ in retries]}")


@ON_REDIS
def test_the_s3_server_down_for_good_fails_the_job_cleanly_after_its_retries(
    own_s3: System, masters: dict[str, Path], history: History
) -> None:
    """S3 goes down mid-transcode and stays down: after ``MEDIAWORKER_MAX_RETRIES`` (2 here) the job ends
    ``failed`` with ``storage_error`` — never left ``running`` — and stays so; nothing of it is published."""
    system = own_s3
    server: RestartableS3Server = system.s3
    with system.worker("w1", MEDIAWORKER_MAX_RETRIES="2") as worker:
        job_id, asset_id = _send(system, masters["video"], "s3gone")
        _wait_stage(system, job_id, "transcode", 5, worker)
        server.crash()
        # The task ends (Celery logs it returning the failed document) after its first run and two retries.
        wait_for(lambda: _runs_logged(job_id, worker) == 1, 600, what="the task to give up", on_timeout=worker.tail)
        done = system.job(job_id)
        _assert_no_leftovers(system)
    assert done is not None
    assert (done.status, done.error_code, done.attempts) == ("failed", "storage_error", 3), vars(done)
    assert done.error_message and "Connection refused" in done.error_message
    assert done.document is not None and done.document["error"]["code"] == "storage_error"
    with system.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id == asset_id)) == 1
        assert session.scalar(select(func.count()).select_from(Rendition).where(Rendition.asset_id == asset_id)) == 0
    assert history(job_id)[-1]["status"] == "failed"
    time.sleep(2)
    assert system.job(job_id).status == "failed"  # type: ignore[union-attr]  # and it stays so
    server.restart()
    assert system.output_keys(asset_id) == []  # nothing of it published


@ON_REDIS
def test_a_job_retried_after_a_transient_failure_is_never_shown_failed(
    own_s3: System, masters: dict[str, Path], history: History
) -> None:
    """A job that fails on a storage error and will be retried is recorded ``retrying``, never ``failed`` first:
    a final status in between would end a client's poll of ``mediaworker status``, refuse a cancel of a job
    that is about to run again, and answer a duplicate delivery ``done``. Only the last, given-up attempt is
    recorded ``failed``."""
    system = own_s3
    server: RestartableS3Server = system.s3
    with system.worker("w1", MEDIAWORKER_MAX_RETRIES="1") as worker:
        server.crash()  # every fetch fails: the first run fails and is retried once
        job_id, _ = _send_while_down(system, masters["audio"], "flap")
        wait_for(lambda: _runs_logged(job_id, worker) == 1, 300, what="the task to give up", on_timeout=worker.tail)
    statuses = [row["status"] for row in history(job_id)]
    assert statuses[-1] == "failed" and statuses.count("running") == 2, statuses  # one run, one retry, given up
    if "failed" in statuses[:-1]:
        raise AssertionError(f"the job's status went {statuses}")


def _send_while_down(system: System, path: Path, prefix: str) -> tuple[str, str]:
    """Enqueue a job for a master that was never uploaded, on a server that is down (it fails to fetch)."""
    asset_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sent = system.bare_client().send_task("mediaworker.process_asset", queue="transcode",
                                          kwargs={"asset_id": asset_id, "source": f"s3://masters/{path.name}"})
    return sent.id, asset_id


# --- 3. PostgreSQL restarted -----------------------------------------------------------------------------------


def _local_cluster() -> tuple[str, str] | None:
    """``(version, name)`` of the Debian PostgreSQL cluster on 127.0.0.1:5432 that the tests use, if it is one
    this machine can restart (``pg_ctlcluster``); ``None`` otherwise."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    target = make_url(os.environ.get("MEDIAWORKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    if target.host not in {"127.0.0.1", "localhost"} or (target.port or 5432) != 5432:
        return None
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30).stdout
    for line in listed.splitlines():
        version, name, port, *_ = line.split()
        if port == "5432":
            return version, name
    return None


def _until_database_answers(timeout: float = 60) -> None:
    """Wait for PostgreSQL to accept connections; start the local cluster if it is down for good."""
    if shutil.which("pg_isready") is None:
        return

    def ready() -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], timeout=30).returncode == 0

    deadline = time.monotonic() + timeout
    started = False
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL did not come back within {timeout:g} s")
        cluster = _local_cluster()
        if not started and cluster is not None and time.monotonic() > deadline - timeout + 10:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], timeout=60)
            started = True
        time.sleep(0.5)


def _restart_postgres(cluster: tuple[str, str], down_s: float) -> None:
    """Stop the cluster (fast mode: every connection is cut), keep it down ``down_s``, start it again — and
    whatever happens, leave it running, and this process's old connections forgotten."""
    try:
        stopped = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "stop", "--mode", "fast"],
                                 capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        time.sleep(down_s)
    finally:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"], capture_output=True,
                       timeout=120)
        _until_database_answers()
        _forget_dead_connections()


def _cluster_or_skip() -> tuple[str, str]:
    cluster = _local_cluster()
    if cluster is None:
        pytest.skip("needs the local Debian PostgreSQL cluster on port 5432 (pg_ctlcluster) to restart")
    return cluster


@ON_REDIS
def test_postgresql_restarted_mid_transcode_the_job_completes_once(
    isolated: System, long_master: Path, history: History
) -> None:
    """PostgreSQL is restarted while the job transcodes, down for 3 s: longer than the gap between two of the
    job's progress writes (1 s), so the run meets the outage — its write fails, ffmpeg is stopped, the run is
    given up and retried with backoff. The retry runs the job again from the start and completes it: one row,
    one success, nothing doubled. (Eight retries rather than five: five jittered backoffs — U(0, 1) + U(0, 2) +
    … + U(0, 16) s — all fall inside a ~4 s outage about once in 160 runs; running out of retries is the
    next test.)"""
    cluster = _cluster_or_skip()
    system = isolated
    with system.worker("w1", MEDIAWORKER_MAX_RETRIES="8") as worker:
        job_id, _ = _send(system, long_master, "pgrestart")
        _wait_stage(system, job_id, "transcode", 10, worker)
        _restart_postgres(cluster, 3)
        done = _wait_final(system, job_id, 600, worker)
        _assert_no_leftovers(system)
        log = worker.log.read_text(errors="replace")
    rows = history(job_id)
    assert done.attempts >= 2 and done.lost_runs == 0, rows  # the same worker retried: no run was lost
    assert len(_successes(rows)) == 1, rows
    assert _runs_logged(job_id, worker) == 1
    assert re.search(rf"retrying {job_id} in [0-9.]+ s \(retry 1 of \d+\): catalog write failed", log), log[-3000:]
    _assert_published_once(system, done, LONG_MASTER_RUNGS)


@ON_REDIS
def test_a_database_outage_past_the_retries_does_not_leave_the_job_running(
    isolated: System, long_master: Path, history: History
) -> None:
    """A catalog failure is retried ``MEDIAWORKER_MAX_RETRIES`` times (1 here). When the last retry's claim
    fails too, the task gives up and its message is acknowledged, while the job row, which could not be
    written, still says ``running``. Its lease expires, and the lease sweeper must enqueue it again: the job is
    not lost, nor ``running`` for ever."""
    cluster = _cluster_or_skip()
    system = isolated
    with system.worker("w1", MEDIAWORKER_MAX_RETRIES="1", MEDIAWORKER_RETRY_CAP_S="4") as worker:
        job_id, _ = _send(system, long_master, "pglost")
        _wait_stage(system, job_id, "transcode", 10, worker)
        _restart_postgres(cluster, 5)  # the run fails within 1 s of the stop, its one retry within 1 s more
        gave_up = f"Task mediaworker.process_asset[{job_id}] raised unexpected: CatalogError"
        wait_for(lambda: gave_up in worker.log.read_text(errors="replace"), 120,
                 what="the task to give up", on_timeout=worker.tail)
        lease_s = float(system.env["MEDIAWORKER_LEASE_S"])
        try:
            _wait_final(system, job_id, 2 * lease_s + 600, worker)  # swept after its lease, then run again
        except AssertionError:
            raise AssertionError(f"left running: {vars(system.job(job_id))}\nhistory: {history(job_id)}") from None


def _forget_dead_connections() -> None:
    """Drop the pooled connections of every engine in this process: the restart cut them all. The catalog's
    engine pings before use, but not every engine here does (``postgres_url``'s admin engine, which drops the
    session's database at the end, would fail on its dead connection)."""
    for thing in gc.get_objects():
        if isinstance(thing, Engine):
            thing.dispose()


def _wait_final(system: System, job_id: str, timeout: float, *workers: WorkerProcess) -> Job:
    """``wait_status`` for a final status, tolerating a catalog that is still reconnecting."""
    def check() -> Job | None:
        try:
            job = system.job(job_id)
        except CatalogError:
            return None
        return job if job is not None and job.status in {"succeeded", "failed", "cancelled"} else None

    found = wait_for(check, timeout, what=f"job {job_id} to end", on_timeout=lambda: "\n".join(w.tail() for w in workers))
    assert isinstance(found, Job)
    return found


# --- the scratch sweep -----------------------------------------------------------------------------------------


def test_the_scratch_sweep_treats_a_zombie_as_dead(tmp_path: Path) -> None:
    """A worker killed outright leaves its pool process a zombie until its new parent reaps it (1–2 s here).
    ``holder_is_dead`` counts a zombie as dead, so another worker takes the job over at once; the sweep of
    scratch folders must count it dead too, or it keeps the dead run's folder (a master's copy and a partial
    ladder) until another job starts on that home."""
    from pipelines.job import sweep_workspaces
    from workers.runtime import holder_is_dead

    child = subprocess.Popen(["true"])
    try:
        wait_for(lambda: not _alive(child.pid) and Path(f"/proc/{child.pid}").exists(), 60,
                 what="the child to be a zombie")
        folder = tmp_path / f"job-{child.pid}-abcd1234"
        folder.mkdir()
        assert holder_is_dead(f"{socket.gethostname()}:{child.pid}")  # the lease code: dead
        sweep_workspaces(tmp_path)
        if folder.exists():
            raise AssertionError(f"the scratch folder of the dead (zombie) process {child.pid} was kept")
    finally:
        child.wait()
