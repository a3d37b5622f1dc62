"""One door into the broker: every sender of a job's message goes through ``workers.enqueue``, so each message
has one shape and one queue, and the task names are spelled in one place.

The senders run for real against Celery's in-memory broker (the message read back off the queue is what a
worker would receive); the source of ``pipelines/`` and ``workers/`` is read to prove no other sender exists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
import re
from typing import Any

from celery import Celery
import pytest

from pipelines.config import Settings
from pipelines.storage.events import parse_bucket_event
from workers.enqueue import (
    INGEST_EVENT,
    INTAKE_QUEUE,
    MATCH_CLIP,
    PROCESS_ASSET,
    QUEUES,
    ROUTES,
    TRANSCODE_QUEUE,
    enqueue_bucket_event,
    enqueue_process_asset,
)

ROOT = Path(__file__).resolve().parent.parent
EVENT = (Path(__file__).with_name("data") / "minio_event_put.json").read_text()
SOURCE = "s3://masters/uploads/a.wav"


@pytest.fixture(scope="module")
def real_app(tmp_path_factory: pytest.TempPathFactory) -> Celery:
    """The real app on an in-memory broker, with a SQLite catalog under a fresh home (one per module: Celery
    registers the tasks by name once per process)."""
    from workers.celery_app import create_app

    home = tmp_path_factory.mktemp("enqueue") / "home"
    return create_app(Settings.from_env({"MEDIAWORKER_HOME": str(home), "MEDIAWORKER_BROKER_URL": "memory://"}))


@pytest.fixture
def app(real_app: Celery) -> Celery:
    """``real_app`` with its queues empty: the memory transport is shared by every app of the process, so
    another test's message may wait there."""
    with real_app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.SimpleQueue(queue).clear()
    return real_app


def _taken(app: Celery, queue_name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every message waiting on ``queue_name``, taken off it: ``(headers, kwargs)`` each."""
    taken = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name)
        try:
            while True:
                message = queue.get(timeout=0.5)
                message.ack()
                args, kwargs, _options = message.payload
                assert args == []
                taken.append((message.headers, kwargs))
        except queue.Empty:
            pass
        finally:
            queue.close()
    return taken


def test_a_job_message_names_the_job_and_the_version_and_goes_to_the_transcode_queue(app: Celery) -> None:
    enqueue_process_asset(app, job_id="job-1", asset_id="a1", source=SOURCE, version_id="v-3", etag="e-9")
    [(headers, kwargs)] = _taken(app, TRANSCODE_QUEUE)
    assert (headers["task"], headers["id"]) == ("mediaworker.process_asset", "job-1")
    assert kwargs == {"asset_id": "a1", "source": SOURCE, "version_id": "v-3", "etag": "e-9"}
    assert _taken(app, INTAKE_QUEUE) == []


def test_submit_records_the_queued_job_and_enqueues_it_under_its_id(app: Celery) -> None:
    from workers.submit import submit_job

    runtime = app.conf.mediaworker_runtime
    job_id = submit_job(app, runtime, SOURCE, asset_id="a1")
    [(headers, kwargs)] = _taken(app, TRANSCODE_QUEUE)
    assert (headers["task"], headers["id"]) == (PROCESS_ASSET, job_id)
    assert kwargs == {"asset_id": "a1", "source": SOURCE, "version_id": None, "etag": None}
    job = runtime.catalog.get_job(job_id)
    assert job is not None and (job.status, job.asset_id, job.source_uri) == ("queued", "a1", SOURCE)


def test_an_upload_notification_enqueues_the_announced_version(app: Celery) -> None:
    from workers.notifications import handle_bucket_event

    [master], _ignored = parse_bucket_event(EVENT, masters_bucket="masters")
    assert handle_bucket_event(app, EVENT) == [master.job_id]
    [(headers, kwargs)] = _taken(app, TRANSCODE_QUEUE)
    assert (headers["task"], headers["id"]) == (PROCESS_ASSET, master.job_id)
    assert kwargs == {"asset_id": master.asset_id, "source": master.ref.uri, "version_id": master.version_id,
                      "etag": "0c4c7bd0e5c7e8c4b6c5f7e3a9d2b1f0"}


def test_a_notification_becomes_an_ingest_task_on_the_bookkeeping_queue(app: Celery) -> None:
    enqueue_bucket_event(app, payload='{"Records": []}')
    [(headers, kwargs)] = _taken(app, ROUTES[INGEST_EVENT]["queue"])
    assert headers["task"] == "mediaworker.ingest_event" and kwargs == {"payload": '{"Records": []}'}


def test_a_job_sent_to_the_intake_queue_is_forwarded_to_transcode_under_the_same_id(app: Celery) -> None:
    """The real task, as a worker of the intake queue runs it: it moves the message, and runs nothing."""
    sent = {"asset_id": "a1", "source": SOURCE, "version_id": "v-3", "etag": "e-9"}
    result = app.tasks[PROCESS_ASSET].apply(kwargs=sent, task_id="job-7", routing_key=INTAKE_QUEUE)
    assert result.get() == {"job_id": "job-7", "status": "forwarded", "queue": "transcode"}
    [(headers, kwargs)] = _taken(app, TRANSCODE_QUEUE)
    assert (headers["task"], headers["id"], kwargs) == (PROCESS_ASSET, "job-7", sent)
    assert app.conf.mediaworker_runtime.catalog.get_job("job-7") is None  # not claimed, let alone run


def test_the_routes_name_every_task_and_a_declared_queue() -> None:
    assert set(ROUTES) == {PROCESS_ASSET, MATCH_CLIP, INGEST_EVENT}
    assert {route["queue"] for route in ROUTES.values()} <= set(QUEUES)
    assert ROUTES[PROCESS_ASSET] == {"queue": "transcode"}  # the queue other services send the job to


# --- no other door ----------------------------------------------------------------------------------------------


def _project_sources() -> Iterator[tuple[str, ast.Module]]:
    for package in ("pipelines", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def _sends(tree: ast.Module) -> list[int]:
    """Lines of ``….send_task(…)`` and ``….apply_async(…)`` calls: a message put on the broker."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr in {"send_task", "apply_async"}]


def _task_names(tree: ast.Module) -> list[int]:
    """Lines of string constants that are exactly a task name (``mediaworker.something``); prose that mentions
    one, as docstrings do, is not a name spelled."""
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"mediaworker\.[a-z_]+", node.value)]


def test_only_the_enqueue_module_puts_messages_on_the_broker() -> None:
    found = {name: lines for name, tree in _project_sources() if (lines := _sends(tree))}
    assert set(found) == {"workers/enqueue.py"}, found


def test_task_names_are_spelled_once() -> None:
    found = {name: lines for name, tree in _project_sources() if (lines := _task_names(tree))}
    assert set(found) == {"workers/enqueue.py"}, found
    assert len(found["workers/enqueue.py"]) == 3, found  # each name once


def test_the_source_checks_see_what_they_look_for() -> None:
    """The two checks above are not blind: they find a send and a task name in code that has them."""
    tree = ast.parse('def f(app):\n    """Sends ``mediaworker.process_asset``."""\n'
                     '    app.send_task("mediaworker.process_asset", queue="transcode")\n'
                     '    app.tasks["mediaworker.match_clip"].apply_async(kwargs={})\n')
    assert _sends(tree) == [3, 4]
    assert _task_names(tree) == [3, 4]
