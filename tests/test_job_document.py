"""The job document, typed inside the project, prints the same JSON as before it was typed.

The documents under ``tests/data/job_documents/`` were printed by ``mediaworker process --json`` on the code
before :mod:`pipelines.document` existed (see :mod:`tests.job_documents`, which also says what is masked and
why). Here the same fixtures are processed again by the real command and compared key by key, in order.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
import subprocess
from typing import Any

import pytest

from pipelines.catalog import Catalog
from pipelines.catalog.leases import fail
from pipelines.config import Settings
from tests.conftest import MEDIAWORKER
from tests.job_documents import CASES, differences, process

# Four cases cover every part of the document: tagged music found again under a second asset id (features,
# loudness, QC, delivery, fingerprint, matches), mono speech at 16 kHz, a video with audio (measured and
# unmeasured renditions, scenes, poster), a video without audio.
COMPARED = ("music_hyperrogue_20s_again", "speech_librivox_16k", "earth_nasa_8s", "city_cc0")

PICTURE_METRICS = {"vmaf", "vmaf_phone", "psnr", "ssim", "mean", "harmonic_mean", "p5", "min"}
METRIC_TOLERANCE = 0.01
"""libvmaf computes VMAF, PSNR and SSIM in floating point with CPU-specific SIMD code: on another processor the
fourth decimal the document shows may move. On one machine, one core, two runs print the same values."""


def _compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``differences``, except picture metrics under ``quality.renditions`` within ``METRIC_TOLERANCE``."""
    found = []
    for difference in differences(before, after):
        path, _, rest = difference.partition(": ")
        leaf = path.rsplit(".", 1)[-1]
        if path.startswith("$.quality.renditions[") and leaf in PICTURE_METRICS:
            old, new = _value(before, path), _value(after, path)
            if isinstance(old, float) and isinstance(new, float) and abs(old - new) <= METRIC_TOLERANCE:
                continue
        found.append(difference)
    return found


def _value(document: Any, path: str) -> Any:
    """The value at a path ``differences`` names (``$.a.b[2].c``)."""
    node = document
    for part in path.removeprefix("$.").replace("[", ".[").split("."):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


@pytest.mark.parametrize("name", COMPARED)
def test_the_document_of_each_fixture_is_unchanged(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    before = json.loads(case.path.read_text(encoding="utf-8"))
    after = process(case, tmp_path / "home")
    assert _compare(before, after) == []


def test_the_comparison_sees_a_renamed_a_dropped_and_a_changed_field() -> None:
    """The check above can fail: a key renamed (``lra_lu`` back to the meter's name), a part dropped, a key
    added, a value changed, a list shortened, an integer become a float, and a metric moved past its tolerance."""
    before = json.loads(CASES["earth_nasa_8s"].path.read_text(encoding="utf-8"))
    assert _compare(before, copy.deepcopy(before)) == []

    def changed(edit: Any) -> list[str]:
        after = copy.deepcopy(before)
        edit(after)
        return _compare(before, after)

    def rename_lra(doc: dict[str, Any]) -> None:
        loudness = doc["quality"]["loudness"]
        doc["quality"]["loudness"] = {("loudness_range_lu" if k == "lra_lu" else k): v for k, v in loudness.items()}

    assert changed(rename_lra) == ["$.quality.loudness.lra_lu: missing", "$.quality.loudness.loudness_range_lu: new key"]
    assert changed(lambda doc: doc.pop("fingerprint")) == ["$.fingerprint: missing"]
    assert changed(lambda doc: doc["hls"].update(extra=1)) == ["$.hls.extra: new key"]
    assert changed(lambda doc: doc.update(error=doc.pop("error"))) == ["$: keys reordered"]
    assert changed(lambda doc: doc["hls"]["renditions"][0].update(bandwidth=1)) != []
    assert changed(lambda doc: doc["video"]["scenes"].pop()) != []
    assert changed(lambda doc: doc["hls"]["renditions"][0].update(segments=2.0)) != []
    assert changed(lambda doc: doc["quality"]["renditions"][0].update(vmaf=doc["quality"]["renditions"][0]["vmaf"]
                                                                       + 0.5)) != []


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MEDIAWORKER, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MEDIAWORKER_HOME": str(home)}, timeout=300)


# The keys each form had before the document was typed (job.py, leases.py and cli.py each built their own).
FAILED_KEYS = ["asset_id", "job_id", "status", "error", "probe", "hls", "features", "quality", "fingerprint",
               "matches", "metadata", "video", "timings_s"]
UNFINISHED_KEYS = ["asset_id", "job_id", "status", "stage", "percent", "error", "probe", "hls", "features", "quality",
                   "fingerprint", "matches", "metadata"]
GIVEN_UP_KEYS = ["asset_id", "job_id", "status", "error", "probe", "hls", "features", "quality", "fingerprint",
                 "matches"]


def test_a_rejected_master_prints_and_keeps_the_failed_form(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    home = tmp_path / "home"
    printed = _cli(home, "process", str(tmp_path / "empty.wav"), "--json")
    assert printed.returncode == 2, printed.stderr
    document = json.loads(printed.stdout)
    assert list(document) == FAILED_KEYS
    assert document["error"]["code"] == "empty_file" and document["status"] == "failed"
    assert (document["hls"], document["matches"], document["timings_s"]) == (None, [], {})
    status = _cli(home, "status", document["job_id"], "--json")
    assert status.returncode == 2 and json.loads(status.stdout) == document


def test_status_of_an_unfinished_job_keeps_its_keys(tmp_path: Path) -> None:
    home = tmp_path / "home"
    catalog = Catalog.open(Settings.from_env({"MEDIAWORKER_HOME": str(home)}).catalog_url)
    try:
        job_id = catalog.create_job(asset_id="song-1", source_uri="/masters/song.flac")
        catalog.start_job(job_id)
        catalog.record_progress(job_id, stage="transcode", percent=42.5)
    finally:
        catalog.dispose()
    status = _cli(home, "status", job_id, "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert list(document)[: len(UNFINISHED_KEYS)] == UNFINISHED_KEYS  # added since: ``video``, ``timings_s``
    assert (document["status"], document["stage"], document["percent"], document["error"]) == (
        "running", "transcode", 42.5, None)
    human = _cli(home, "status", job_id)
    assert human.returncode == 0 and "transcode 42.5%" in human.stdout


def test_a_job_failed_by_the_worker_keeps_its_keys(tmp_path: Path) -> None:
    """``leases.fail`` (a time limit) writes the same form as a job that failed in the pipeline."""
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        job_id = catalog.create_job(asset_id="song-1", source_uri="/masters/song.flac")
        catalog.start_job(job_id)
        document = fail(catalog, job_id, code="time_limit", message="the job ran past the task time limit (60 s)")
        job = catalog.get_job(job_id)
    finally:
        catalog.dispose()
    assert list(document)[: len(GIVEN_UP_KEYS)] == GIVEN_UP_KEYS and list(document) == FAILED_KEYS
    assert document["error"] == {"code": "time_limit", "message": "the job ran past the task time limit (60 s)"}
    assert job is not None and job.document == document and job.status == "failed"
