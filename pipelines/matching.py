"""Finding a clip in the catalog, even when it was sped up, slowed down, or pitch- or tempo-shifted.

Chromaprint items are quantised chroma: a change of pitch by a few tenths of a percent already flips most of
them, so the index alone finds only clips at the original speed. We search the *clip* at several speeds
instead of indexing the catalog at several speeds (which would multiply the index): the clip is resampled by
each factor of a fine grid (pitch and tempo change together, as in a sped-up edit) and fingerprinted again,
which costs a few milliseconds per factor for a clip of seconds. A pitch-only edit is a resampled one whose
tempo was put back, so each resampled variant is also voted at the tempo ratio that undoes the resampling's
time change; a tempo-only edit keeps its pitch, so the unresampled clip is voted at a grid of tempo ratios.
The plain clip is searched first and the variants only when it finds nothing, so an ordinary query costs one
lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.fingerprint import fingerprint_samples
from pipelines.match_index import FingerprintIndex, Match, merge

MATCH_RATE = 11025
"""Hz: Chromaprint's own rate; clips are decoded to mono at this rate for matching."""


@dataclass(frozen=True, kw_only=True)
class SpeedSearch:
    """The speeds a clip is tried at, as factors of its received speed (1.03: it had been sped up by 3 %)."""

    max_change: float = 0.06
    speed_step: float = 0.002
    tempo_step: float = 0.01

    def speed_factors(self) -> list[float]:
        """Factors other than 1, nearest first, alternating slower and faster."""
        steps = int(round(self.max_change / self.speed_step))
        factors: list[float] = []
        for k in range(1, steps + 1):
            factors += [1 + k * self.speed_step, 1 - k * self.speed_step]
        return factors

    def tempo_ratios(self) -> list[float]:
        steps = int(round(self.max_change / self.tempo_step))
        return [1.0] + [1 + sign * k * self.tempo_step for k in range(1, steps + 1) for sign in (1, -1)]


def find_clip(
    samples: npt.NDArray[np.float32],
    index: FingerprintIndex,
    *,
    top: int = 5,
    search: SpeedSearch | None = None,
) -> list[Match]:
    """The catalog assets a mono clip at ``MATCH_RATE`` matches, best first; ``[]`` when nothing does."""
    accept = index.policy.accept_score
    items = fingerprint_samples(samples, rate=MATCH_RATE)
    plain = index.search(items)
    if plain and plain[0].score >= accept:
        return merge([plain], top=top, accept=accept)
    search = search or SpeedSearch()
    results = [plain, index.search(items, ratios=search.tempo_ratios())]
    for factor in search.speed_factors():
        variant = fingerprint_samples(resample(samples, factor), rate=MATCH_RATE)
        found = index.search(variant, ratios=(1.0, 1.0 / factor), speed=factor)
        results.append(found)
        if found and found[0].score >= accept and found[0].tempo_ratio == 1.0:
            break  # a plain speed change, undone: the nearest factor that matches is the answer
    return merge(results, top=top, accept=accept)


def resample(samples: npt.NDArray[np.float32], factor: float) -> npt.NDArray[np.float32]:
    """``samples`` played ``factor`` times slower (longer by ``factor``, pitch lower by it).

    Linear interpolation: Chromaprint looks only at 28 Hz–3.5 kHz, far below where its error matters at
    11,025 Hz.
    """
    length = int(len(samples) * factor)
    positions = np.arange(length, dtype=np.float64) / factor
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
