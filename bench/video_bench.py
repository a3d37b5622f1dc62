"""Video scene analysis speed: the whole analysis against its own decode alone, in the same run.

For each master (the two video fixtures, and with ``--hd-seconds`` a cached 1080p30 ``testsrc2`` master):

* ``project``: :func:`pipelines.video.analysis.analyse_video` — the small decode, cuts, black, faces, sprite,
  thumbnail track, and the poster's second decode;
* ``decode``: the same ffmpeg command (:func:`build_analysis_decode_cmd`) with its frames read and dropped —
  the floor of any analysis that looks at every frame at that size.

Each runs ``--repeat`` times, interleaved. Reported: the median wall time and median CPU time (user + sys of
this process and its children: the machine may be shared, CPU time is the steadier figure), the speed in
× real time by each, and the ratio project/decode. Results go to stdout and ``bench/results/video.json``.

    .venv/bin/python bench/video_bench.py [--repeat N] [--hd-seconds S]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
import json
from pathlib import Path
import resource
import statistics
import subprocess
import tempfile
import time

from pipelines.config import Limits
from pipelines.media.confined import run_confined
from pipelines.media.probe import Probe, probe_file
from pipelines.video.analysis import VideoAnalysisSettings, analyse_video, analysis_geometry, build_analysis_decode_cmd

BENCH_DIR = Path(__file__).resolve().parent
FIXTURES = BENCH_DIR.parent / "media_fixtures"
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_FILE = BENCH_DIR / "results" / "video.json"
LIMITS = Limits()


def hd_master(seconds: float) -> Path:
    """A cached 1920x1080 30 fps H.264 master of ``testsrc2`` with temporal noise, cut every 5 s to smptebars
    and back so that the cut and face paths run too."""
    path = CACHE_DIR / f"video_1080p30_{seconds:g}s.mp4"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        graph = (f"testsrc2=size=1920x1080:rate=30:duration={seconds:g},noise=alls=2:allf=t[a];"
                 f"smptebars=size=1920x1080:rate=30:duration={seconds:g}[b];"
                 "[a][b]blend=all_expr='if(lt(mod(T,10),5),A,B)',format=yuv420p")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-c:v", "libx264",
                        "-preset", "superfast", "-crf", "20", str(path)], check=True)
    return path


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _project(master: Path, probe: Probe) -> None:
    with tempfile.TemporaryDirectory() as out:
        analyse_video(master, probe, Path(out), ffmpeg="ffmpeg", limits=LIMITS)


def _decode(master: Path, probe: Probe) -> None:
    assert probe.video is not None
    width, height, rate = analysis_geometry(probe, VideoAnalysisSettings())
    call = build_analysis_decode_cmd(master, probe.video.index, width=width, height=height, frame_rate=rate,
                                     duration_s=probe.duration_s, ffmpeg="ffmpeg")
    run_confined(call, limits=LIMITS, on_stdout=lambda data: None)


METHODS: dict[str, Callable[[Path, Probe], None]] = {"project": _project, "decode": _decode}


def measure(master: Path, repeat: int) -> dict[str, object]:
    probe = probe_file(master, ffprobe="ffprobe", limits=LIMITS)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in METHODS}
    for round_ in range(repeat):
        order = list(METHODS) if round_ % 2 == 0 else list(reversed(METHODS))
        for name in order:
            wall, cpu = time.monotonic(), _cpu_s()
            METHODS[name](master, probe)
            times[name].append((time.monotonic() - wall, _cpu_s() - cpu))
    result: dict[str, object] = {"master": master.name, "duration_s": probe.duration_s}
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        result[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                        "x_realtime_wall": round(probe.duration_s / wall, 1),
                        "x_realtime_cpu": round(probe.duration_s / cpu, 1)}
    project, decode = result["project"], result["decode"]
    assert isinstance(project, dict) and isinstance(decode, dict)
    result["project/decode_wall"] = round(project["wall_s"] / decode["wall_s"], 2)
    result["project/decode_cpu"] = round(project["cpu_s"] / decode["cpu_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hd-seconds", type=float, default=0.0, help="also a cached 1080p30 master this long")
    args = parser.parse_args()
    masters = [FIXTURES / "earth_nasa_8s.mp4", FIXTURES / "city_cc0.mp4"]
    if args.hd_seconds > 0:
        masters.append(hd_master(args.hd_seconds))
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    results = [measure(master, args.repeat) for master in masters]
    for entry in results:
        print(json.dumps(entry))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                        "load_average_1min": load, "repeat": args.repeat,
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
