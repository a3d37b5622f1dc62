"""Shared fixtures: masters generated with ffmpeg's lavfi sources, and the real ``mediaworker`` command."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import text

from pipelines.catalog import Catalog, Job
from pipelines.catalog.models import utcnow

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "media_fixtures"
DATA = Path(__file__).resolve().parent / "data"
MEDIAWORKER = str(Path(sys.executable).with_name("mediaworker"))


def make_media(path: Path, *args: str) -> Path:
    """Run ``ffmpeg -y [args] path`` (quietly) and return ``path``."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(path)], check=True)
    return path


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.stdout)  # type: ignore[no-any-return]


CliRunner = Callable[..., CliResult]


@pytest.fixture(scope="session")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small synthetic masters, made once per session."""
    folder = tmp_path_factory.mktemp("masters")
    return {
        # 960x540 → a 540p/360p/234p ladder and one stereo AAC rendition; 13 s gives 3 segments of ≤ 6 s.
        "video": make_media(
            folder / "video.mp4",
            "-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25:duration=13",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=13",
            "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-c:a", "aac", "-shortest",
        ),
        "audio": make_media(
            folder / "tone.flac",
            "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=10", "-ac", "2",
            "-metadata", "title=Test tone", "-metadata", "artist=Lavfi",
        ),
    }


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty ``MEDIAWORKER_HOME`` for one test."""
    return tmp_path / "mediaworker-home"


@pytest.fixture
def cli(home: Path) -> CliRunner:
    """Run the installed ``mediaworker`` console script as a real process against ``home``."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
        full_env = {**os.environ, "MEDIAWORKER_HOME": str(home), **(env or {})}
        proc = subprocess.run(
            [MEDIAWORKER, *args], capture_output=True, text=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def ffprobe_json(path: Path | str, *args: str) -> dict[str, Any]:
    """ffprobe's JSON for ``path`` (an independent check of what the project wrote)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def files_under(root: Path) -> Sequence[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session on the real server (dropped afterwards).

    ``MEDIAWORKER_TEST_POSTGRES`` names the server (an SQLAlchemy URL to an existing database); the default is
    the local server that ``.ci/run`` starts.
    """
    from tests.pgserver import throwaway_database

    admin_url = os.environ.get("MEDIAWORKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with throwaway_database(admin_url, f"mediaworker_test_{os.getpid()}",
                            before_drop=_scan_catalog_before_drop) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """An empty catalog on each of its databases."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Catalog.open(url)
    _empty(opened)  # the PostgreSQL database is shared by the session: other tests' rows would be found too
    yield opened
    _empty(opened)
    opened.dispose()


def expire_lease(catalog: Catalog, job_id: str) -> None:
    """End a job's lease now, as if its holder had stopped renewing it."""
    with catalog.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.lease_expires_at = utcnow() - timedelta(seconds=1)


def _empty(catalog: Catalog) -> None:
    with catalog.engine.begin() as connection:  # fingerprints and matches go with their assets (ON DELETE CASCADE)
        for table in ("renditions", "jobs", "assets"):
            connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real S3 API server (``rclone serve s3`` over a temporary folder) for the session, with a ``masters``
    bucket. It has ``endpoint`` ("127.0.0.1:PORT"), ``access_key``, ``secret_key``, ``root`` (the served folder,
    one sub-folder per bucket), ``env`` (the ``MEDIAWORKER_S3_*`` variables) and ``client()`` (a minio client)."""
    from tests.s3server import S3Server

    with S3Server(tmp_path_factory.mktemp("s3-root"), buckets=("masters",)) as server:
        yield server


@pytest.fixture(params=["redis", "rabbitmq"])
def system(request: pytest.FixtureRequest, postgres_url: str, s3_server: Any, tmp_path: Path) -> Iterator[Any]:
    """The distributed system (``tests.distributed.System``) on each broker in turn."""
    from tests.distributed import system_fixture

    yield from system_fixture(request, postgres_url, s3_server, tmp_path)


@pytest.fixture(scope="session")
def long_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of 640x360 video and sound: a transcode that takes long enough to be interrupted."""
    return make_media(
        tmp_path_factory.mktemp("long") / "long.mp4",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=60",
        "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=60",
        "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest",
    )


# --- the scan after the suite (tests/secretscan.py): no secret, no clear-text uploader identity ------------

def pytest_configure(config: pytest.Config) -> None:
    """The suite runs with an identity key, so uploader pseudonyms are made; the key itself is a secret."""
    from tests import secretscan

    key = os.environ.setdefault("MEDIAWORKER_IDENTITY_KEY", f"test-identity-key-{os.urandom(8).hex()}")
    secretscan.register(key, "the identity key")


@pytest.fixture(scope="session", autouse=True)
def _suite_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every record logged in the test process (INFO and up) also goes to ``suite.log``, which the scan reads."""
    import logging

    handler = logging.FileHandler(tmp_path_factory.getbasetemp() / "suite.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def _scan_catalog_before_drop(url: str) -> None:
    from tests import secretscan

    secretscan.record(secretscan.scan_catalog(url, secretscan.needles()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when any log or catalog the suite produced holds a secret or an uploader's identity."""
    from tests import secretscan

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.testscollected == 0:
        return
    findings = secretscan.recorded() + secretscan.scan_files([factory.getbasetemp()], secretscan.needles())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if findings and reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "secret scan: FAILED", red=True)
        for finding in findings:
            reporter.write_line(str(finding))
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
