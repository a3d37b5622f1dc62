"""Every ffmpeg and ffprobe a whole job starts goes through the one door: hardened, confined, timed by its kind.

A video job (``city_cc0.mp4``: probe, scene decode, poster, transcode, quality pass) and an audio job
(``music_hyperrogue_20s.ogg`` made a FLAC with a cover picture, so that the cover art is copied out too: probe,
audio decode, cover, transcode) run through the real ``mediaworker process`` code in a child Python,
``tests/recorded_run.py``, which records every program started and inspects each child from the kernel's side.

What is checked of every process, not of the Python function:

* it was started by ``subprocess.Popen`` with :func:`~pipelines.media.confined.run_confined` on the stack, and
  nothing was started any other way (``os.exec*``, ``os.system``, ``posix_spawn``…): a call site that
  bypassed the door fails here;
* its argv has ``-protocol_whitelist file``, the ``-format_whitelist`` of that input (the accepted demuxers for
  the master, ``hls,mov`` for a rung read back) and ``-max_pixels`` before every ``-i``;
* its environment held ``PATH`` alone;
* its rlimits in ``/proc/<pid>/limits``: address space, file size (the cover's own cap), no core, and a CPU
  time worth the wall-clock limit of its own kind (a decode's is not a transcode's);
* where the kernel has Landlock: ``NoNewPrivs: 1`` in its ``/proc/<pid>/status`` (the runner sets it only to
  enter the Landlock ruleset, and starts nothing if that fails), and, from inside, that it could not open a
  canary file outside its sandbox.

The last is checked by wrappers given as ``MEDIAWORKER_FFMPEG`` and ``MEDIAWORKER_FFPROBE``: POSIX shell scripts
that try to open the canary — ``/proc/self`` is not readable in the sandbox, so they use only shell builtins —
and exit non-zero if they can, else run the real program through its ELF interpreter (the one program besides
itself that the sandbox lets it execute). A wrapper that found itself unconfined would fail the job, or leave
the cover unpublished. The VMAF ffmpeg (``MEDIAWORKER_VMAF_FFMPEG``, imageio-ffmpeg's) cannot be wrapped so:
it lives outside ``/usr``, and a confined wrapper may neither execute nor read it, which is the sandbox
working. Its process is checked from outside like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
from typing import Any

import pytest

from pipelines.config import ACCEPTED_DEMUXERS, Limits, bundled_ffmpeg
from pipelines.media import sandbox
from pipelines.media.cover_art import MAX_COVER_BYTES
from pipelines.media.runner import cpu_limit_s
from tests.conftest import FIXTURES, make_media

LANDLOCK = sandbox.abi_version()
LIMITS = Limits()  # what the jobs run under: the environment below sets no limit
RECORDER = Path(__file__).with_name("recorded_run.py")
REPO = Path(__file__).resolve().parent.parent
EXPECTED_CALLS = {  # (the function that called run_confined, the call's kind), sorted
    "video": [("_run_decode", "picture"), ("_run_decode", "video_decode"), ("measure_video_quality", "quality"),
              ("probe_file", "probe"), ("transcode", "transcode")],
    "audio": [("decode_audio", "audio_decode"), ("extract_cover_art", "picture"), ("probe_file", "probe"),
              ("transcode", "transcode")],
}


@dataclass(frozen=True)
class RecordedJob:
    document: dict[str, Any]
    starts: list[dict[str, Any]]
    children: list[dict[str, Any]]


@dataclass(frozen=True)
class Programs:
    ffmpeg: str
    ffprobe: str
    vmaf: str
    canary: Path


def _wrapper(path: Path, real: str, canary: Path) -> str:
    """A shell script that runs ``real`` only if it cannot open ``canary``: see the module's docstring."""
    executable = Path(real).resolve()
    [interpreter] = sandbox._interpreters(executable)  # ld-linux: the program it may execute besides itself
    path.write_text(
        "#!/bin/sh\n"
        f"if reason=$( {{ : < {shlex.quote(str(canary))}; }} 2>&1 ); then\n"
        "    echo 'test wrapper: the canary outside the sandbox was readable' >&2; exit 97\n"
        "fi\n"
        'case $reason in *"Permission denied"*) ;; *) echo "test wrapper: $reason" >&2; exit 98;; esac\n'
        f'exec {shlex.quote(str(interpreter))} {shlex.quote(str(executable))} "$@"\n'
    )
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    """The programs the jobs are given: wrappers of Debian's ffmpeg and ffprobe where the kernel has Landlock
    (without it the canary is readable and a wrapper would refuse to run), and imageio-ffmpeg's for VMAF."""
    folder = tmp_path_factory.mktemp("programs")
    canary = folder / "canary.txt"
    canary.write_text("not for a decoder\n")
    vmaf = str(Path(bundled_ffmpeg()).resolve())  # set explicitly: the settings then look nothing up
    if not LANDLOCK:
        return Programs(ffmpeg="ffmpeg", ffprobe="ffprobe", vmaf=vmaf, canary=canary)
    wrappers = {}
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        assert real is not None, f"no {name} on PATH"
        wrappers[name] = _wrapper(folder / name, real, canary)
    return Programs(ffmpeg=wrappers["ffmpeg"], ffprobe=wrappers["ffprobe"], vmaf=vmaf, canary=canary)


def _recorded_job(master: Path, home: Path, programs: Programs, asset_id: str) -> RecordedJob:
    record = home.parent / f"{asset_id}-record.json"
    env = {**os.environ, "MEDIAWORKER_HOME": str(home), "MEDIAWORKER_FFMPEG": programs.ffmpeg,
           "MEDIAWORKER_FFPROBE": programs.ffprobe, "MEDIAWORKER_VMAF_FFMPEG": programs.vmaf}
    result = subprocess.run([sys.executable, str(RECORDER), str(record), "process", str(master), "--asset-id",
                             asset_id, "--json"], capture_output=True, text=True, env=env, cwd=REPO,
                            stdin=subprocess.DEVNULL, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads(record.read_text())
    return RecordedJob(json.loads(result.stdout), recorded["starts"], recorded["children"])


@pytest.fixture(scope="module")
def jobs(programs: Programs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RecordedJob]:
    """The two jobs, run once for the module, on one home."""
    folder = tmp_path_factory.mktemp("door")
    audio = make_media(folder / "music.flac", "-i", str(FIXTURES / "music_hyperrogue_20s.ogg"),
                       "-i", str(FIXTURES / "face_astronaut_nasa.jpg"), "-map", "0:a", "-map", "1",
                       "-c:a", "flac", "-c:v", "copy", "-disposition:v", "attached_pic")
    return {
        "video": _recorded_job(FIXTURES / "city_cc0.mp4", folder / "home", programs, "door-video"),
        "audio": _recorded_job(audio, folder / "home", programs, "door-audio"),
    }


def _inputs_hardened(argv: list[str]) -> list[str]:
    """What is wrong with the hardening of ``argv``'s inputs (nothing: ``[]``)."""
    problems = []
    inputs = [i for i, token in enumerate(argv) if token == "-i"]
    if not inputs:
        problems.append("no -i")
    for i in inputs:
        path = Path(argv[i + 1])
        master = path.name == "master"
        rung = path.name == "index.m3u8" and path.parent.parent.name == "hls"
        formats = ",".join(ACCEPTED_DEMUXERS) if master else "hls,mov"
        expected = ["-protocol_whitelist", "file", "-format_whitelist", formats, "-max_pixels",
                    str(LIMITS.max_pixels)]
        if not (master or rung):
            problems.append(f"{path} is neither the job's master nor a rung's playlist")
        elif argv[i - 6 : i] != expected:
            problems.append(f"before -i {path}: {argv[i - 6 : i]}, not {expected}")
    if sum(argv.count(option) for option in ("-protocol_whitelist", "-format_whitelist", "-max_pixels")) != \
            3 * len(inputs):
        problems.append("a whitelist or -max_pixels outside the hardening of an input")
    return problems


def _limits_expected(child: dict[str, Any]) -> dict[str, list[str]]:
    door = child["door"]
    timeout = LIMITS.timeout_s(door["kind"], duration_s=door["duration_s"])
    file_size = MAX_COVER_BYTES + 1 if door["stage"] == "extract_cover_art" else LIMITS.output_file_mb << 20
    return {
        "Max address space": [str(LIMITS.process_memory_mb << 20)] * 2,
        "Max file size": [str(file_size)] * 2,
        "Max core file size": ["0", "0"],
        "Max cpu time": [str(cpu_limit_s(timeout)), str(cpu_limit_s(timeout) + 5)],
    }


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_every_ffmpeg_went_through_the_door_hardened(kind: str, jobs: dict[str, RecordedJob],
                                                     programs: Programs) -> None:
    job = jobs[kind]
    assert job.document["status"] == "succeeded", job.document["error"]
    # Every program started, started by Popen through the door (the audit hook heard no other start).
    assert [s["event"] for s in job.starts] == ["subprocess.Popen"] * len(job.children), job.starts
    assert [s["args"][1] for s in job.starts] == [str(c["argv"]) for c in job.children]
    outside = [c["argv"][:2] for c in job.children if c["door"] is None]
    assert not outside, f"started without run_confined: {outside}"
    assert {c["argv"][0] for c in job.children} <= {programs.ffmpeg, programs.ffprobe, programs.vmaf}
    # Every call site of the job, each with the time limit of its kind.
    calls = sorted((c["door"]["stage"], c["door"]["kind"]) for c in job.children)
    assert calls == EXPECTED_CALLS[kind]
    if kind == "audio":
        assert job.document["metadata"]["cover_art"], job.document["metadata"]  # the picture call ran, and passed
    for child in job.children:
        where = f"{child['door']['stage']}: {shlex.join(child['argv'])}"
        assert _inputs_hardened(child["argv"]) == [], where
        assert child["env"] == ["PATH"], where
        limits = {name: child["limits"][name] for name in _limits_expected(child)}
        assert limits == _limits_expected(child), where


@pytest.mark.skipif(LANDLOCK == 0, reason="this kernel has no Landlock")
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_every_ffmpeg_ran_confined(kind: str, jobs: dict[str, RecordedJob], programs: Programs) -> None:
    assert _status_of_self()["NoNewPrivs"] == "0"  # else the children's flag would prove nothing
    assert programs.canary.read_text()  # readable here, outside any sandbox
    job = jobs[kind]
    assert job.document["status"] == "succeeded", job.document["error"]
    for child in job.children:
        assert child["status"]["NoNewPrivs"] == "1", shlex.join(child["argv"])
    # Every ffmpeg and ffprobe but the VMAF one was a wrapper, which ran the real program only once the canary
    # had been refused to it: the job could not have succeeded (nor published its cover) otherwise.
    wrapped = {c["argv"][0] for c in job.children} - {programs.vmaf}
    assert wrapped == {programs.ffmpeg, programs.ffprobe}
    assert all(Path(program).read_text().startswith("#!/bin/sh\n") for program in wrapped)


def _status_of_self() -> dict[str, str]:
    lines = Path("/proc/self/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}
