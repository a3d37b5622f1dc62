"""Finding a clip in the catalog, even when it was sped up, slowed down, or pitch- or tempo-shifted.

Chromaprint items are quantised chroma: a change of pitch by a few tenths of a percent already flips most of
them, so the index alone finds only clips at the original speed. We search the *clip* at several speeds
instead of indexing the catalog at several speeds (which would multiply the index): the clip is resampled by
each factor of a fine grid (pitch and tempo change together, as in a sped-up edit) and fingerprinted again,
which costs a few milliseconds per factor for a clip of seconds. A pitch-only edit is a resampled one whose
tempo was put back, so each resampled variant is also voted at the tempo ratio that undoes the resampling's
time change; a tempo-only edit keeps its pitch, so the unresampled clip is voted at a grid of tempo ratios.
The plain clip is searched first (items within one bit); unless that answer is sure, the clip is searched
again within two bits, as it is and with its noise floor subtracted (:func:`suppress_noise`), and by its
spectral-peak landmarks (:mod:`pipelines.match.landmarks`, for noise that has taken its items), and the best answer
of the four wins; the variants run only when none finds anything, so an ordinary query costs one lookup.
The grid stops at the first factor (nearest to 1 first) that matches, once its two neighbours are scored too:
the nearest factor that matches may be a step short of the edit's. Whatever the two-bit passes or the grid
finds must reach ``MatchPolicy.accept_grid_score``, stricter than the plain search's ``accept_score``: they try
many more alignments, so chance scores higher there.
A clip too short for the rescoring (a 3 s clip has 3 items) is placed by :func:`find_short_clip` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.match.fingerprint import ITEM_S, fingerprint_samples
from pipelines.match.index import ClipIndex, Match, best_first, length_confidence, merge
from pipelines.match.landmarks import clip_landmarks

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
    index: ClipIndex,
    *,
    top: int = 5,
    search: SpeedSearch | None = None,
) -> list[Match]:
    """The catalog assets a mono clip at ``MATCH_RATE`` matches, best first; ``[]`` when nothing does.

    The plain clip is accepted from ``policy.accept_score`` (at once from ``policy.sure_score``); a match found
    only by the two-bit lookups or the speed and tempo grid, which try many more hypotheses, from
    ``policy.accept_grid_score``. A clip too short to
    rescore (under ``policy.smoothing_items`` items) goes to :func:`find_short_clip` instead: at its own speed only.
    """
    policy = index.policy
    items = fingerprint_samples(samples, rate=MATCH_RATE)
    if len(items) < policy.smoothing_items:
        return find_short_clip(samples, index, top=top)
    plain = index.search(items)
    if plain and plain[0].score >= policy.sure_score:
        return merge([plain], top=top, accept=policy.accept_score)
    # Heavy noise leaves few items within one bit at the true alignment, but several within two, and more once
    # the noise floor is taken out of the clip. A noisy clip's plain answer may also be a near-repeat of the
    # music (a loop, a variation) that its true place beats once more of its items vote. Probing 16 times more
    # keys, twice, lets more chance alignments through (out-of-catalog scores reach 0.36 at 10,000 tracks,
    # against 0.27 within one bit), so these answers count only from the grid's stricter score.
    deep = [m for m in (*index.search(items, bit_errors=2),
                        *index.search(fingerprint_samples(suppress_noise(samples), rate=MATCH_RATE), bit_errors=2),
                        *index.search_landmarks(clip_landmarks(samples, rate=MATCH_RATE), items))
            if m.score >= policy.accept_grid_score]
    found = merge([plain, deep], top=top, accept=policy.accept_score)
    if found:
        return found
    search = search or SpeedSearch()
    tempo = index.search(items, ratios=search.tempo_ratios())
    if tempo and tempo[0].score >= policy.accept_grid_score:
        return merge([tempo], top=top, accept=policy.accept_grid_score)
    results: dict[float, list[Match]] = {}

    def at(factor: float) -> list[Match]:
        if factor not in results:
            variant = fingerprint_samples(resample(samples, factor), rate=MATCH_RATE)
            results[factor] = index.search(variant, ratios=(1.0, 1.0 / factor), speed=factor)
        return results[factor]

    for factor in search.speed_factors():
        found = at(factor)
        if found and found[0].score >= policy.accept_grid_score:
            # The nearest factor that matches may sit a step off the edit's; its neighbours decide.
            for neighbour in (factor - search.speed_step, factor + search.speed_step):
                if abs(neighbour - 1) > search.speed_step / 2:
                    at(round(neighbour, 6))
            break
    return merge(results.values(), top=top, accept=policy.accept_grid_score)


def find_short_clip(samples: npt.NDArray[np.float32], index: ClipIndex, *, top: int = 5) -> list[Match]:
    """Where a clip under about 3.6 s lies, from Chromaprint's first few items alone (3 for a 3 s clip).

    The clip's frames rarely start where the catalog's did, and half a hop of misalignment flips several bits of
    every item; a few items cannot outvote that as a longer clip's rescoring does. So the clip is fingerprinted
    ``policy.short_phases`` times, each time a further fraction of the hop into it, and each variant is placed
    by ``FingerprintIndex.place_short`` (every item at one alignment, almost no bit errors). The best placement
    over the variants wins; its score is recomputed over the audio the items summarise (the clip after the skip).
    """
    policy = index.policy
    hop = round(ITEM_S * MATCH_RATE)
    best: dict[str, Match] = {}
    for phase in range(policy.short_phases):
        skip = round(phase * hop / policy.short_phases)
        heard_s = (len(samples) - skip) / MATCH_RATE
        for match in index.place_short(fingerprint_samples(samples[skip:], rate=MATCH_RATE)):
            # The same agreement (against chance, see ``score``) over the audio heard rather than the items' span.
            placed = replace(match, query_offset_s=skip / MATCH_RATE, matched_s=heard_s,
                             score=match.score / length_confidence(match.matched_s) * length_confidence(heard_s))
            if placed.asset_id not in best or placed.score > best[placed.asset_id].score:
                best[placed.asset_id] = placed
    return best_first(best.values())[:top]


def suppress_noise(samples: npt.NDArray[np.float32], *, frame: int = 1024, floor_percentile: float = 20.0,
                   over_subtraction: float = 2.0, min_gain: float = 0.1) -> npt.NDArray[np.float32]:
    """``samples`` with a steady noise floor subtracted (spectral subtraction), for the search of a noisy clip.

    The noise floor of each frequency bin is the ``floor_percentile``-th percentile of its power over the clip:
    steady noise (hiss, hum, a room, the pink noise of the bench) is there all the time, music is not. Each bin
    of each frame keeps the share of its power above ``over_subtraction`` times the floor, and at least
    ``min_gain`` of its amplitude, so what is left is mostly the notes that Chromaprint's chroma is made of.
    A note held through most of the clip counts as floor and is weakened too; the plain clip is always searched
    as well. Hann frames at 75 % overlap, resynthesised by overlap-add.
    """
    hop = frame // 4
    window = np.hanning(frame + 1)[:-1]  # periodic: its squares at 75 % overlap sum to 1.5 everywhere
    padded = np.concatenate([np.zeros(frame), samples, np.zeros(frame + hop)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop] * window
    spectrum = np.fft.rfft(frames, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    floor = np.percentile(power, floor_percentile, axis=0)
    gain = np.sqrt(np.maximum(1.0 - over_subtraction * floor / np.maximum(power, 1e-20), min_gain**2))
    cleaned = np.fft.irfft(spectrum * gain, n=frame, axis=1) * window
    out = np.zeros(len(padded))
    for k in range(frame // hop):  # frames k, k + 4, k + 8 … lie end to end: add each such row at once
        row = cleaned[k :: frame // hop].ravel()[: len(out) - k * hop]
        out[k * hop : k * hop + len(row)] += row
    restored: npt.NDArray[np.float32] = (out[frame : frame + len(samples)] / 1.5).astype(np.float32)
    return restored


def resample(samples: npt.NDArray[np.float32], factor: float) -> npt.NDArray[np.float32]:
    """``samples`` played ``factor`` times slower (longer by ``factor``, pitch lower by it).

    Linear interpolation: Chromaprint looks only at 28 Hz–3.5 kHz, far below where its error matters at
    11,025 Hz.
    """
    if len(samples) < 2:
        return samples.copy()
    length = int(len(samples) * factor)
    # float32 positions (twice as fast) are off by at most 1/16 sample below 2**20 samples (95 s)
    positions: npt.NDArray[np.floating[Any]] = (
        np.arange(length, dtype=np.float32) * np.float32(1 / factor) if length < 1 << 20
        else np.arange(length, dtype=np.float64) / factor
    )
    left = np.minimum(positions.astype(np.int64), len(samples) - 2)
    fraction = (positions - left).astype(np.float32)
    interpolated: npt.NDArray[np.float32] = samples[left] + fraction * (samples[left + 1] - samples[left])
    return interpolated
