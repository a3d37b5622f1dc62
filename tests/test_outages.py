"""Long outages in the distributed mode, each on a server of the test's own so that nothing else on this machine
notices: the S3 server and PostgreSQL each unavailable for 30 s in the middle of a job, and the broker (Redis, and
RabbitMQ) restarted with jobs in flight and queued.

``tests/test_faults.py`` has the short versions (S3 down ~10 s, PostgreSQL restarted for 3 s, on the shared
servers); a 30 s outage outlasts the default retry schedule's early backoffs, so these workers retry up to 20
times, every backoff capped at 8 s: recovery is what is tested, not running out of retries.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time
from typing import Any
import uuid

import kombu
import pytest
import redis
from sqlalchemy import func, select

from pipelines.catalog import Catalog, Job, Rendition
from pipelines.errors import CatalogError
from tests.conftest import make_media
from tests.distributed import System
from tests.test_faults import RestartableS3Server
from tests.workerproc import WorkerProcess, processes_mentioning, wait_for

OUTAGE_S = 30.0
PATIENT = {"MEDIAWORKER_MAX_RETRIES": "20", "MEDIAWORKER_RETRY_BASE_S": "2", "MEDIAWORKER_RETRY_CAP_S": "8"}
FINAL = {"succeeded", "failed", "cancelled"}
SHARED_REDIS_DB = 15  # on the machine's Redis, for the outages of other servers; tests.distributed uses 9


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of this test's own, persisting every write (AOF, fsync always) so a restart keeps the
    queued messages, as a production broker would be configured."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs redis-server")
        self.folder.mkdir(exist_ok=True)
        with open(self.folder / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    return connection.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(answers, 120, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


class PrivateRabbit:
    """A RabbitMQ node of this test's own (its own node name, ports and database folder), stopped and started
    again at will. Celery declares its queues durable and sends its messages persistent, so a restart keeps what
    was queued, as with the production broker."""

    SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # /usr/sbin's wrapper would run it as user rabbitmq

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.dist_port = _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        if not self.SERVER.exists():
            pytest.skip("needs RabbitMQ's server")
        self.folder.mkdir(exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        env = {**os.environ, "HOME": str(self.folder), "RABBITMQ_NODENAME": f"mwoutage{os.getpid()}@localhost",
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.folder / "log"), "RABBITMQ_CONFIG_FILE": str(self.folder / "none"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins")}
        with open(self.folder / "rabbitmq.out", "ab") as log:
            self.proc = subprocess.Popen([str(self.SERVER)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

        def answers() -> bool:
            try:
                with kombu.Connection(self.url, connect_timeout=1) as connection:
                    connection.connect()
                    return bool(connection.connected)
            except OSError:
                return False

        wait_for(answers, 300, what=f"RabbitMQ on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the Erlang VM shuts down cleanly on SIGTERM
            self.proc.wait(timeout=60)
            self.proc = None
            wait_for(lambda: not _listening(self.port), 60, what=f"RabbitMQ to leave port {self.port}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PrivateCluster:
    """A PostgreSQL cluster of this test's own (``pg_createcluster``), stopped and started at will."""

    def __init__(self) -> None:
        self.name = f"mwoutage{os.getpid()}"
        self.port = _free_port()
        self.version = ""

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create(self) -> None:
        if shutil.which("pg_createcluster") is None or shutil.which("pg_lsclusters") is None:
            pytest.skip("needs Debian's PostgreSQL cluster tools")
        listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split()
        if not listed:
            pytest.skip("no PostgreSQL installation to make a cluster with")
        self.version = listed[0]
        subprocess.run(["pg_createcluster", self.version, self.name, "--port", str(self.port), "--start", "--",
                        "--auth=trust"], check=True, capture_output=True, timeout=180)

    def ctl(self, action: str) -> None:
        extra = ["--mode", "fast"] if action == "stop" else []
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action, *extra],
                       check=True, capture_output=True, timeout=120)

    def drop(self) -> None:
        if self.version:
            subprocess.run(["pg_dropcluster", "--stop", self.version, self.name], capture_output=True, timeout=120)


def _system(tmp_path: Path, *, broker: str, catalog_url: str, s3: Any) -> System:
    env = {
        **os.environ, **s3.env, **PATIENT,
        "MEDIAWORKER_HOME": str(tmp_path / "home"),
        "MEDIAWORKER_BROKER_URL": broker,
        "MEDIAWORKER_CATALOG_URL": catalog_url,
        "MEDIAWORKER_LEASE_S": "6",
    }
    (tmp_path / "logs").mkdir(exist_ok=True)
    return System(broker, env, Catalog.open(catalog_url), s3, tmp_path / "logs")


@pytest.fixture(params=["redis", "rabbitmq"])
def own_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateRedis | PrivateRabbit]:
    server = PrivateRedis(tmp_path / "redis") if request.param == "redis" else PrivateRabbit(tmp_path / "rabbitmq")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[RestartableS3Server]:
    server = RestartableS3Server(tmp_path / "s3-own", buckets=("masters",))
    with server:
        yield server


def _send(system: System, path: Path, prefix: str, source: str | None = None) -> tuple[str, str]:
    source = source or system.upload(path, f"{uuid.uuid4()}/{path.name}")
    asset_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sent = system.bare_client().send_task("mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source},
                                          queue="transcode")
    return sent.id, asset_id


def _job(system: System, job_id: str) -> Job | None:
    try:
        return system.job(job_id)
    except CatalogError:
        return None  # the catalog is the one that is down


def _wait_final(system: System, job_id: str, timeout: float, *workers: WorkerProcess) -> Job:
    def check() -> Job | None:
        job = _job(system, job_id)
        return job if job is not None and job.status in FINAL else None

    found = wait_for(check, timeout, what=f"job {job_id} to end", on_timeout=lambda: "\n".join(w.tail() for w in workers))
    assert isinstance(found, Job)
    return found


def _wait_transcoding(system: System, job_id: str, *workers: WorkerProcess) -> None:
    def check() -> bool:
        job = _job(system, job_id)
        return job is not None and job.stage == "transcode" and job.percent >= 15
    wait_for(check, 600, what=f"job {job_id} to transcode", on_timeout=lambda: "\n".join(w.tail() for w in workers))


def _assert_once(system: System, job: Job, rungs: set[str]) -> None:
    """Succeeded, one job row for its asset, one rendition row per rung, one ladder published."""
    assert job.status == "succeeded", (job.error_code, job.error_message)
    with system.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.asset_id == job.asset_id)) == 1
        names = sorted(session.scalars(select(Rendition.name).where(Rendition.asset_id == job.asset_id)))
    assert names == sorted(rungs)
    assert job.document is not None
    prefix = job.document["hls"]["prefix"]
    keys = system.output_keys(job.asset_id)
    assert keys and all(key.startswith(prefix + "/") for key in keys), keys  # no second, partial ladder


def test_the_s3_server_down_30_s_mid_transcode(
    postgres_url: str, own_s3: RestartableS3Server, masters: dict[str, Path], tmp_path: Path
) -> None:
    redis.Redis(db=SHARED_REDIS_DB).flushdb()
    system = _system(tmp_path, broker=f"redis://127.0.0.1:6379/{SHARED_REDIS_DB}", catalog_url=postgres_url, s3=own_s3)
    try:
        with system.worker("s3out") as worker:
            job_id, _ = _send(system, masters["video"], "s3out")
            _wait_transcoding(system, job_id, worker)
            own_s3.crash()
            time.sleep(OUTAGE_S)
            own_s3.restart()
            done = _wait_final(system, job_id, 600, worker)
            assert processes_mentioning(str(tmp_path / "home" / "work")) == []
        assert done.attempts >= 2 and done.lost_runs == 0, vars(done)
        _assert_once(system, done, {"540p", "360p", "234p", "audio-128k"})
    finally:
        system.catalog.dispose()


def test_postgresql_down_30_s_mid_transcode(
    own_s3: RestartableS3Server, masters: dict[str, Path], tmp_path: Path
) -> None:
    cluster = PrivateCluster()
    try:
        cluster.create()
        redis.Redis(db=SHARED_REDIS_DB).flushdb()
        system = _system(tmp_path, broker=f"redis://127.0.0.1:6379/{SHARED_REDIS_DB}", catalog_url=cluster.url,
                         s3=own_s3)
        with system.worker("pgout") as worker:
            job_id, _ = _send(system, masters["video"], "pgout")
            _wait_transcoding(system, job_id, worker)
            cluster.ctl("stop")
            try:
                time.sleep(OUTAGE_S)
            finally:
                cluster.ctl("start")
            system.catalog.dispose()  # this process's pooled connections died with the server
            done = _wait_final(system, job_id, 600, worker)
            assert processes_mentioning(str(tmp_path / "home" / "work")) == []
        assert done.attempts >= 2, vars(done)
        _assert_once(system, done, {"540p", "360p", "234p", "audio-128k"})
        system.catalog.dispose()
    finally:
        cluster.drop()


def test_the_broker_restarted_with_jobs_in_flight_and_queued(
    postgres_url: str, s3_server: Any, own_broker: PrivateRedis | PrivateRabbit, tmp_path: Path
) -> None:
    """Fifty jobs on two workers; the broker (Redis, or RabbitMQ as in production) is stopped while a job runs
    and dozens wait in its queue, and started again five seconds later. Every job ends succeeded, each run
    exactly once (one claim, one ladder): the jobs in flight carry on (their progress reports to the result
    backend, the same broker, fail and are only logged), and the queued messages survive in Redis's append-only
    file or RabbitMQ's durable queues."""
    system = _system(tmp_path, broker=own_broker.url, catalog_url=postgres_url, s3=s3_server)
    tone = make_media(tmp_path / "tone.flac", "-f", "lavfi", "-i", "sine=frequency=500:duration=2")
    source = system.upload(tone, f"{uuid.uuid4()}/tone.flac")
    try:
        with system.worker("b1") as first, system.worker("b2") as second:
            jobs = [_send(system, tone, "brk", source) for _ in range(50)]

            def in_flight_and_queued() -> bool:
                states = [_job(system, job_id) for job_id, _ in jobs]
                done = sum(1 for j in states if j is not None and j.status == "succeeded")
                running = sum(1 for j in states if j is not None and j.status == "running")
                unclaimed = sum(1 for j in states if j is None)  # a job's row is made by its first claim
                return done >= 4 and running >= 1 and unclaimed >= 10
            wait_for(in_flight_and_queued, 300, what="jobs done, in flight and queued", on_timeout=first.tail)
            own_broker.stop()
            time.sleep(5)
            own_broker.start()
            done = [_wait_final(system, job_id, 900, first, second) for job_id, _ in jobs]
        lost = [job.id for job in done if job.status != "succeeded"]
        assert lost == [], [(j.id, j.status, j.error_code) for j in done if j.status != "succeeded"]
        doubled = [job.id for job in done if job.attempts != 1]
        assert doubled == [], [(j.id, j.attempts, j.lost_runs) for j in done if j.attempts != 1]
        for job in done:
            _assert_once(system, job, _rungs(system, job))
    finally:
        system.catalog.dispose()


def _rungs(system: System, job: Job) -> set[str]:
    assert job.document is not None
    return {r["name"] for r in job.document["hls"]["renditions"]}

