"""The distributed system under test: one broker, the S3 server, the PostgreSQL catalog, worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any
import uuid

from celery import Celery
import pytest
import redis

from pipelines.catalog import Catalog, Job
from tests.workerproc import WorkerProcess, wait_for

REDIS_DB = 9
BROKERS = {
    "redis": f"redis://127.0.0.1:6379/{REDIS_DB}",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


@dataclass
class System:
    """One broker, the S3 server, the PostgreSQL catalog and a home: what workers and clients share."""

    broker_url: str
    env: dict[str, str]
    catalog: Catalog
    s3: Any
    logs: Path

    def worker(self, name: str, **env: str) -> WorkerProcess:
        # Unique names: RabbitMQ keeps a worker's control queue a moment after the worker has gone.
        return WorkerProcess(f"{name}-{uuid.uuid4().hex[:6]}", {**self.env, **env}, self.logs)

    def upload(self, path: Path, key: str) -> str:
        self.s3.client().fput_object("masters", key, str(path))
        return f"s3://masters/{key}"

    def bare_client(self) -> Celery:
        """A client that knows nothing of this project: the catalog service's view."""
        return Celery("catalog-service", broker=self.broker_url)

    def job(self, job_id: str) -> Job | None:
        return self.catalog.get_job(job_id)

    def wait_status(self, job_id: str, statuses: set[str], timeout: float, *workers: WorkerProcess) -> Job:
        def check() -> Job | None:
            job = self.job(job_id)
            return job if job is not None and job.status in statuses else None

        found = wait_for(check, timeout, what=f"job {job_id} to reach {statuses}",
                         on_timeout=lambda: f"job: {self.job(job_id) and vars(self.job(job_id))}\n"
                         + "\n".join(w.tail() for w in workers))
        assert isinstance(found, Job)
        return found

    def output_keys(self, asset_id: str) -> list[str]:
        client = self.s3.client()
        if not client.bucket_exists("media-out"):
            return []
        return sorted(o.object_name for o in client.list_objects("media-out", prefix=f"hls/{asset_id}/", recursive=True))


def system_fixture(request: pytest.FixtureRequest, postgres_url: str, s3_server: Any, tmp_path: Path) -> Iterator[System]:
    broker = BROKERS[request.param]
    if request.param == "redis":
        redis.Redis(db=REDIS_DB).flushdb()
    else:
        with Celery(broker=broker).connection_for_write() as connection:
            for queue in ("transcode", "analysis", "bookkeeping", "celery"):
                try:
                    connection.default_channel.queue_purge(queue)
                except Exception:  # noqa: BLE001 - a queue that does not exist yet has nothing to purge
                    connection.close()
                    connection.connect()
    env = {
        **os.environ, **s3_server.env,
        "MEDIAWORKER_HOME": str(tmp_path / "home"),
        "MEDIAWORKER_BROKER_URL": broker,
        "MEDIAWORKER_CATALOG_URL": postgres_url,
        "MEDIAWORKER_LEASE_S": "6",
        "MEDIAWORKER_RETRY_BASE_S": "1",
    }
    catalog = Catalog.open(postgres_url)
    (tmp_path / "logs").mkdir()
    yield System(broker, env, catalog, s3_server, tmp_path / "logs")
    catalog.dispose()


