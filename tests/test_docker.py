"""What can be checked of docker/ without a Docker engine (none runs here): the compose file is consistent
with the code, the image installs with the same script as the README's commands, the MinIO policy is least
privilege, and the broker's redelivery timeout outlasts the task time limit."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

import pytest
import yaml

from pipelines.config import Settings
from workers.celery_app import QUEUES

DOCKER = Path(__file__).resolve().parent.parent / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return document


def test_compose_names_the_whole_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"minio", "minio-setup", "rabbitmq", "postgres", "flower",
            "worker-transcode", "worker-analysis", "worker-bookkeeping"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (DOCKER / source).exists(), f"{name}: {volume}"


def test_every_queue_has_a_worker_and_every_worker_a_known_queue(compose: dict[str, Any]) -> None:
    served: set[str] = set()
    for name, service in compose["services"].items():
        if not name.startswith("worker-"):
            continue
        command = service["command"]
        assert command[0] == "worker"
        served |= set(command[command.index("--queues") + 1].split(","))
        assert (DOCKER.parent / service["build"]["dockerfile"]).is_file()
    assert served == set(QUEUES)


def test_worker_environment_is_what_the_settings_read(compose: dict[str, Any]) -> None:
    env = dict(compose["services"]["worker-transcode"]["environment"])
    resolved = {key: re.sub(r"\$\{[^}]+\}", "secret", str(value)) for key, value in env.items()}
    settings = Settings.from_env(resolved)
    assert settings.s3 is not None and settings.s3.endpoint == "minio:9000" and not settings.s3.secure
    assert settings.catalog_url.startswith("postgresql+psycopg://") and settings.broker_url.startswith("amqp://")
    assert "secret" not in repr(settings.s3)  # secrets stay out of reprs and logs


def test_rabbitmq_does_not_redeliver_a_running_task(compose: dict[str, Any]) -> None:
    conf = (DOCKER / "rabbitmq.conf").read_text()
    consumer_timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    limit_s = float(compose["services"]["worker-transcode"]["environment"]["MEDIAWORKER_TASK_TIME_LIMIT_S"])
    assert consumer_timeout_ms / 1000 > limit_s


def test_the_image_installs_with_the_readme_script() -> None:
    dockerfile = (DOCKER / "worker.Dockerfile").read_text()
    assert "RUN bash docker/install-system-deps.sh" in dockerfile
    makefile = (DOCKER.parent / "Makefile").read_text()
    assert "bash docker/install-system-deps.sh" in makefile


def test_worker_policy_is_least_privilege() -> None:
    policy = json.loads((DOCKER / "minio-worker-policy.json").read_text())
    allowed: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            allowed.setdefault(resource, set()).update(statement["Action"])
    assert not any("*" in action for actions in allowed.values() for action in actions)
    assert "s3:PutObject" not in allowed.get("arn:aws:s3:::masters/*", set())  # masters are read, never rewritten
    assert "s3:DeleteObject" not in allowed.get("arn:aws:s3:::masters/*", set())
    assert {"s3:PutObject", "s3:DeleteObject"} <= allowed["arn:aws:s3:::media-out/*"]
