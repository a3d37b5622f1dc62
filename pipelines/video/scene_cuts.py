"""Shot boundaries from a stream of small frames: a per-frame change score and an adaptive, causal cut rule.

The score of frame *n* says how different it is from frame *n − 1*, in 0..1: the mean of

- the **colour-histogram distance** — half the L1 distance between the two frames' normalised 512-bin RGB
  histograms (3 bits a channel): 0 for the same colours, 1 for disjoint ones. Motion barely moves it;
  and
- the **block luma distance** — the mean absolute difference of the two frames' luma averaged over a 32 × 18
  grid, in 0..1 of full scale, doubled and capped at 1. It sees a cut between two shots of the same colours
  (the same room from another angle) that the histogram misses.

A frame starts a new shot (a *cut*) when its score is at least ``min_score``, at least ``ratio`` times the
mean score of the second before it and the ``lookahead`` frames after it, and ``min_delta`` above that mean:
sustained motion (a pan, a zoom, a flickering source) raises the mean and so the bar, where a fixed threshold
would fire on every fast frame. A *flash* — the picture changes and comes back within ``lookahead`` frames —
is not a cut, and two cuts are at least ``min_scene_s`` apart. Gradual transitions (fades, dissolves) change
little from one frame to the next and are not reported as cuts.

The decision for frame *n* is taken when frame *n + lookahead* arrives, so the detector holds a few frames'
features, never the video.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Rgb = npt.NDArray[np.uint8]
"""One frame as ``(height, width, 3)`` RGB, 8 bits a channel."""

HISTOGRAM_BINS = 512
BLOCK_GRID = (32, 18)


@dataclass(frozen=True, kw_only=True)
class CutPolicy:
    """The knobs of the cut rule; scores are in 0..1, times in seconds."""

    min_score: float = 0.25
    ratio: float = 3.0
    min_delta: float = 0.15
    window_s: float = 1.0
    lookahead: int = 2
    min_scene_s: float = 0.25
    flash_similarity: float = 0.5
    """A change is part of a flash when the pictures on either side of it, within ``lookahead`` frames, differ
    by less than this fraction of its score."""


@dataclass(frozen=True)
class FrameSignature:
    """What the score compares: a normalised colour histogram and a coarse luma grid."""

    histogram: npt.NDArray[np.float32]
    blocks: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Cut:
    """A shot boundary: ``frame`` is the first frame of the new shot, ``time_s`` its time."""

    frame: int
    time_s: float
    score: float


def signature(rgb: Rgb) -> FrameSignature:
    """The colour histogram and luma grid of one frame (any size; the histogram is taken at half size, which
    changes it little and costs a quarter)."""
    height, width = rgb.shape[:2]
    half = np.asarray(cv2.resize(rgb, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA),
                      dtype=np.uint8)
    quantised = ((half[..., 0] >> 5).astype(np.uint16) << 6) | ((half[..., 1] >> 5).astype(np.uint16) << 3) | (
        half[..., 2] >> 5
    )
    counts = np.bincount(quantised.ravel(), minlength=HISTOGRAM_BINS).astype(np.float32)
    luma = cv2.cvtColor(half, cv2.COLOR_RGB2GRAY)
    blocks = cv2.resize(luma, BLOCK_GRID, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return FrameSignature(counts / max(1.0, float(counts.sum())), blocks)


def change_score(before: FrameSignature, after: FrameSignature) -> float:
    """How different two frames are, 0..1 (see the module docstring)."""
    histogram = 0.5 * float(np.abs(before.histogram - after.histogram).sum())
    blocks = min(1.0, 2.0 * float(np.abs(before.blocks - after.blocks).mean()))
    return 0.5 * (histogram + blocks)


class CutDetector:
    """Feed frame signatures in order; collects the cuts, each decided ``lookahead`` frames after it."""

    def __init__(self, *, frame_rate: float, policy: CutPolicy | None = None) -> None:
        self.policy = policy or CutPolicy()
        self.frame_rate = frame_rate
        self._window = max(1, round(self.policy.window_s * frame_rate))
        self._min_gap = max(1, round(self.policy.min_scene_s * frame_rate))
        keep = self._window + self.policy.lookahead + 2
        self._recent: deque[tuple[int, FrameSignature, float]] = deque(maxlen=keep)
        self.scores = array("d")  # 8 bytes a frame: 2 MB for three hours at 25 fps
        self.cuts: list[Cut] = []

    def push(self, sig: FrameSignature) -> list[Cut]:
        """Add the next frame; return the cuts this frame confirmed (at most one, ``lookahead`` frames back)."""
        index = len(self.scores)
        score = change_score(self._recent[-1][1], sig) if self._recent else 0.0
        self.scores.append(score)
        self._recent.append((index, sig, score))
        return self._decide(index - self.policy.lookahead)

    def finish(self) -> list[Cut]:
        """Decide the last frames, whose lookahead the video's end cut short."""
        confirmed: list[Cut] = []
        last = len(self.scores) - 1
        for index in range(max(1, last - self.policy.lookahead + 1), last + 1):
            confirmed += self._decide(index)
        return confirmed

    def _decide(self, index: int) -> list[Cut]:
        policy = self.policy
        if index < 1:
            return []
        score = self.scores[index]
        if score < policy.min_score:
            return []
        if self.cuts and index - self.cuts[-1].frame < self._min_gap:
            return []
        after = self.scores[index + 1 : index + 1 + policy.lookahead]
        before = self.scores[max(1, index - self._window) : index]
        around = before + after
        level = sum(around) / len(around) if len(around) else 0.0
        if score < policy.ratio * level or score - level < policy.min_delta:
            return []
        if self._is_flash(index, score):
            return []
        cut = Cut(frame=index, time_s=index / self.frame_rate, score=round(score, 4))
        self.cuts.append(cut)
        return [cut]

    def _is_flash(self, index: int, score: float) -> bool:
        """True when the picture before frame ``index`` comes back within ``lookahead`` frames after it, or
        frame ``index`` itself brings back the picture of a few frames before (the end of a flash)."""
        signatures = {i: sig for i, sig, _ in self._recent}
        bar = self.policy.flash_similarity * score
        previous, current = signatures.get(index - 1), signatures[index]
        span = range(1, 1 + self.policy.lookahead)
        later = [signatures[index + d] for d in span if index + d in signatures]
        earlier = [signatures[index - 1 - d] for d in span if index - 1 - d in signatures]
        if previous is not None and any(change_score(previous, sig) < bar for sig in later):
            return True
        return any(change_score(sig, current) < bar for sig in earlier)
