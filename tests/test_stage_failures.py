"""The error tree has no holes: whatever a stage raises ends its job ``failed`` (or ``retrying``) with a code.

Each stage of the job is made to raise something it is not expected to raise (the stage function replaced in
``pipelines.job``'s namespace; everything else is the real job on a real master), and the job must end failed
with a code in the catalog and in the document, ``mediaworker process`` (run in this process, through
``workers.cli.main``) must exit 2 with the document printed, and nothing may stay published or in the scratch
space. What interrupts a job from outside (a cancel, a time limit, Ctrl-C) must still pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from pipelines.catalog import Catalog
from pipelines.config import Settings
from pipelines.errors import ERROR_CODES, StorageError
import pipelines.job
from pipelines.job import STAGES, JobOutcome, run_job
from pipelines.media.isobmff import Mp4FormatError
from pipelines.storage import ObjectRef
from pipelines.storage.local import LocalStorage
from pipelines.video.package import PlaylistError
from tests.conftest import FIXTURES, files_under, make_media
from workers import cli

SECRET = "s3cr3t-Token-9f2b"
"""Put in every injected exception's text: an internal error's message must not carry it to the catalog."""


@pytest.fixture(scope="module")
def audio_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s of stereo pink noise: every audio stage runs, the fingerprint has items, so the match stage runs."""
    return make_media(tmp_path_factory.mktemp("masters") / "noise.flac", "-f", "lavfi", "-i",
                      "anoisesrc=color=pink:sample_rate=44100:duration=5:amplitude=0.3", "-ac", "2")


VIDEO_MASTER = FIXTURES / "carphone_distorted.mp4"  # 4 s QCIF without audio: scenes and quality run, quickly


def _raises(exc: BaseException) -> Callable[..., Any]:
    def stage(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return stage


@dataclass(frozen=True)
class Fault:
    stage: str
    master: str
    replaced: str
    """The name in ``pipelines.job`` that is made to raise."""
    exc: Exception
    code: str


FAULTS = [
    Fault("fetch", "audio", "fetch_source", RuntimeError(f"boom {SECRET}"), "internal_error"),
    Fault("probe", "audio", "probe_file", ValueError(f"bad {SECRET}"), "internal_error"),
    Fault("analyse", "audio", "decode_audio", ValueError(f"bad {SECRET}"), "internal_error"),
    Fault("scenes", "video", "analyse_video", RuntimeError(f"boom {SECRET}"), "internal_error"),
    Fault("transcode", "audio", "transcode", KeyError(SECRET), "internal_error"),
    Fault("package", "audio", "measure_rendition", PlaylistError("rendition audio-64k has no init segment"),
          "packaging_failed"),
    Fault("package", "video", "build_master_playlist", Mp4FormatError("truncated esds"), "packaging_failed"),
    Fault("package", "audio", "extract_cover_art", OSError(f"boom {SECRET}"), "internal_error"),
    Fault("quality", "video", "measure_video_quality", RuntimeError(f"boom {SECRET}"), "internal_error"),
    Fault("match", "audio", "load_index", RuntimeError(f"boom {SECRET}"), "internal_error"),
    Fault("catalog", "audio", "asset_record", TypeError(f"bad {SECRET}"), "internal_error"),
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MEDIAWORKER_HOME", str(home))
    return home


def _process(master: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """``mediaworker process MASTER --json`` in this process: the exit code and the document it printed."""
    code = cli.main(["process", str(master), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _assert_failed_whole(home: Path, document: dict[str, Any], code: str, *, stage: str | None) -> None:
    """Failed with ``code`` in the document and the catalog alike; nothing published, nothing left behind."""
    assert document["status"] == "failed" and document["error"]["code"] == code, document["error"]
    assert code in ERROR_CODES
    assert SECRET not in json.dumps(document)
    assert document["hls"] is None and document["quality"] is None and document["matches"] == []
    settings = Settings.from_env({"MEDIAWORKER_HOME": str(home)})
    catalog = Catalog.open(settings.catalog_url)
    try:
        job = catalog.get_job(document["job_id"])
        asset = catalog.get_asset(document["asset_id"])
    finally:
        catalog.dispose()
    assert job is not None and (job.status, job.error_code, job.stage) == ("failed", code, stage)
    assert job.document == document and job.finished_at is not None and asset is None
    assert files_under(home / "objects" / settings.output_bucket) == []
    assert list(settings.work_dir.iterdir()) == []


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.stage}-{f.replaced}")
def test_a_stage_that_raises_fails_its_job_with_a_code(
    fault: Fault, audio_master: Path, home: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    assert fault.stage in dict((name, start) for name, start, _ in STAGES)
    monkeypatch.setattr(pipelines.job, fault.replaced, _raises(fault.exc))
    master = audio_master if fault.master == "audio" else VIDEO_MASTER
    with caplog.at_level(logging.WARNING, logger="pipelines.job"):
        exit_code, document = _process(master, capsys)
    assert exit_code == cli.EXIT_FAILED
    # the job row is created after the fetch (the asset id comes from the content): a failed fetch has no stage
    _assert_failed_whole(home, document, fault.code, stage=None if fault.stage == "fetch" else fault.stage)
    if fault.code == "internal_error":
        assert document["error"]["message"] == (f"internal error in the {fault.stage} stage "
                                                f"({type(fault.exc).__name__}); the worker's log has the details")
        [logged] = [r for r in caplog.records if r.exc_info is not None]
        assert f"internal error in the {fault.stage} stage" in logged.getMessage()
        assert logged.exc_info is not None and logged.exc_info[1] is fault.exc  # the traceback, for the operator
    else:
        assert str(fault.exc) in document["error"]["message"]


def test_a_report_that_raises_does_not_fail_the_job(
    audio_master: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report is a view of what the job measured: its failure is recorded, the ladder is published."""
    monkeypatch.setattr(pipelines.job, "render_report", _raises(ValueError("a chart broke")))
    exit_code, document = _process(audio_master, capsys)
    assert exit_code == cli.EXIT_OK and document["status"] == "succeeded"
    assert document["quality"]["report"] is None and document["quality"]["report_error"] == "ValueError: a chart broke"
    assert Path(document["hls"]["master"]).is_file()


class _FlakyStorage(LocalStorage):
    """The local store, failing with ``error`` on the ``fail_at``-th object written."""

    def __init__(self, root: Path, error: Exception, fail_at: int = 4) -> None:
        super().__init__(root)
        self.error, self.fail_at, self.written = error, fail_at, 0

    def put_file(self, path: Path, ref: ObjectRef, *, content_type: str) -> None:
        self.written += 1
        if self.written == self.fail_at:
            raise self.error
        super().put_file(path, ref, content_type=content_type)


@pytest.fixture
def job_env(tmp_path: Path) -> Iterator[tuple[Settings, Catalog]]:
    settings = Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path / "home")})
    catalog = Catalog.open(settings.catalog_url)
    yield settings, catalog
    catalog.dispose()


def _published(settings: Settings) -> list[Path]:
    return list(files_under(settings.objects_dir / settings.output_bucket))


def test_a_publish_that_breaks_halfway_leaves_nothing_published(
    audio_master: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected error on the fourth object written: the three before it are removed, the job fails."""
    real = LocalStorage.put_file
    calls: list[str] = []

    def flaky(self: LocalStorage, path: Path, ref: ObjectRef, *, content_type: str) -> None:
        calls.append(ref.key)
        if len(calls) == 4:
            raise RuntimeError(f"boom {SECRET}")
        real(self, path, ref, content_type=content_type)

    monkeypatch.setattr(LocalStorage, "put_file", flaky)
    exit_code, document = _process(audio_master, capsys)
    assert exit_code == cli.EXIT_FAILED and len(calls) == 4
    _assert_failed_whole(home, document, "internal_error", stage="publish")


def test_a_store_that_fails_while_publishing_leaves_the_job_retrying(
    audio_master: Path, job_env: tuple[Settings, Catalog]
) -> None:
    """A failure a retry may cure: ``retrying`` (the worker runs the job again), and nothing half-published."""
    settings, catalog = job_env
    storage = _FlakyStorage(settings.objects_dir, StorageError("the store refused the write"))
    outcome = run_job(settings, source=str(audio_master), catalog=catalog, storage=storage, will_retry=True)
    assert outcome.transient and outcome.document.status == "retrying"
    assert outcome.document.error is not None and outcome.document.error.code == "storage_error"
    job = catalog.get_job(outcome.job_id)
    assert job is not None and (job.status, job.error_code) == ("retrying", "storage_error")
    assert _published(settings) == []


class Stop(Exception):  # noqa: N818 - like Celery's SoftTimeLimitExceeded and the worker's JobInterrupted
    """An interrupt that is an ``Exception``: the job must let it through when told it is one."""


@pytest.mark.parametrize("replaced", ["transcode", "render_report", "load_index", "asset_record"])
def test_an_interrupt_passes_through_every_stage_and_removes_what_was_published(
    replaced: str, audio_master: Path, job_env: tuple[Settings, Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before publishing (transcode), in the report (which tolerates other errors), after publishing (match,
    catalog): the interrupt reaches the caller, who records the cancel or the time limit, and the ladder is gone."""
    settings, catalog = job_env
    monkeypatch.setattr(pipelines.job, replaced, _raises(Stop()))
    with pytest.raises(Stop):
        run_job(settings, source=str(audio_master), catalog=catalog, storage=LocalStorage(settings.objects_dir),
                interrupts=(Stop,))
    assert _published(settings) == [] and list(settings.work_dir.iterdir()) == []


def test_keyboard_interrupt_passes_through_without_being_declared(
    audio_master: Path, job_env: tuple[Settings, Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, catalog = job_env
    monkeypatch.setattr(pipelines.job, "load_index", _raises(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_job(settings, source=str(audio_master), catalog=catalog, storage=LocalStorage(settings.objects_dir))
    assert _published(settings) == []


def test_an_undeclared_exception_is_an_internal_error_even_if_named_like_an_interrupt(
    audio_master: Path, job_env: tuple[Settings, Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``interrupts``, an ``Exception`` is a failure of the job like any other: recorded, not raised."""
    settings, catalog = job_env
    monkeypatch.setattr(pipelines.job, "transcode", _raises(Stop()))
    outcome: JobOutcome = run_job(settings, source=str(audio_master), catalog=catalog,
                                  storage=LocalStorage(settings.objects_dir))
    assert outcome.document.error is not None and outcome.document.error.code == "internal_error"
    assert not outcome.transient
