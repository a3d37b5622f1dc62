"""Ladder benchmark: the project's one-process transcode against a hand-written single command and a naive loop.

A synthetic 1080p30 master (``testsrc2`` with temporal noise, so the encoder works roughly as on natural video,
plus a stereo pink-noise track) is made once and cached under ``bench/.cache/``. Its default ladder (5 H.264
rungs and one AAC rendition) is then produced three ways, in an interleaved order across repeats:

* ``project``: :func:`pipelines.video.transcode.transcode` with the default ``EncoderSettings`` and ``Limits``;
* ``single``: one hand-written ffmpeg argv, one decode ``split`` into every rung: the practical limit;
* ``naive``: one ffmpeg per rung run one after the other, each decoding the master itself.

Reported: median wall time, median user+sys CPU time of the children, the ratios project/single (goal
<= 1.15) and project/naive (goal <= 0.75). The figures go to stdout and to ``bench/results/ladder.json``.

    .venv/bin/python bench/ladder_bench.py [--duration S] [--repeat N] [--noise N]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import resource
import statistics
import subprocess
import tempfile
import time

from pipelines.config import EncoderSettings, Limits
from pipelines.media.probe import Probe, probe_file
from pipelines.video.ladder import Ladder, LadderPolicy, VideoRung, select_ladder
from pipelines.video.transcode import transcode

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_FILE = BENCH_DIR / "results" / "ladder.json"
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
GOALS = {"project/single": 1.15, "project/naive": 0.75}
ENCODER = EncoderSettings()
LIMITS = Limits()

Method = Callable[[Path, Probe, Ladder, Path], None]


def make_master(duration_s: float, noise: int) -> Path:
    """The cached 1080p30 master for ``duration_s`` seconds, made (libx264 crf 18, AAC stereo) when missing."""
    path = CACHE_DIR / f"master_1080p30_{duration_s:g}s_noise{noise}.mp4"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    video = f"testsrc2=size=1920x1080:rate=30:duration={duration_s:g},noise=alls={noise}:allf=t"
    audio = f"anoisesrc=color=pink:amplitude=0.05:sample_rate=48000:duration={duration_s:g}"
    print(f"making master {path.name} ...", flush=True)
    subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
         "-c:v", "libx264", "-preset", "superfast", "-crf", "18", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-ac", "2", "-movflags", "+faststart", str(partial)],
        check=True,
    )
    partial.rename(path)
    return path


def hls_opts(name: str, *, independent: bool) -> list[str]:
    """The project's HLS fMP4 VOD muxer options, written out by hand."""
    opts = ["-f", "hls", "-hls_time", f"{ENCODER.segment_s:g}", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", f"{name}/segment_%05d.m4s", "-map_metadata", "-1"]
    return opts + (["-hls_flags", "independent_segments"] if independent else []) + [f"{name}/index.m3u8"]


def video_opts(rung: VideoRung, frame_rate: float) -> list[str]:
    """libx264 at the rung's VBV-capped rate, a fixed GOP of one segment, no scene-cut keyframes."""
    gop = str(max(1, round(frame_rate * ENCODER.segment_s)))
    return ["-c:v", "libx264", "-preset", ENCODER.x264_preset, "-profile:v", rung.profile, "-pix_fmt", "yuv420p",
            "-b:v", f"{rung.bitrate_kbps}k", "-maxrate", f"{rung.maxrate_kbps}k", "-bufsize", f"{rung.bufsize_kbit}k",
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
            "-force_key_frames", f"expr:gte(t,n_forced*{ENCODER.segment_s:g})", "-threads", str(ENCODER.threads),
            *hls_opts(rung.name, independent=True)]


def audio_opts(ladder: Ladder) -> list[str]:
    rung = ladder.audio[0]
    return ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{rung.bitrate_kbps}k", "-ac", str(rung.channels),
            "-ar", str(rung.sample_rate), *hls_opts(rung.name, independent=False)]


def scale_chain(rung: VideoRung) -> str:
    return f"scale={rung.width}:{rung.height},setsar=1,format=yuv420p"


def ffmpeg(args: list[str], out_dir: Path) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   cwd=out_dir, stdin=subprocess.DEVNULL, check=True)


def run_project(master: Path, probe: Probe, ladder: Ladder, out_dir: Path) -> None:
    transcode(master, probe, ladder, out_dir, encoder=ENCODER, limits=LIMITS, ffmpeg_bin=FFMPEG)


def run_single(master: Path, probe: Probe, ladder: Ladder, out_dir: Path) -> None:
    assert ladder.frame_rate is not None
    n = len(ladder.video)
    graph = f"[0:v:0]split={n}" + "".join(f"[v{i}]" for i in range(n))
    graph += "".join(f";[v{i}]{scale_chain(rung)}[o{i}]" for i, rung in enumerate(ladder.video))
    args = ["-i", str(master), "-filter_complex", graph]
    for i, rung in enumerate(ladder.video):
        args += ["-map", f"[o{i}]", *video_opts(rung, ladder.frame_rate)]
    make_dirs(ladder, out_dir)
    ffmpeg(args + audio_opts(ladder), out_dir)


def run_naive(master: Path, probe: Probe, ladder: Ladder, out_dir: Path) -> None:
    assert ladder.frame_rate is not None
    make_dirs(ladder, out_dir)
    for rung in ladder.video:
        ffmpeg(["-i", str(master), "-map", "0:v:0", "-vf", scale_chain(rung), *video_opts(rung, ladder.frame_rate)],
               out_dir)
    ffmpeg(["-i", str(master), *audio_opts(ladder)], out_dir)


METHODS: dict[str, Method] = {"project": run_project, "single": run_single, "naive": run_naive}


def make_dirs(ladder: Ladder, out_dir: Path) -> None:
    for name in [r.name for r in ladder.video] + [r.name for r in ladder.audio]:
        (out_dir / name).mkdir(parents=True, exist_ok=True)


def layout(out_dir: Path) -> dict[str, int]:
    """Rung folder -> segment count, for folders holding a finished playlist whose files all exist."""
    found: dict[str, int] = {}
    for playlist in sorted(out_dir.glob("*/index.m3u8")):
        lines = playlist.read_text().splitlines()
        segments = [line for line in lines if line and not line.startswith("#")]
        complete = "#EXT-X-ENDLIST" in lines and (playlist.parent / "init.mp4").is_file()
        if complete and segments and all((playlist.parent / s).is_file() for s in segments):
            found[playlist.parent.name] = len(segments)
    return found


def measure(method: Method, master: Path, probe: Probe, ladder: Ladder) -> tuple[float, float, dict[str, int]]:
    """Wall seconds, children's user+sys CPU seconds and the output layout of one run."""
    with tempfile.TemporaryDirectory(prefix="ladder-bench-") as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        method(master, probe, ladder, Path(tmp))
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, layout(Path(tmp))


def ffmpeg_version() -> str:
    out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="master duration in seconds (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (default 3)")
    parser.add_argument("--noise", type=int, default=2, help="temporal noise strength of the master (default 2)")
    opts = parser.parse_args()

    master = make_master(opts.duration, opts.noise)
    probe = probe_file(master, ffprobe=FFPROBE, limits=LIMITS)
    ladder = select_ladder(probe, LadderPolicy())
    expected = {r.name for r in ladder.video} | {r.name for r in ladder.audio}
    master.read_bytes()  # warm the page cache so the first run reads it as the others do
    nproc, load_before = len(os.sched_getaffinity(0)), os.getloadavg()
    print(f"master {master.name}: {probe.duration_s:g} s, {(probe.video_bit_rate or 0) / 1e6:.1f} Mbit/s video; "
          f"ladder {', '.join(sorted(expected))}; preset {ENCODER.x264_preset}; nproc {nproc}", flush=True)

    names = list(METHODS)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    layouts: dict[str, dict[str, int]] = {}
    for i in range(opts.repeat):
        for name in names if i % 2 == 0 else names[::-1]:
            wall, cpu, found = measure(METHODS[name], master, probe, ladder)
            print(f"  run {i + 1} {name:<8} wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
            if set(found) != expected or layouts.setdefault(name, found) != found:
                raise SystemExit(f"{name} produced {found}, expected complete rungs {sorted(expected)}")
            walls[name].append(wall)
            cpus[name].append(cpu)
    if len({json.dumps(found, sort_keys=True) for found in layouts.values()}) != 1:
        raise SystemExit(f"methods disagree on the rungs they wrote: {layouts}")

    wall_med = {name: statistics.median(walls[name]) for name in names}
    cpu_med = {name: statistics.median(cpus[name]) for name in names}
    ratios = {key: wall_med["project"] / wall_med[key.split("/")[1]] for key in GOALS}
    version = ffmpeg_version()

    load_after = os.getloadavg()
    print(f"\n{version}; nproc {nproc}; {opts.repeat} repeats; load avg {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'method':<9}{'wall median s':>14}{'cpu median s':>14}{'cpu/wall':>10}  wall runs s")
    for name in names:
        runs = " ".join(f"{w:.2f}" for w in walls[name])
        print(f"{name:<9}{wall_med[name]:>14.2f}{cpu_med[name]:>14.2f}{cpu_med[name] / wall_med[name]:>10.2f}  {runs}")
    for key, goal in GOALS.items():
        verdict = "met" if ratios[key] <= goal else "MISSED"
        print(f"{key:<15} {ratios[key]:.3f}  (goal <= {goal:.2f}: {verdict})")

    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": nproc,
        "ffmpeg_version": version,
        "load_avg_1m": {"before": load_before[0], "after": load_after[0]},
        "master": {"file": master.name, "duration_s": probe.duration_s, "noise": opts.noise,
                   "video_bit_rate": probe.video_bit_rate, "video": asdict(probe.video) if probe.video else None},
        "rung_segments": dict(sorted(layouts["project"].items())),
        "encoder": {"x264_preset": ENCODER.x264_preset, "segment_s": ENCODER.segment_s, "threads": ENCODER.threads},
        "repeat": opts.repeat,
        "methods": {name: {"wall_s": walls[name], "cpu_s": cpus[name], "wall_median_s": wall_med[name],
                           "cpu_median_s": cpu_med[name]} for name in names},
        "ratios": ratios,
        "goals": GOALS,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
