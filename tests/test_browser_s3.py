"""The distributed system's HLS output plays from the S3 server itself, in the same hls.js check as the local one.

A bare Celery client (the catalog service's view) sends ``mediaworker.process_asset`` by name, with an
``s3://masters/…`` source, to a real ``mediaworker worker`` on Redis; the job succeeds in the PostgreSQL catalog,
its ladder lands in the ``media-out`` bucket, and headless Chromium plays the published ``master.m3u8`` straight
from the S3 server with hls.js: every level, sound and picture in sync.

How the browser reaches the S3 server: this module's S3 server (``rclone serve s3``) runs without ``--auth-key``,
so it serves objects to plain anonymous GETs (like a public-read bucket on MinIO) while the worker's signed
requests work as before. The player page and hls.js are uploaded to a ``player`` bucket on the same server, and
the page is opened from there: page, playlists and segments share one origin, so no CORS is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import io
import json
import os
from pathlib import Path
from typing import Any
import uuid

from playwright.sync_api import Browser, Page, Response
import pytest
import redis
from sqlalchemy import func, select

from pipelines.catalog import Catalog, Rendition
from tests.conftest import make_media
from tests.distributed import System
from tests.s3server import S3Server
from tests.test_browser_playback import (  # noqa: F401 - browser and hls_js are fixtures used by name
    DURATION_S,
    PAGE,
    browser,
    events,
    hls_js,
    play_every_level,
)

pytestmark = pytest.mark.browser

PLAYER_BUCKET = "player"
JOB_TIMEOUT_S = 900  # a whole video job, VMAF included, on a machine that may be busy
REDIS_DB = 13  # tests.distributed uses 9


@pytest.fixture
def public_system(postgres_url: str, tmp_path: Path) -> Iterator[System]:
    """The distributed system as in ``tests.distributed.system_fixture``, but with its own S3 server, one that
    also answers anonymous GETs so that a browser can fetch its objects by URL, and its own Redis database, so
    that workers of other test runs on this machine neither take its message nor get theirs taken."""
    redis.Redis(db=REDIS_DB).flushdb()
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    with S3Server(tmp_path / "s3", buckets=("masters",), anonymous=True) as server:
        env = {
            **os.environ, **server.env,
            "MEDIAWORKER_HOME": str(tmp_path / "home"),
            "MEDIAWORKER_BROKER_URL": broker,
            "MEDIAWORKER_CATALOG_URL": postgres_url,
        }
        catalog = Catalog.open(postgres_url)
        (tmp_path / "logs").mkdir()
        try:
            yield System(broker, env, catalog, server, tmp_path / "logs")
        finally:
            catalog.dispose()


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~30 s 960x540 25 fps master with stereo sound, as in the local playback test."""
    return make_media(
        tmp_path_factory.mktemp("s3-master") / "video.mp4",
        "-f", "lavfi", "-i", f"testsrc2=size=960x540:rate=25:duration={DURATION_S}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={DURATION_S}",
        "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
    )


def run_job_by_name(system: System, source: str, asset_id: str) -> dict[str, Any]:
    """Send ``mediaworker.process_asset`` by name from a bare client to a real worker; return the job document."""
    with system.worker("s3-browser") as worker:
        sent = system.bare_client().send_task(
            "mediaworker.process_asset", kwargs={"asset_id": asset_id, "source": source}, queue="transcode"
        )
        job = system.wait_status(sent.id, {"succeeded", "failed", "cancelled"}, JOB_TIMEOUT_S, worker)
    assert job.status == "succeeded", f"{job.error_message}\n{worker.tail()}"
    assert job.source_uri == source and job.document is not None
    return job.document


def player_page(master_url: str) -> str:
    """The local test's player page, its ``start(src)`` pointed at ``master_url``: ``play_every_level`` asks for
    ``hls/master.m3u8`` (the local layout); here the master lives in the output bucket of the same server."""
    redirect = (
        "<script>const startLocal = window.start;\n"
        f"window.start = (src, rate) => startLocal(src === 'hls/master.m3u8' ? {json.dumps(master_url)} : src, rate);\n"
        "</script></body>"
    )
    assert PAGE.count("</body>") == 1
    return PAGE.replace("</body>", redirect)


@contextmanager
def open_from_s3(chromium: Browser, server: S3Server, player_js: Path, master_uri: str) -> Iterator[Page]:
    """Upload the player page and hls.js to the S3 server, open the page from there and yield it.

    Leaving the block asserts that every request the page made succeeded and went to the S3 server.
    """
    base = f"http://{server.endpoint}"
    client = server.client()
    if not client.bucket_exists(PLAYER_BUCKET):
        client.make_bucket(PLAYER_BUCKET)
    client.fput_object(PLAYER_BUCKET, "hls.min.js", str(player_js), content_type="application/javascript")
    html = player_page(f"{base}/{master_uri.removeprefix('s3://')}").encode()
    client.put_object(PLAYER_BUCKET, "index.html", io.BytesIO(html), len(html), content_type="text/html; charset=utf-8")
    page = chromium.new_page()
    requests: list[str] = []
    failed: list[str] = []

    def check(response: Response) -> None:
        if not response.url.startswith("blob:"):  # hls.js starts its transmuxing worker from a blob URL
            requests.append(response.url)
        failed.extend([] if response.ok else [f"{response.status} {response.url}"])

    page.on("response", check)
    page.on("console", lambda message: print(f"console.{message.type}: {message.text}"))
    try:
        page.goto(f"{base}/{PLAYER_BUCKET}/index.html")
        yield page
        assert not failed, f"HTTP requests failed: {failed}"
        assert all(url.startswith(f"{base}/") for url in requests), f"requests elsewhere than S3: {requests}"
        segments = [url for url in requests if url.startswith(f"{base}/media-out/") and url.endswith(".m4s")]
        assert segments, f"no segment fetched from the output bucket: {requests}"
    finally:
        page.close()


def test_a_job_sent_by_name_plays_from_the_s3_server(
    public_system: System, master: Path, browser: Browser, hls_js: Path  # noqa: F811 - the imported fixtures
) -> None:
    """Bare client → worker → S3 and PostgreSQL → hls.js playing the published ladder from the S3 server."""
    asset_id = f"s3play-{uuid.uuid4().hex[:8]}"
    source = public_system.upload(master, f"uploads/{uuid.uuid4().hex}/video.mp4")
    document = run_job_by_name(public_system, source, asset_id)

    # Outputs in the bucket, results in the catalog.
    master_uri = document["hls"]["master"]
    assert master_uri.startswith(f"s3://media-out/hls/{asset_id}/") and master_uri.endswith("/master.m3u8")
    keys = public_system.output_keys(asset_id)
    assert master_uri.removeprefix("s3://media-out/") in keys
    assert {k.rsplit("/", 2)[1] for k in keys if k.endswith("index.m3u8")} == {"540p", "360p", "234p", "audio-128k"}
    with public_system.catalog.session() as session:
        count = select(func.count()).select_from(Rendition).where(Rendition.asset_id == asset_id)
        assert session.scalar(count) == len(document["hls"]["renditions"]) == 4

    # The ladder plays from the S3 server: every level, the AAC rendition as the audio track, in sync.
    with open_from_s3(browser, public_system.s3, hls_js, master_uri) as page:
        renditions = play_every_level(page, document, "video")
        assert [r["resolution"] for r in renditions] == ["960x540", "640x360", "416x234"]
        assert events(page, "manifest_parsed")[0]["audioTracks"] == 1
        assert {e["level"] for e in events(page, "frag_loaded") if e["kind"] == "audio"}, "no audio fragment loaded"
        # Lip sync: the first picture and the first sound are presented together (EBU R37 allows 40 ms).
        first: dict[str, float] = {}
        for entry in events(page, "buffered"):
            first.setdefault(entry["track"], entry["start"])
        assert abs(first["video"] - first["audio"]) <= 0.040, f"video and audio start apart: {first}"
