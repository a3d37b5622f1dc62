"""Report benchmark: what the quality report costs a long master, against the loudness meter in the same run.

The spectrogram sink rides on the job's one analysis decode, so its cost is measured as a ratio to another sink
of that decode, :class:`pipelines.audio.loudness.LoudnessMeter`, fed the same blocks in the same process (CPU time of
the process; goal: the sink costs at most 15 % of the meter). The sink is then fed ``--hours`` of audio (default
10) to show that its memory stays bounded: its peak Python allocation (``tracemalloc``) over 1 hour and over
``--hours`` hours (goal: both within four times its column buffer, 512 columns of 513 float64 bins, 2.1 MB:
the buffer, the chunk being analysed and the copies ``finish`` makes; the final array holds half to all of the
buffer, so the peak varies within that bound with the length but does not grow with it). Last, a report for a
master of ``--hours`` hours (loudness series of one value per second, a full spectrogram) is rendered: its
time as a ratio to rendering a 3-minute one, and its size.

The audio is a 10 s block of stereo noise at 44.1 kHz fed again and again (the sinks' work does not depend on
the content). Figures go to stdout and to ``bench/results/report.json``.

    .venv/bin/python bench/report_bench.py [--hours H] [--baseline-minutes M]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
import json
from pathlib import Path
import time
import tracemalloc
from typing import Any

import numpy as np

from pipelines.audio.integrity import BitDepthReport, SpectrumReport
from pipelines.audio.loudness import LoudnessMeter, LoudnessReport
from pipelines.audio.qc import AudioQCReport
from pipelines.audio.spectrogram import Spectrogram, SpectrogramSink
from pipelines.document import Quality
from pipelines.media.probe import Probe
from pipelines.report.page import render_report

RATE = 44100
BLOCK_S = 10
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "report.json"


def noise_block() -> np.ndarray:
    rng = np.random.default_rng(1)
    white = rng.standard_normal((RATE * BLOCK_S, 2))
    return (0.1 * np.cumsum(white, axis=0) / np.sqrt(np.arange(1, len(white) + 1))[:, None]
            + 0.05 * white).astype(np.float32)


def feed_seconds(sink: Any, block: np.ndarray, seconds: float) -> float:
    """Feed ``seconds`` of audio in 4096-frame pieces (smaller than the decode's pipe reads); return the CPU
    time this process spent (the machine may be busy with other work: wall time would measure that too)."""
    started = time.process_time()
    for _ in range(round(seconds / BLOCK_S)):
        for start in range(0, len(block), 4096):
            sink.feed(block[start:start + 4096])
    sink.finish()
    return time.process_time() - started


def peak_memory(block: np.ndarray, seconds: float) -> int:
    tracemalloc.start()
    sink = SpectrogramSink(rate=RATE, channels=2)
    feed_seconds(sink, block, seconds)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def render_time(seconds: float) -> tuple[float, int]:
    rng = np.random.default_rng(2)
    count = int(seconds)
    series: tuple[float | None, ...] = tuple(round(float(v), 1) for v in -16.0 + 2.0 * rng.standard_normal(count))
    loudness = LoudnessReport(duration_s=seconds, integrated_lufs=-16.0, loudness_range_lu=6.0, true_peak_dbtp=-1.5,
                              sample_peak_dbfs=-1.6, true_peak_per_channel_dbtp=(-1.5, -1.7), max_momentary_lufs=-9.0,
                              max_short_term_lufs=-11.0, series_interval_s=1.0, momentary_lufs=series,
                              short_term_lufs=series)
    columns = 512 if seconds > 60 else max(2, count)
    levels = (-70.0 + 12.0 * rng.standard_normal((513, columns))).astype(np.float32)
    spectrogram = Spectrogram(rate=RATE, bin_hz=RATE / 1024, column_s=seconds / columns, levels_db=levels)
    spectrum = SpectrumReport(cutoff_hz=16000.0, cliff_db=40.0, nyquist_hz=22050.0, verdict="suspected_lossy",
                              note="a cliff at 16.0 kHz")
    qc = AudioQCReport(duration_s=seconds, channels=2, rms_dbfs=-20.0, clipped_samples=0, clip_events=0,
                       clip_times_s=(), dc_offset=(0.0, 0.0), head_silence_s=0.0, tail_silence_s=0.0,
                       internal_silences=(), internal_silence_count=0, digital_silence_s=0.0, noise_floor_dbfs=-70.0,
                       correlation=0.5, anti_phase_fraction=0.0, mono_downmix_loss_db=-1.0, balance_db=0.0,
                       phase="stereo", spectrum=spectrum,
                       bit_depth=BitDepthReport(declared_bits=None, effective_bits=None, verdict="not_integer_pcm",
                                                note="a lossy source"))
    probe = Probe(kind="audio", duration_s=seconds, container="flac", size_bytes=0, bit_rate=None, streams=())
    started = time.process_time()
    page = render_report(asset_id="bench", job_id="bench", probe=probe, quality=Quality(loudness=loudness, audio_qc=qc),
                         renditions=[], spectrogram=spectrogram)
    return time.process_time() - started, len(page.encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=10.0, help="the long master (default 10 hours)")
    parser.add_argument("--baseline-minutes", type=float, default=20.0,
                        help="audio fed to the sink and the meter for the cost ratio (default 20 minutes)")
    args = parser.parse_args()
    block = noise_block()
    baseline_s = args.baseline_minutes * 60
    sink_s, meter_s = [], []
    for _ in range(2):  # interleaved: spread background noise over both
        sink_s.append(feed_seconds(SpectrogramSink(rate=RATE, channels=2), block, baseline_s))
        meter_s.append(feed_seconds(LoudnessMeter(rate=RATE, channels=2), block, baseline_s))
    cost_ratio = min(sink_s) / min(meter_s)
    memory_1h = peak_memory(block, 3600)
    memory_long = peak_memory(block, args.hours * 3600)
    short_render, short_bytes = render_time(180)
    long_render, long_bytes = render_time(args.hours * 3600)
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "spectrogram_sink_s_per_hour": round(min(sink_s) / baseline_s * 3600, 3),
        "loudness_meter_s_per_hour": round(min(meter_s) / baseline_s * 3600, 3),
        "sink_over_meter": round(cost_ratio, 4),
        "sink_peak_bytes_1h": memory_1h,
        f"sink_peak_bytes_{args.hours:g}h": memory_long,
        "render_s_3min": round(short_render, 3), "render_s_long": round(long_render, 3),
        "render_long_over_3min": round(long_render / short_render, 2),
        "page_bytes_3min": short_bytes, "page_bytes_long": long_bytes,
    }
    for key, value in results.items():
        print(f"{key:>28}: {value}")
    print(f"goal sink/meter <= 0.15: {'met' if cost_ratio <= 0.15 else 'MISSED'}")
    bound = 4 * 512 * 513 * 8
    bounded = max(memory_1h, memory_long) <= bound
    print(f"goal memory bounded (peak <= {bound} bytes): {'met' if bounded else 'MISSED'}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
