"""VMAF, PSNR and SSIM of every video rung against the master, in one ffmpeg pass.

The reference is the master, decoded once and ``split`` into one libvmaf filter per rung. Each distorted input
is a rung as published: its HLS playlist read back through ffmpeg's ``hls`` demuxer (the one input read with a
demuxer that opens further files: see :func:`pipelines.media.confined.encoded_input`), upscaled (bicubic) to the
reference's size as Netflix advises for VMAF, both sides restarted at timestamp zero and the reference brought
to the ladder's frame rate when the encoder changed it. One libvmaf instance per rung computes the
``vmaf_v0.6.1`` model, the same model with its phone transform (``vmaf_phone``), PSNR (luma, ``psnr_y``) and SSIM
(``float_ssim``), on every ``subsample``-th frame, and writes a per-frame JSON log that :func:`parse_vmaf_log`
reads. Debian's ffmpeg has no libvmaf; ``QualitySettings.ffmpeg`` defaults to the one in ``imageio-ffmpeg``.

``vmaf_v0.6.1`` is trained for a 1080p display viewed from three picture heights: a reference larger than
1920x1080 is scaled down to fit that box (both sides are then compared there), which also bounds the cost.

A rung whose mean VMAF rises less than ``QualityPolicy.wasted_bits_vmaf`` (2 points) over the rung below it is
flagged ``wasted_bits``. One just-noticeable difference is commonly put at about 6 VMAF points (Netflix's own
figure); 2 points is a third of that, a difference few viewers would notice, so the upper rung's extra bits buy
next to nothing. It is the first step toward a per-title ladder, which would drop such a rung.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import Limits, QualitySettings
from pipelines.errors import FFmpegError, MediaError, blame_master
from pipelines.media.confined import FFmpegCall, encoded_input, master_input, run_confined
from pipelines.media.isobmff import count_samples
from pipelines.media.probe import Probe
from pipelines.media.runner import Progress
from pipelines.scoring import ScoreReason
from pipelines.video.package import MeasuredRendition, parse_media_playlist
from pipelines.video.transcode import PLAYLIST_NAME

log = logging.getLogger(__name__)

VMAF_MODEL = "vmaf_v0.6.1"
METRICS: tuple[str, ...] = ("vmaf", "vmaf_phone", "psnr", "ssim")
# The key of each metric in libvmaf's per-frame log.
_LOG_KEYS = {"vmaf": "vmaf", "vmaf_phone": "vmaf_phone", "psnr": "psnr_y", "ssim": "float_ssim"}
MAX_REFERENCE_SIZE = (1920, 1080)
"""The box the reference is scaled down to fit (landscape; a portrait master uses it turned)."""


@dataclass(frozen=True, kw_only=True)
class QualityPolicy:
    """What lowers a rendition's score and what counts as wasted bits. VMAF points unless stated."""

    wasted_bits_vmaf: float = 2.0
    """A rung must beat the rung below by this much mean VMAF (a third of a just-noticeable difference)."""
    wasted_bits_penalty: int = 10
    unstable_gap: float = 10.0
    """Mean minus 5th percentile above this: a stretch of the rung looks clearly worse than the rest."""
    weak_segment_gap: float = 15.0
    """A segment whose mean VMAF is this far below the rung's mean is named in the reasons."""


@dataclass(frozen=True, kw_only=True)
class SegmentSpan:
    """One HLS segment of a distorted input: where it starts (s), how long it lasts (s), its frame count."""

    start_s: float
    duration_s: float
    frames: int


@dataclass(frozen=True, kw_only=True)
class Distorted:
    """One encoded video to score against the reference: a rung's playlist (or any single file).

    ``segments`` split its frames, in order, into the spans that per-segment values are reported for;
    ``bits_per_s`` orders the rungs for the wasted-bits check.
    """

    name: str
    path: Path
    segments: tuple[SegmentSpan, ...]
    bits_per_s: int = 0


@dataclass(frozen=True, kw_only=True)
class MetricStats:
    mean: float
    harmonic_mean: float
    """As libvmaf pools it: ``n / Σ 1/(1+x) − 1``, finite when a frame scores 0."""
    p5: float
    min: float

    def to_document(self) -> dict[str, float]:
        return {"mean": round(self.mean, 4), "harmonic_mean": round(self.harmonic_mean, 4),
                "p5": round(self.p5, 4), "min": round(self.min, 4)}


@dataclass(frozen=True, kw_only=True)
class FrameScores:
    """Per-frame values from one libvmaf log: the scored frame numbers and each metric's value there."""

    frames: np.ndarray
    values: dict[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class SegmentScore:
    index: int
    start_s: float
    duration_s: float
    vmaf: float | None
    psnr: float | None
    ssim: float | None

    def to_document(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": round(self.start_s, 3), "duration_s": round(self.duration_s, 3),
                "vmaf": _round(self.vmaf), "psnr": _round(self.psnr), "ssim": _round(self.ssim)}


@dataclass(frozen=True, kw_only=True)
class RenditionQuality:
    """The measured quality of one video rendition and the verdict on it."""

    name: str
    stats: dict[str, MetricStats]
    segments: tuple[SegmentScore, ...]
    frames_scored: int
    subsample: int
    bits_per_s: int
    wasted_bits: bool = False
    score: int | None = None
    reasons: tuple[ScoreReason, ...] = ()

    def mean(self, metric: str) -> float | None:
        stats = self.stats.get(metric)
        return None if stats is None else stats.mean

    def published_mean(self, metric: str) -> float | None:
        """The mean of ``metric`` as the job document and the catalog show it (4 decimals)."""
        return _round(self.mean(metric))

    def to_document(self) -> dict[str, Any]:
        """The rendition's entry in ``quality.renditions`` of the job document."""
        return {
            "name": self.name,
            "kind": "video",
            **{metric: self.published_mean(metric) for metric in METRICS},
            "stats": {metric: (s.to_document() if (s := self.stats.get(metric)) else None) for metric in METRICS},
            "segments": [segment.to_document() for segment in self.segments],
            "wasted_bits": self.wasted_bits,
            "score": self.score,
            "reasons": [{"code": r.code, "penalty": r.penalty, "detail": r.detail} for r in self.reasons],
            "model": VMAF_MODEL,
            "subsample": self.subsample,
            "frames_scored": self.frames_scored,
        }


def unmeasured_document(name: str, kind: str) -> dict[str, Any]:
    """The ``quality.renditions`` entry of a rendition no picture metric applies to (an audio rendition)."""
    return {
        "name": name, "kind": kind, **{metric: None for metric in METRICS},
        "stats": {metric: None for metric in METRICS}, "segments": [], "wasted_bits": False, "score": None,
        "reasons": [], "model": None, "subsample": None, "frames_scored": 0,
    }


def distorted_rung(out_dir: Path, rendition: MeasuredRendition) -> Distorted:
    """A video rung the transcode wrote under ``out_dir``, with its segments' spans from its playlist and
    frame counts from the segments themselves (so frames map to segments exactly, whatever the frame rate)."""
    directory = out_dir / rendition.directory
    playlist = parse_media_playlist((directory / PLAYLIST_NAME).read_text())
    spans, start = [], 0.0
    for uri, duration in playlist.segments:
        spans.append(SegmentSpan(start_s=start, duration_s=duration,
                                 frames=count_samples((directory / uri).read_bytes())))
        start += duration
    return Distorted(name=rendition.name, path=directory / PLAYLIST_NAME, segments=tuple(spans),
                     bits_per_s=rendition.average_bps)


def reference_size(probe: Probe) -> tuple[int, int]:
    """The size (even width and height) both sides are compared at: the master's as shown, scaled down to fit
    :data:`MAX_REFERENCE_SIZE` (turned for a portrait master) when larger."""
    assert probe.video is not None
    size = probe.video.display_size
    if size is None:
        raise MediaError("no_resolution", "the master's video has no frame size")
    width, height = size
    box_w, box_h = MAX_REFERENCE_SIZE if width >= height else MAX_REFERENCE_SIZE[::-1]
    factor = min(1.0, box_w / width, box_h / height)
    return max(2, round(width * factor / 2) * 2), max(2, round(height * factor / 2) * 2)


def reference_frame_rate(probe: Probe, ladder_frame_rate: float | None) -> float | None:
    """The frame rate to bring the reference to, as the transcode did to the rungs; ``None`` to leave it."""
    assert probe.video is not None
    rate = probe.video.frame_rate
    if ladder_frame_rate is not None and (rate is None or rate > ladder_frame_rate + 0.01):
        return ladder_frame_rate
    return None


def frame_selection(subsample: int) -> tuple[str | None, int]:
    """How every ``subsample``-th frame is scored: a ``select`` for the distorted side and libvmaf's
    ``n_subsample``.

    libvmaf's own subsampling still runs its motion feature, and so the upscale, on every frame. Past 3, the
    distorted side keeps only frames ``kN-1, kN, kN+1`` (and ``0, 1``): libvmaf, scoring every third frame
    it receives, then scores exactly frames ``0, N, 2N…`` with the neighbours their motion feature compares
    them with, at 3/N of the cost (the scores are identical to a full pass at those frames). The reference
    is paired with each kept frame by timestamp.
    """
    if subsample <= 3:
        return None, subsample
    return f"select='lt(mod(n+1\\,{subsample})\\,3)'", 3


def scored_frame(log_frame: int, subsample: int) -> int:
    """The distorted input's frame number of a frame libvmaf numbered ``log_frame`` (see :func:`frame_selection`)."""
    return log_frame if subsample <= 3 else log_frame // 3 * subsample


def libvmaf_options(*, log_path: str, settings: QualitySettings) -> str:
    """The libvmaf filter with both models and the PSNR and SSIM features, logging per-frame JSON."""
    models = f"version={VMAF_MODEL}\\:name=vmaf|version={VMAF_MODEL}\\:name=vmaf_phone\\:enable_transform=true"
    _, n_subsample = frame_selection(settings.subsample)
    return (f"libvmaf=log_fmt=json:log_path={log_path}:n_threads={settings.threads}:n_subsample={n_subsample}"
            f":shortest=1:model='{models}':feature='name=psnr|name=float_ssim'")


def log_name(index: int) -> str:
    return f"vmaf-{index}.json"


def build_quality_cmd(
    reference: Path,
    distorted: Sequence[Distorted],
    *,
    stream_index: int,
    size: tuple[int, int],
    frame_rate: float | None,
    duration_s: float,
    work_dir: Path,
    settings: QualitySettings,
) -> FFmpegCall:
    """The one ffmpeg run scoring every ``distorted`` input against stream ``stream_index`` of ``reference`` (a
    master ``duration_s`` long).

    The reference is decoded once and split; logs go to ``vmaf-<i>.json`` in ``work_dir`` (the run's working
    directory and the only folder it writes), one per distorted input in order. The reference is read as a
    master, each distorted input as a rung the job encoded (its playlist through the ``hls`` demuxer).
    """
    width, height = size
    to_size = f"scale={width}:{height}:flags=bicubic,format=yuv420p,setsar=1,setpts=PTS-STARTPTS"
    fps = f"fps={frame_rate:g}," if frame_rate is not None else ""
    count = len(distorted)
    select, _ = frame_selection(settings.subsample)
    keep = f"{select}," if select is not None else ""
    graph = [f"[0:{stream_index}]{fps}{to_size},split={count}" + "".join(f"[r{i}]" for i in range(count))]
    for i in range(count):
        graph.append(f"[{i + 1}:v:0]{keep}{to_size}[d{i}]")
        graph.append(f"[d{i}][r{i}]{libvmaf_options(log_path=log_name(i), settings=settings)}[q{i}]")
    args = [settings.ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning", "-progress", "pipe:1"]
    for path in (reference, *(d.path for d in distorted)):
        args += ["-i", str(path)]
    args += ["-filter_complex", ";".join(graph)]
    for i in range(count):
        args += ["-map", f"[q{i}]", "-f", "null", "-"]
    inputs = (master_input(reference), *(encoded_input(d.path) for d in distorted))
    return FFmpegCall(kind="quality", args=tuple(args), inputs=inputs, writes=(work_dir,), cwd=work_dir,
                      duration_s=duration_s)


def parse_vmaf_log(text: str, *, subsample: int = 1) -> FrameScores:
    """Read libvmaf's JSON log (``frames[].frameNum`` and ``frames[].metrics``) into per-frame arrays, frames
    numbered as in the distorted input (``subsample`` as in :func:`build_quality_cmd`'s settings).

    Raises ``ValueError`` when it is not such a log or scores no frame.
    """
    document = json.loads(text)
    frames = document.get("frames") if isinstance(document, dict) else None
    if not isinstance(frames, list) or not frames:
        raise ValueError("the libvmaf log scores no frame")
    numbers = np.array([scored_frame(int(frame["frameNum"]), subsample) for frame in frames])
    values = {
        metric: np.array([float(frame["metrics"][key]) for frame in frames])
        for metric, key in _LOG_KEYS.items()
        if all(key in frame["metrics"] for frame in frames)
    }
    return FrameScores(frames=numbers, values=values)


def metric_stats(values: np.ndarray) -> MetricStats:
    """Mean, harmonic mean (libvmaf's pooling), 5th percentile and minimum of per-frame values."""
    return MetricStats(
        mean=float(np.mean(values)),
        harmonic_mean=float(len(values) / np.sum(1.0 / (1.0 + values)) - 1.0),
        p5=float(np.percentile(values, 5)),
        min=float(np.min(values)),
    )


def segment_scores(scores: FrameScores, segments: Sequence[SegmentSpan]) -> tuple[SegmentScore, ...]:
    """Mean VMAF, PSNR and SSIM of the scored frames inside each segment (``None`` where none was scored)."""
    ends = np.cumsum([segment.frames for segment in segments])
    owner = np.searchsorted(ends, scores.frames, side="right")
    result = []
    for index, segment in enumerate(segments):
        inside = owner == index
        means: dict[str, float | None] = {
            metric: (float(np.mean(scores.values[metric][inside]))
                     if inside.any() and metric in scores.values else None)
            for metric in ("vmaf", "psnr", "ssim")
        }
        result.append(SegmentScore(index=index, start_s=segment.start_s, duration_s=segment.duration_s,
                                   vmaf=means["vmaf"], psnr=means["psnr"], ssim=means["ssim"]))
    return tuple(result)


def rendition_quality(distorted: Distorted, scores: FrameScores, *, subsample: int) -> RenditionQuality:
    """The stats and segment values of one rung; :func:`judge_ladder` adds the verdict."""
    return RenditionQuality(
        name=distorted.name,
        stats={metric: metric_stats(values) for metric, values in scores.values.items()},
        segments=segment_scores(scores, distorted.segments),
        frames_scored=len(scores.frames),
        subsample=subsample,
        bits_per_s=distorted.bits_per_s,
    )


def judge_ladder(rungs: Sequence[RenditionQuality], policy: QualityPolicy | None = None) -> list[RenditionQuality]:
    """Flag wasted bits and score every rung 0–100 with the reasons that lowered it, in the order given.

    A rung is compared with the next rung below it in bit rate. The score starts at 100 and loses the points
    its mean VMAF is short of 100, then a penalty per reason (:class:`QualityPolicy`).
    """
    policy = policy or QualityPolicy()
    by_rate = sorted(rungs, key=lambda r: r.bits_per_s, reverse=True)
    below = {upper.name: lower for upper, lower in zip(by_rate, by_rate[1:], strict=False)}
    judged = []
    for rung in rungs:
        reasons = list(_reasons(rung, below.get(rung.name), policy))
        wasted = any(r.code == "wasted_bits" for r in reasons)
        score = max(0, 100 - sum(r.penalty for r in reasons)) if rung.mean("vmaf") is not None else None
        judged.append(RenditionQuality(
            name=rung.name, stats=rung.stats, segments=rung.segments, frames_scored=rung.frames_scored,
            subsample=rung.subsample, bits_per_s=rung.bits_per_s, wasted_bits=wasted, score=score,
            reasons=tuple(reasons),
        ))
    return judged


def _reasons(rung: RenditionQuality, lower: RenditionQuality | None, policy: QualityPolicy) -> list[ScoreReason]:
    stats = rung.stats.get("vmaf")
    if stats is None:
        return []
    reasons = []
    if stats.mean < 99.5:
        reasons.append(ScoreReason(code="vmaf", penalty=round(100 - stats.mean),
                                   detail=f"mean VMAF {stats.mean:.1f} against the master ({VMAF_MODEL})"))
    gap = stats.mean - stats.p5
    if gap > policy.unstable_gap:
        reasons.append(ScoreReason(
            code="unstable", penalty=10 if gap > 2 * policy.unstable_gap else 5,
            detail=f"the worst 5 % of frames score below {stats.p5:.1f} (mean {stats.mean:.1f})",
        ))
    weak = [s for s in rung.segments if s.vmaf is not None and s.vmaf < stats.mean - policy.weak_segment_gap]
    if weak:
        worst = min(weak, key=lambda s: s.vmaf if s.vmaf is not None else 0.0)
        reasons.append(ScoreReason(
            code="weak_segment", penalty=5,
            detail=f"{len(weak)} segment(s) far below the mean; worst: segment {worst.index} "
                   f"({worst.start_s:.1f}–{worst.start_s + worst.duration_s:.1f} s) at VMAF {worst.vmaf:.1f}",
        ))
    lower_mean = None if lower is None else lower.mean("vmaf")
    if lower is not None and lower_mean is not None and stats.mean - lower_mean < policy.wasted_bits_vmaf:
        reasons.append(ScoreReason(
            code="wasted_bits", penalty=policy.wasted_bits_penalty,
            detail=f"mean VMAF {stats.mean:.1f} is less than {policy.wasted_bits_vmaf:g} above {lower.name}'s "
                   f"{lower_mean:.1f} at {rung.bits_per_s / max(1, lower.bits_per_s):.1f}x its bit rate",
        ))
    return reasons


def measure_video_quality(
    reference: Path,
    probe: Probe,
    distorted: Sequence[Distorted],
    *,
    work_dir: Path,
    ladder_frame_rate: float | None,
    settings: QualitySettings,
    limits: Limits,
    policy: QualityPolicy | None = None,
    on_fraction: Callable[[float], None] | None = None,
) -> list[RenditionQuality]:
    """Score every ``distorted`` input against ``reference`` (a local master) in one ffmpeg run.

    ``work_dir`` (existing) receives the libvmaf logs. ``on_fraction`` receives the fraction (0..1) of the
    master scored so far. Returns one judged :class:`RenditionQuality` per input, in order. Raises
    ``FFmpegError`` when ffmpeg fails or runs past ``limits.timeout_s("quality", duration_s=probe.duration_s)``
    and ``MediaError`` (``quality_failed``) when it leaves no usable log.
    """
    if not distorted:
        return []
    assert probe.video is not None
    inputs = [replace(d, path=d.path.resolve()) for d in distorted]  # absolute: ffmpeg runs in work_dir
    call = build_quality_cmd(
        reference.resolve(), inputs,
        stream_index=probe.video.index, size=reference_size(probe),
        frame_rate=reference_frame_rate(probe, ladder_frame_rate), duration_s=probe.duration_s,
        work_dir=work_dir, settings=settings,
    )
    log.info("scoring %d renditions", len(distorted))

    def forward(progress: Progress) -> None:
        if on_fraction is not None:
            on_fraction(1.0 if progress.done else min(1.0, progress.out_time_s / max(probe.duration_s, 1e-3)))

    run_confined(call, limits=limits, on_progress=forward)
    rungs = []
    for i, item in enumerate(distorted):
        try:
            scores = parse_vmaf_log((work_dir / log_name(i)).read_text(), subsample=settings.subsample)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MediaError("quality_failed", f"the quality pass left no usable log for {item.name}: {exc}") from exc
        rungs.append(rendition_quality(item, scores, subsample=settings.subsample))
    return judge_ladder(rungs, policy)


def quality_error(exc: FFmpegError, *, memory_mb: int) -> MediaError | FFmpegError:
    """What a failed quality pass means for the job.

    The encoder accepted this master, so a pass that cannot score its rungs fails the job with a code of its
    own rather than publishing a ladder without its proof of quality: ``quality_timeout``, ``resource_limit``
    or ``quality_failed`` (with ffmpeg's reason: a libvmaf-less ffmpeg says ``No such filter: 'libvmaf'``).
    An ffmpeg that cannot start at all is the worker's fault and passes through (``worker_error``).
    """
    if exc.returncode is not None and "No such filter: 'libvmaf'" in exc.stderr_tail:
        return MediaError("quality_failed", f"{exc.cmd[0]} has no libvmaf filter: set MEDIAWORKER_VMAF_FFMPEG to an "
                                            "ffmpeg built with libvmaf (the default is imageio-ffmpeg's)")
    return blame_master(exc, doing="the VMAF/PSNR/SSIM pass", timeout_code="quality_timeout",
                        failed_code="quality_failed", memory_mb=memory_mb)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
