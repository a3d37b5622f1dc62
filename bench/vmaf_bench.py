"""VMAF benchmark: the quality pass's time as a ratio of the encode's, for a 1080p master's ladder.

The master and its default ladder come from ``ladder_bench.py`` (the cached synthetic 1080p30 master with
temporal noise, five H.264 rungs and one AAC rendition, encoded by :func:`pipelines.video.transcode.transcode`).
Each repeat encodes the ladder, then runs :func:`pipelines.video.quality.measure_video_quality` over its video
rungs once per ``--subsample`` value, as the job's quality stage does. Reported: median wall and user+sys CPU
time of each, the ratios quality/encode (goal <= 0.5 at the default subsampling), and the rung VMAFs (mean,
phone model, PSNR, SSIM) measured at each subsampling. The figures go to stdout and
``bench/results/vmaf.json``.

    .venv/bin/python bench/vmaf_bench.py [--duration S] [--repeat N] [--noise N] [--subsample N [N ...]]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
import json
import os
from pathlib import Path
import resource
import statistics
import tempfile
import time
from typing import TypeVar

from ladder_bench import BENCH_DIR, ENCODER, FFPROBE, LIMITS, ffmpeg_version, layout, make_master, run_project

from pipelines.config import QualitySettings
from pipelines.media.probe import probe_file
from pipelines.video.ladder import LadderPolicy, select_ladder
from pipelines.video.package import measure_rendition
from pipelines.video.quality import RenditionQuality, distorted_rung, measure_video_quality
from pipelines.video.transcode import EncodedRendition

RESULTS_FILE = BENCH_DIR / "results" / "vmaf.json"
GOAL = 0.5
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[T, float, float]:
    """``action()``'s result, its wall seconds and its children's user+sys CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = action()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    default = QualitySettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="master duration in seconds (default 20)")
    parser.add_argument("--repeat", type=int, default=1, help="encodes, each followed by the quality passes (1)")
    parser.add_argument("--noise", type=int, default=2, help="temporal noise strength of the master (default 2)")
    parser.add_argument("--subsample", type=int, nargs="+", default=[default.subsample],
                        help=f"subsamplings to time (default: the configured default, {default.subsample})")
    opts = parser.parse_args()

    master = make_master(opts.duration, opts.noise)
    probe = probe_file(master, ffprobe=FFPROBE, limits=LIMITS)
    ladder = select_ladder(probe, LadderPolicy())
    master.read_bytes()  # warm the page cache
    nproc, load_before = len(os.sched_getaffinity(0)), os.getloadavg()
    print(f"master {master.name}: {probe.duration_s:g} s; rungs {', '.join(r.name for r in ladder.video)}; "
          f"preset {ENCODER.x264_preset}; libvmaf threads {default.threads}; nproc {nproc}", flush=True)

    encode_wall: list[float] = []
    encode_cpu: list[float] = []
    walls: dict[int, list[float]] = {n: [] for n in opts.subsample}
    cpus: dict[int, list[float]] = {n: [] for n in opts.subsample}
    rungs: dict[int, list[RenditionQuality]] = {}
    for i in range(opts.repeat):
        with tempfile.TemporaryDirectory(prefix="vmaf-bench-") as tmp:
            out_dir, work = Path(tmp) / "hls", Path(tmp) / "quality"
            out_dir.mkdir()
            work.mkdir()
            _, wall, cpu = timed(partial(run_project, master, probe, ladder, out_dir))
            found = layout(out_dir)
            if set(found) != {r.name for r in ladder.video} | {r.name for r in ladder.audio}:
                raise SystemExit(f"the encode wrote {found}, not the whole ladder")
            encode_wall.append(wall)
            encode_cpu.append(cpu)
            print(f"  run {i + 1} encode          wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
            distorted = [distorted_rung(out_dir, measure_rendition(out_dir, EncodedRendition(r.name, "video",
                                                                                              Path(r.name))))
                         for r in ladder.video]
            for n in opts.subsample if i % 2 == 0 else opts.subsample[::-1]:
                settings = QualitySettings(ffmpeg=default.ffmpeg, subsample=n, threads=default.threads)
                result, wall, cpu = timed(partial(
                    measure_video_quality, master, probe, distorted, work_dir=work,
                    ladder_frame_rate=ladder.frame_rate, settings=settings, limits=LIMITS))
                rungs[n] = result
                walls[n].append(wall)
                cpus[n].append(cpu)
                print(f"  run {i + 1} quality n={n:<4}  wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)

    enc_wall, enc_cpu = statistics.median(encode_wall), statistics.median(encode_cpu)
    load_after = os.getloadavg()
    print(f"\n{ffmpeg_version()} (encode); {default.ffmpeg.rsplit('/', 1)[-1]} (quality); nproc {nproc}; "
          f"load avg {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"encode median: wall {enc_wall:.2f} s, cpu {enc_cpu:.2f} s")
    summary = {}
    for n in opts.subsample:
        wall_ratio = statistics.median(walls[n]) / enc_wall
        cpu_ratio = statistics.median(cpus[n]) / enc_cpu
        verdict = "met" if wall_ratio <= GOAL else "MISSED"
        print(f"subsample {n:>3}: quality/encode wall {wall_ratio:.3f} (goal <= {GOAL}: {verdict}), "
              f"cpu {cpu_ratio:.3f}")
        for rung in rungs[n]:
            doc = rung.to_document()
            print(f"    {rung.name:>6} {rung.bits_per_s / 1e3:7.0f} kbit/s  VMAF {doc['vmaf']:6.2f}  "
                  f"phone {doc['vmaf_phone']:6.2f}  PSNR {doc['psnr']:6.2f} dB  SSIM {doc['ssim']:.4f}  "
                  f"p5 {doc['stats']['vmaf']['p5']:6.2f}  frames {rung.frames_scored}  score {rung.score}"
                  f"{'  WASTED BITS' if rung.wasted_bits else ''}")
        summary[n] = {
            "wall_s": walls[n], "cpu_s": cpus[n], "wall_ratio": wall_ratio, "cpu_ratio": cpu_ratio,
            "rungs": [{k: v for k, v in r.to_document().items() if k != "segments"} | {"bits_per_s": r.bits_per_s}
                      for r in rungs[n]],
        }

    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": nproc,
        "encode_ffmpeg": ffmpeg_version(),
        "quality_ffmpeg": default.ffmpeg,
        "load_avg_1m": {"before": load_before[0], "after": load_after[0]},
        "master": {"file": master.name, "duration_s": probe.duration_s, "noise": opts.noise},
        "encode": {"wall_s": encode_wall, "cpu_s": encode_cpu, "x264_preset": ENCODER.x264_preset},
        "libvmaf_threads": default.threads,
        "goal": GOAL,
        "subsample": summary,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
