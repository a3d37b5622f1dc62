"""The quality report's charts, drawn with matplotlib (an Agg canvas per figure, no pyplot) as inline SVG text.

Each function is pure: numbers in, one ``<svg>…</svg>`` string out, with no external reference (text is drawn
as paths, a raster is embedded as base64 PNG). Output is deterministic for the same input. Long series are
reduced to at most ``MAX_POINTS`` points (a band of the minimum to maximum of each bucket, and its mean), so a
ten-hour master gives a chart as light as a three-minute one. No string from the master is drawn: labels are
this module's own and the rung names of the ladder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
import io
import math
from typing import TYPE_CHECKING, Any
import warnings

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator
import numpy as np
import numpy.typing as npt

from pipelines.audio.spectrogram import Spectrogram

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

MAX_POINTS = 1200
_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
SPECTROGRAM_ROWS = 256  # frequency rows drawn: the raster stays a few hundred kB at most
INK, MUTED, GRID = "#1f2933", "#6b7280", "#e5e7eb"
BLUE, RED = "#2563eb", "#dc2626"
RUNG_COLOURS = ("#2563eb", "#16a34a", "#f59e0b", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#78716c")
_RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans", "font.size": 9.0, "axes.edgecolor": MUTED, "axes.labelcolor": INK,
    "xtick.color": MUTED, "ytick.color": MUTED, "axes.spines.top": False, "axes.spines.right": False,
    "svg.fonttype": "path", "axes.titlesize": 10.0, "axes.titleweight": "bold",
}

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class TargetLine:
    """A horizontal reference on the loudness chart: a profile's target (LUFS)."""

    label: str
    lufs: float
    primary: bool


@dataclass(frozen=True, kw_only=True)
class RungSeries:
    """One rung's per-segment VMAF: ``starts_s``/``durations_s`` (seconds) and ``vmaf`` (``None``: not measured)."""

    name: str
    starts_s: tuple[float, ...]
    durations_s: tuple[float, ...]
    vmaf: tuple[float | None, ...]
    wasted: bool


def loudness_chart(*, interval_s: float, momentary: Sequence[float | None], short_term: Sequence[float | None],
                   integrated_lufs: float | None, targets: Sequence[TargetLine], chart_id: str) -> str:
    """Momentary and short-term loudness (LUFS) over time, the integrated value and the profiles' targets.

    ``momentary[i]`` and ``short_term[i]`` are the windows ending at ``(i + 1) * interval_s`` seconds.
    """
    with _style(chart_id):
        fig = _figure(8.6, 3.2)
        ax = fig.add_subplot()
        for values, colour, label, width in ((momentary, "#93c5fd", "momentary (400 ms)", 0.7),
                                             (short_term, BLUE, "short-term (3 s)", 1.4)):
            series = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            times = (np.arange(len(series), dtype=np.float64) + 1.0) * interval_s
            _envelope(ax, times, series, colour=colour, label=label, width=width)
        if integrated_lufs is not None:
            ax.axhline(integrated_lufs, color=INK, linewidth=1.0, linestyle=(0, (6, 3)),
                       label=f"integrated {integrated_lufs:.1f} LUFS")
        for target in targets:
            ax.axhline(target.lufs, color=RED if target.primary else MUTED, linewidth=1.3 if target.primary else 0.8,
                       linestyle="-" if target.primary else ":")
            ax.annotate(_plain(target.label), (1.0, target.lufs), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5,
                        color=RED if target.primary else MUTED)
        measured = [v for v in (*momentary, *short_term) if v is not None]
        low = min([*measured, *(t.lufs for t in targets), -30.0])
        high = max([*measured, *(t.lufs for t in targets), -10.0])
        ax.set_ylim(max(low - 3.0, -70.0), high + 3.0)
        _time_axis(ax, max(interval_s * max(len(momentary), len(short_term)), interval_s))
        ax.set_ylabel("LUFS")
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.legend(loc="lower left", fontsize=7.5, frameon=False, ncol=3)
        fig.subplots_adjust(left=0.07, right=0.84, top=0.95, bottom=0.1)
        return _svg(fig)


def spectrogram_chart(spectrogram: Spectrogram, *, cutoff_hz: float | None, nyquist_hz: float | None,
                      cutoff_label: str, chart_id: str) -> str:
    """The spectrogram (frequency over time, dB), its average spectrum beside it, and the detected cutoff."""
    with _style(chart_id):
        fig = _figure(8.6, 3.6)
        grid = fig.add_gridspec(1, 3, width_ratios=(6.0, 1.0, 0.15), wspace=0.05)
        ax, side, scale = fig.add_subplot(grid[0]), fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
        levels = spectrogram.levels_db.astype(np.float64)
        top_hz = spectrogram.bin_hz * (levels.shape[0] - 1)
        power = 10.0 ** (levels / 10.0)
        mean_db = 10.0 * np.log10(np.maximum(power.mean(axis=1), 1e-15)) if levels.shape[1] else np.zeros(len(levels))
        rows = max(1, math.ceil(levels.shape[0] / SPECTROGRAM_ROWS))
        usable = levels.shape[0] - levels.shape[0] % rows
        shown = 10.0 * np.log10(np.maximum(power[:usable].reshape(-1, rows, levels.shape[1]).mean(axis=1), 1e-15))
        vmax = float(np.ceil(shown.max() / 10.0) * 10.0) if shown.size else 0.0
        if shown.size:
            image = ax.imshow(shown, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 100.0, vmax=vmax,
                              extent=(0.0, spectrogram.duration_s, 0.0, top_hz / 1000.0), interpolation="nearest")
            colourbar = fig.colorbar(image, cax=scale)
            colourbar.set_label("dB (full-scale sine = 0)", fontsize=7.5)
            scale.tick_params(labelsize=7)
        else:
            scale.set_axis_off()
        side.plot(mean_db, np.arange(len(mean_db)) * spectrogram.bin_hz / 1000.0, color=INK, linewidth=0.9)
        side.set_ylim(0.0, top_hz / 1000.0)
        side.set_xlim(vmax - 120.0, vmax + 5.0)
        side.set_yticklabels([])
        side.set_xlabel("mean dB", fontsize=7.5)
        side.tick_params(labelsize=7)
        side.grid(True, color=GRID, linewidth=0.6)
        for axis in (ax, side):
            if nyquist_hz is not None and nyquist_hz < top_hz - spectrogram.bin_hz:
                axis.axhline(nyquist_hz / 1000.0, color="#a5f3fc", linewidth=0.9, linestyle=":")
            if cutoff_hz is not None:
                axis.axhline(cutoff_hz / 1000.0, color="#22d3ee", linewidth=1.4, linestyle=(0, (5, 3)))
        if cutoff_hz is not None:
            below = cutoff_hz > 0.85 * top_hz  # no room above the line: write under it
            ax.annotate(_plain(cutoff_label), (0.01, cutoff_hz / 1000.0), xycoords=("axes fraction", "data"),
                        xytext=(0, -5 if below else 5), textcoords="offset points", va="top" if below else "bottom",
                        color=INK, fontsize=8, fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.25", "facecolor": "#cffafe", "edgecolor": "none", "alpha": 0.9})
        ax.set_ylabel("kHz")
        ax.set_ylim(0.0, top_hz / 1000.0)
        _time_axis(ax, spectrogram.duration_s)
        fig.subplots_adjust(left=0.07, right=0.93, top=0.95, bottom=0.12)
        return _svg(fig)


def vmaf_chart(rungs: Sequence[RungSeries], *, chart_id: str) -> str:
    """VMAF per segment, one step line per rung; a rung flagged as wasted bits is dashed and says so."""
    with _style(chart_id):
        fig = _figure(8.6, 3.2)
        ax = fig.add_subplot()
        lowest, end = 100.0, 0.0
        for index, rung in enumerate(rungs):
            values = np.array([np.nan if v is None else v for v in rung.vmaf], dtype=np.float64)
            if not len(values):
                continue
            edges = np.array([*rung.starts_s, rung.starts_s[-1] + rung.durations_s[-1]])
            colour = RUNG_COLOURS[index % len(RUNG_COLOURS)]
            label = _plain(rung.name) + (" (wasted bits)" if rung.wasted else "")
            ax.step(edges, np.append(values, values[-1]), where="post", color=colour, label=label,
                    linewidth=1.6, linestyle=(0, (4, 2)) if rung.wasted else "-")
            if rung.wasted:
                middles = (edges[:-1] + edges[1:]) / 2.0
                ax.plot(middles, values, linestyle="none", marker="x", color=colour, markersize=5)
            if np.isfinite(values).any():
                lowest = min(lowest, float(np.nanmin(values)))
            end = max(end, float(edges[-1]))
        ax.set_ylim(max(0.0, lowest - 5.0), 100.5)
        _time_axis(ax, max(end, 1.0))
        ax.set_ylabel("VMAF")
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.legend(loc="lower left", fontsize=7.5, frameon=False, ncol=min(4, max(1, len(rungs))))
        fig.subplots_adjust(left=0.07, right=0.97, top=0.95, bottom=0.1)
        return _svg(fig)


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour up."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _time_axis(ax: Axes, end_s: float) -> None:
    """An x axis from 0 to ``end_s`` seconds, ticked at a round step (seconds, minutes, hours) as a clock."""
    step = next((s for s in _TIME_STEPS_S if end_s / s <= 8), _TIME_STEPS_S[-1] * math.ceil(end_s / 8 / 21600))
    ax.set_xlim(0.0, end_s)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: clock(v)))


def _envelope(ax: Axes, times: Floats, series: Floats, *, colour: str, label: str, width: float) -> None:
    """Plot ``series`` as a line; past ``MAX_POINTS``, as the band of each bucket's range and its mean."""
    if len(series) <= MAX_POINTS:
        ax.plot(times, series, color=colour, linewidth=width, label=label)
        return
    buckets = math.ceil(len(series) / MAX_POINTS)
    usable = len(series) - len(series) % buckets
    shaped = series[:usable].reshape(-1, buckets)
    centres = times[:usable].reshape(-1, buckets).mean(axis=1)
    with warnings.catch_warnings():  # an all-silent bucket is NaN: a gap in the chart, which is the truth
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, mean = (np.nanmin(shaped, axis=1), np.nanmax(shaped, axis=1), np.nanmean(shaped, axis=1))
    ax.fill_between(centres, low, high, color=colour, alpha=0.25, linewidth=0)
    ax.plot(centres, mean, color=colour, linewidth=width, label=label)


def _plain(text: str) -> str:
    """Text matplotlib draws literally: a ``$`` would start mathtext."""
    return text.replace("$", r"\$")


@contextmanager
def _style(chart_id: str) -> Iterator[None]:
    """The charts' style while one is drawn and saved; the salt makes the SVG's clip-path ids unique per chart
    (a page holds several) and the same from run to run."""
    with matplotlib.rc_context({**_RC, "svg.hashsalt": chart_id}):
        yield


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)  # its own canvas: no pyplot, no global backend
    return fig


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    return text[text.index("<svg"):]
