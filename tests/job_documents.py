"""The job documents of the fixture masters as ``mediaworker process --json`` prints them, normalised.

``tests/data/job_documents/`` keeps one document per case below, made on the code before the job's results
became typed (``pipelines/document.py``); ``tests/test_job_document.py`` processes fixtures again and compares.
Write them again (only when the JSON is meant to change, and say so in the commit) with::

    .venv/bin/python -m tests.job_documents            # every case
    .venv/bin/python -m tests.job_documents CASE …     # some

Each job runs on one CPU (its affinity set to one core). libx264 with several threads and a VBV cap does not
write the same bytes twice (seen: ``city_cc0`` rungs differing by a few bytes and 0.02 VMAF between two runs on
two cores); on one core two runs print the same text. What :func:`normalise` masks, and why (everything else is
compared exactly, floats included, except what :func:`differences` allows):

- ``job_id``: a random UUID per job.
- the job id's first 8 characters inside ``hls.prefix`` and every published URI (``…-<job8>/…``): the prefix
  is keyed by the job so that a rerun never overwrites a ladder players may be streaming.
- the ``MEDIAWORKER_HOME`` folder at the start of every local path (a temporary folder per run).
- the values of ``timings_s`` (wall-clock seconds per stage); its keys, the stages that ran, are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import subprocess
import sys
import tempfile
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "media_fixtures"
DOCUMENTS = Path(__file__).resolve().parent / "data" / "job_documents"
MEDIAWORKER = str(Path(sys.executable).with_name("mediaworker"))


@dataclass(frozen=True)
class Case:
    """Process ``fixtures`` in order in one fresh home; the document of the last one is the case's."""

    name: str
    fixtures: tuple[str, ...]

    @property
    def path(self) -> Path:
        return DOCUMENTS / f"{self.name}.json"


CASES = {case.name: case for case in (
    Case("city_cc0", ("city_cc0.mp4",)),  # video without audio
    Case("earth_nasa_8s", ("earth_nasa_8s.mp4",)),  # video with (silent) audio
    Case("carphone_pristine", ("carphone_pristine.mp4",)),
    Case("carphone_distorted", ("carphone_distorted.mp4",)),
    Case("music_hyperrogue_20s", ("music_hyperrogue_20s.ogg",)),  # tagged music
    Case("music_hyperrogue_desert_30s", ("music_hyperrogue_desert_30s.ogg",)),
    Case("music_hyperrogue_jungle_30s", ("music_hyperrogue_jungle_30s.ogg",)),
    Case("speech_librivox_16k", ("speech_librivox_16k.flac",)),  # speech, mono, 16 kHz
    # The same master under a second asset id: its document lists the first as a match.
    Case("music_hyperrogue_20s_again", ("music_hyperrogue_20s.ogg", "music_hyperrogue_20s.ogg")),
)}


def process(case: Case, home: Path) -> dict[str, Any]:
    """Run ``mediaworker process --json`` on each of the case's fixtures in ``home``; the last document,
    normalised. Raises ``AssertionError`` when a job does not succeed."""
    document: dict[str, Any] = {}
    for number, fixture in enumerate(case.fixtures):
        asset_args = ["--asset-id", f"{case.name}-{number}"] if len(case.fixtures) > 1 else []
        proc = subprocess.run(
            [MEDIAWORKER, "process", str(FIXTURES / fixture), "--json", *asset_args],
            capture_output=True, text=True, env={**os.environ, "MEDIAWORKER_HOME": str(home)},
            stdin=subprocess.DEVNULL, timeout=900, preexec_fn=_one_cpu,
        )
        assert proc.returncode == 0, f"{fixture}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        document = json.loads(proc.stdout)
    return normalise(document, home)


def _one_cpu() -> None:
    """In the child before it runs the job: keep it on one core (see the module's docstring)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def normalise(document: dict[str, Any], home: Path) -> dict[str, Any]:
    """``document`` with the volatile values masked (see the module's docstring)."""
    job_id = str(document["job_id"])
    job_in_prefix = re.compile(rf"-{re.escape(job_id[:8])}(?=/|$)")
    home_text = str(home)

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item) for item in value]
        if isinstance(value, str):
            value = value.replace(job_id, "<job_id>").replace(home_text, "<home>")
            return job_in_prefix.sub("-<job>", value)
        return value

    masked: dict[str, Any] = mask(document)
    masked["timings_s"] = {stage: "<seconds>" for stage in document["timings_s"]}
    return masked


def differences(before: Any, after: Any, path: str = "$") -> list[str]:
    """Where ``after`` differs from ``before``: keys added or missing, values or types changed, list lengths.

    ``1`` and ``1.0`` differ (the JSON text differs); so do ``true`` and ``1``."""
    if type(before) is not type(after):
        return [f"{path}: {type(before).__name__} {before!r:.80} became {type(after).__name__} {after!r:.80}"]
    if isinstance(before, dict):
        found = [f"{path}.{key}: missing" for key in before if key not in after]
        found += [f"{path}.{key}: new key" for key in after if key not in before]
        if [key for key in before if key in after] != [key for key in after if key in before]:
            found.append(f"{path}: keys reordered")
        for key in before:
            if key in after:
                found += differences(before[key], after[key], f"{path}.{key}")
        return found
    if isinstance(before, list):
        if len(before) != len(after):
            return [f"{path}: {len(before)} items became {len(after)}"]
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in differences(b, a, f"{path}[{i}]")]
    return [] if before == after else [f"{path}: {before!r:.80} became {after!r:.80}"]


def main(names: Sequence[str]) -> int:
    DOCUMENTS.mkdir(parents=True, exist_ok=True)
    for name in names or list(CASES):
        case = CASES[name]
        with tempfile.TemporaryDirectory(prefix="jobdoc-") as home:
            document = process(case, Path(home))
        case.path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{case.path.relative_to(REPO)}: {case.path.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
