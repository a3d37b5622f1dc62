"""The fingerprint match index: which catalog asset a clip comes from, where, and how sure.

An inverted index over Chromaprint items (each 32-bit item a key, its position a posting), held as three flat
numpy arrays — 12 bytes per item, about 0.35 MB per hour of indexed audio. A query looks up every one of its
items, lets each hit vote for an alignment (asset, offset), and rescores the best alignments by bit error rate
over the aligned items: the matched region is the longest stretch where the clip and the asset agree, and its
bit error rate — against what the two stretches reach by chance, which for steady sounds (tones, hum, silence)
is all they reach — and its length make the score. Each query item is looked up with each of its bits flipped in turn
too (``MatchPolicy.lookup_bit_errors``): noise flips a few bits of most items, and an item within one bit of
the asset's still votes, at no cost in index memory.

An alignment may also be searched at a tempo ratio other than 1 (the clip's items spaced ``ratio`` times the
asset's): that is how a clip whose tempo was changed, or whose pitch was corrected by resampling, still lines
up. Beside the items, the index holds each asset's spectral-peak landmarks (:mod:`pipelines.match.landmarks`): one
uint32 anchor time per landmark, grouped by hash under a directory (:meth:`FingerprintIndex.search_landmarks`),
about 0.1 MB per hour more. Shards are indexes over disjoint sets of assets; their matches merge by score. A
:class:`LayeredIndex` is two such shards, a large one and a small one over the assets changed since, which keeps
a catalog's index current.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
import json
import os
from pathlib import Path
import shutil
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pipelines.match.fingerprint import ITEM_S, Items
from pipelines.match.landmarks import FRAME_S, HASH_BITS, Landmarks

_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)
_OFFSET_BIAS = 1 << 31
_SINGLE = 1 << np.arange(32, dtype=np.uint64)
_DOUBLE = [a | b for i, a in enumerate(_SINGLE) for b in _SINGLE[i + 1 :]]
_FLIPS = np.concatenate([[0], _SINGLE, _DOUBLE]).astype(np.uint32)
"""XOR masks: the item itself, each single-bit flip of it (1..32), then each two-bit flip (33..528)."""
_PROBES = {0: 1, 1: 33, 2: 529}
_SAVED_ARRAYS = ("items", "starts", "keys", "postings", "lm_starts", "lm_directory", "lm_postings")
UNRELATED_BER = 0.35
"""About the bit error rate unrelated music reaches at an alignment: where a match's agreement falls to 0."""
STEADY_BER = 0.1
"""Two aligned stretches of more than ``CHANCE_LAG`` items whose items a second or more apart differ by chance
(:func:`chance_bit_error_rate`) in fewer bits than this share are a steady sound against another — a tone, hum,
silence, a beep every half second: they match nothing, however well they agree. The stretches that the bench's
true matches of 5 s and longer aligned stood at 0.17 or more; steady sounds at 0 to 0.08 (a tone with faint
noise, a beep track: a few items that differ in a bit or two)."""
SHORT_STEADY_BER = 0.02
"""The same for a stretch of ``CHANCE_LAG`` items or fewer (a 3 s clip has 3, 0.12 s apart), measured over pairs
at any distance: 99 % of the bench's 3-item stretches of music stood at 0.04 or more (README, "Steady sounds")."""
CHANCE_LAG = 8
"""Items this far apart (1 s) are as unlike as music's items get: the mean bit error rate between items ``k``
apart levels off by ``k`` = 8 (0.14 at 1, 0.34 at 4, 0.41 at 8, 0.43 at 24, median of the bench's pieces)."""


@dataclass(frozen=True, kw_only=True)
class MatchPolicy:
    """How hard to look and what counts as a match. Scores are 0..1; see :func:`score`."""

    max_postings_per_key: int = 2000
    """Items this common (silence, a held chord across the catalog) say nothing about where a clip is from."""
    landmark_votes: tuple[float, float] = (4.0, 6.7)
    """``(a, b)``: a clip placed by its landmarks (:meth:`FingerprintIndex.search_landmarks`) with ``v`` of them at
    one alignment scores at most ``1 - exp(-(v - a) / b)``: 0.45 (``accept_grid_score``) at 8 votes ..."""
    landmark_distinctness: float = 2.5
    """... and at most ``1 - exp(-d / landmark_distinctness)``, where ``d = (v - v2) / sqrt(v2 + 1)`` and ``v2``
    is the most votes any other place got (another asset, or the same one over a second away): 0.45 at ``d`` =
    1.5. Music that shares a game's instruments and patterns with a catalog track votes as much for many places
    of it (out-of-catalog clips reached 34 votes, but ``d`` under 1); a clip's true place stands out."""
    landmark_apart_s: float = 1.0
    lookup_bit_errors: int = 1
    """Each query item is also looked up with each one of its 32 bits flipped (1), or only as it is (0); 2 (any
    two bits flipped, 529 probes per item) is what ``find_clip`` tries before the speed grid."""
    min_votes: int = 3
    candidates_per_ratio: int = 8
    good_item_errors: float = 8.0
    """Bit errors (of 32) under which an aligned item, smoothed over ``smoothing_items``, agrees."""
    smoothing_items: int = 8
    accept_score: float = 0.35
    """A clip found at its own speed within ``lookup_bit_errors`` is a match from this score up. Out-of-catalog
    10 s clips reached at most 0.24 against a 10,000-track index (``bench/match_bench.py``)."""
    sure_score: float = 0.6
    """A plain match from this score up is answered at once. Under it, ``find_clip`` also tries the two-bit lookup
    and the clip with its noise floor taken out, and answers the best of the three: a noisy clip's plain answer
    was at times a near-repeat of the music (a loop's variation) that its true place beats in the deeper search."""
    accept_grid_score: float = 0.45
    """A clip found only by the two-bit lookup or at another speed or tempo (``find_clip``'s grid) is a match
    from this score up: out-of-catalog clips reached 0.32 and 0.35 there, true grid matches 0.61 in 95 %."""
    short_phases: int = 8
    """A clip too short for the rescoring (under ``smoothing_items`` items, i.e. under about 3.6 s) is fingerprinted
    this many times, each time starting a further 1/``short_phases`` of Chromaprint's hop into it, so one of the
    variants' frames lies within 1/16 hop of the catalog's."""
    short_spare_bits: int = 2
    """Such a clip is placed only where *every* one of its ``n`` items is found at one (asset, offset) and the
    items differ from the asset's in at most ``n - short_spare_bits`` bits in all: 2 items must agree exactly, 3
    within one bit. Chosen on the bench's out-of-catalog 3 s windows against 10,000 tracks (README)."""


@dataclass(frozen=True)
class Match:
    """A clip's region found in a catalog asset. Times in seconds; ``speed`` is the clip's speed factor."""

    asset_id: str
    score: float
    query_offset_s: float
    asset_offset_s: float
    matched_s: float
    bit_error_rate: float
    speed: float = 1.0

    def to_document(self) -> dict[str, object]:
        return {
            "asset_id": self.asset_id,
            "score": round(self.score, 4),
            "query_offset_s": round(self.query_offset_s, 2),
            "asset_offset_s": round(self.asset_offset_s, 2),
            "matched_s": round(self.matched_s, 2),
            "bit_error_rate": round(self.bit_error_rate, 4),
            "speed": round(self.speed, 4),
        }


@dataclass(frozen=True)
class _Alignment:
    asset: int
    offset: int
    votes: int
    ratio: float


class FingerprintIndex:
    """An immutable index over ``(asset_id, items)`` pairs; build a new one to add or remove assets."""

    def __init__(self, entries: Iterable[tuple[str, Items]], *, landmarks: Mapping[str, Landmarks] | None = None,
                 policy: MatchPolicy | None = None) -> None:
        self.policy = policy or MatchPolicy()
        ids: list[str] = []
        arrays: list[Items] = []
        for asset_id, items in entries:
            if len(items):
                ids.append(asset_id)
                arrays.append(np.asarray(items, dtype=np.uint32))
        self.asset_ids = tuple(ids)
        self.items: Items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint32)
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        order = np.argsort(self.items, kind="stable")
        self.keys: Items = self.items[order]
        self.postings: npt.NDArray[np.uint32] = order.astype(np.uint32)
        self._index_landmarks([(landmarks or {}).get(asset_id) for asset_id in ids])

    def _index_landmarks(self, per_asset: Sequence[Landmarks | None]) -> None:
        """The landmark index: every asset's anchors on one frame axis, asset after asset (asset ``a``'s frames
        from ``lm_starts[a]``), grouped by hash: the anchors of hash ``h`` are ``lm_postings[lm_directory[h] :
        lm_directory[h + 1]]``. 4 bytes a landmark and a 1 MiB directory; none at all without landmarks."""
        spans = [int(lm.frames.max()) + 1 if lm is not None and len(lm) else 0 for lm in per_asset]
        self.lm_starts = np.concatenate([[0], np.cumsum(spans, dtype=np.int64)]).astype(np.int64)
        present = [(a, lm) for a, lm in enumerate(per_asset) if lm is not None and len(lm)]
        if not present:
            self.lm_directory = self.lm_postings = np.zeros(0, dtype=np.uint32)
            return
        hashes = np.concatenate([lm.hashes for _, lm in present])
        anchors = np.concatenate([lm.frames.astype(np.int64) + self.lm_starts[a] for a, lm in present])
        order = np.argsort(hashes, kind="stable")
        self.lm_postings = anchors[order].astype(np.uint32)
        self.lm_directory = np.searchsorted(hashes[order], np.arange((1 << HASH_BITS) + 1)).astype(np.uint32)

    def save(self, folder: Path) -> None:
        """Write the index to ``folder``, whole or not at all: its arrays as ``.npy`` files, which :meth:`load`
        maps read-only, so that every process on a machine that loads one snapshot shares its memory. If another
        process saved the same snapshot first, theirs stays."""
        partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in _SAVED_ARRAYS:
            np.save(partial / f"{name}.npy", getattr(self, name))
        (partial / "asset_ids.json").write_text(json.dumps(self.asset_ids))
        try:
            partial.rename(folder)
        except OSError:  # the folder exists: saved by another process
            shutil.rmtree(partial, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, *, policy: MatchPolicy | None = None) -> FingerprintIndex:
        """The index :meth:`save` wrote to ``folder``, its arrays mapped read-only from the files."""
        index = cls((), policy=policy)
        index.asset_ids = tuple(json.loads((folder / "asset_ids.json").read_text()))
        for name in _SAVED_ARRAYS:
            setattr(index, name, np.load(folder / f"{name}.npy", mmap_mode="r"))
        return index

    def __len__(self) -> int:
        return len(self.asset_ids)

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, name).nbytes for name in _SAVED_ARRAYS))

    @property
    def indexed_s(self) -> float:
        return float(len(self.items) * ITEM_S)

    def search(self, query: Items, *, ratios: Sequence[float] = (1.0,), speed: float = 1.0,
               bit_errors: int | None = None) -> list[Match]:
        """The best match per asset for ``query``, best first, including those under the acceptance score.

        ``speed`` is the factor by which the clip was resampled before fingerprinting (``query`` times are
        divided by it to give times in the clip as received).
        """
        query = np.asarray(query, dtype=np.uint32)
        hits = self._hits(query, self.policy.lookup_bit_errors if bit_errors is None else bit_errors)
        if hits is None:
            return []
        best: dict[int, Match] = {}
        for ratio in ratios:
            for alignment in self._vote(*hits, ratio):
                match = self._rescore(query, alignment, speed)
                if match is not None and (alignment.asset not in best or match.score > best[alignment.asset].score):
                    best[alignment.asset] = match
        return best_first(best.values())

    def place_short(self, query: Items) -> list[Match]:
        """Where a query of a few items (too few to rescore) lies whole: the alignments at which each of its
        items is within two bits of the asset's and all of them together within ``short_spare_bits`` fewer bits
        than there are items; best (fewest bit errors) first, one per asset. Offsets are in ``query``'s time."""
        query = np.asarray(query, dtype=np.uint32)
        allowed = len(query) - self.policy.short_spare_bits
        hits = self._hits(query, 2) if allowed >= 0 else None
        if hits is None:
            return []
        query_index, assets, local = hits
        n = len(query)  # each (alignment, query item) pair once, however many probes of the item hit there
        keys = np.unique((assets * (1 << 32) + local - query_index + _OFFSET_BIAS) * n + query_index) // n
        alignments, items_found = np.unique(keys, return_counts=True)
        best: dict[int, Match] = {}
        for key in alignments[items_found == n]:
            asset, offset = int(key >> 32), int((key & 0xFFFFFFFF) - _OFFSET_BIAS)
            start = int(self.starts[asset]) + offset
            xor = query ^ self.items[start : start + n]
            errors = int(_POPCOUNT16[xor & 0xFFFF].sum() + _POPCOUNT16[xor >> 16].sum())
            if errors > allowed:
                continue
            ber = errors / (32 * n)
            matched_s = n * ITEM_S
            chance = chance_level(query, self.items[start : start + n])
            match_score = score(ber, matched_s, chance_ber=chance)
            if match_score <= 0.0:  # items that agree no better than they do at other places: a steady sound
                continue
            match = Match(asset_id=self.asset_ids[asset], score=match_score, query_offset_s=0.0,
                          asset_offset_s=offset * ITEM_S, matched_s=matched_s, bit_error_rate=ber)
            if asset not in best or match.score > best[asset].score:
                best[asset] = match
        return best_first(best.values())

    def search_landmarks(self, landmarks: Landmarks, query: Items) -> list[Match]:
        """The best match per asset for a clip's ``landmarks`` (:func:`~pipelines.match.landmarks.clip_landmarks`),
        best first: the alignments most of them vote for, placed to the item and measured by the clip's
        Chromaprint ``query`` there. An alignment whose items agree no better than unrelated music's (score 0) is
        dropped; the others score by their votes and how far they stand out (``MatchPolicy.landmark_votes``,
        ``landmark_distinctness``) or by their items, the higher."""
        if not len(self.lm_directory) or not len(landmarks):
            return []
        hashes = landmarks.hashes.astype(np.int64)
        left = self.lm_directory[hashes].astype(np.int64)
        counts = self.lm_directory[hashes + 1].astype(np.int64) - left
        useful = (counts > 0) & (counts <= self.policy.max_postings_per_key)
        if not useful.any():
            return []
        counts, left = counts[useful], left[useful]
        clip_frames = np.repeat(landmarks.frames[useful].astype(np.int64), counts)
        positions = self.lm_postings[_runs(left, counts)].astype(np.int64)
        assets = np.searchsorted(self.lm_starts, positions, side="right") - 1
        a, b = self.policy.landmark_votes
        apart = self.policy.landmark_apart_s / FRAME_S
        alignments = self._vote(clip_frames, assets, positions - self.lm_starts[assets], 1.0)
        best: dict[int, Match] = {}
        for alignment in alignments:
            rival = max((other.votes for other in alignments
                         if other.asset != alignment.asset or abs(other.offset - alignment.offset) > apart), default=0)
            voted = min(1.0 - float(np.exp(-(alignment.votes - a) / b)),
                        1.0 - float(np.exp(-(alignment.votes - rival) / np.sqrt(rival + 1)
                                           / self.policy.landmark_distinctness)))
            if voted <= 0.0:
                continue
            near = round(alignment.offset * FRAME_S / ITEM_S)
            placed = [self._rescore(query, _Alignment(alignment.asset, near + step, alignment.votes, 1.0), 1.0)
                      for step in (-1, 0, 1)]
            found = max((m for m in placed if m is not None), key=lambda m: m.score, default=None)
            if found is None:
                continue
            match = replace(found, score=max(found.score, voted))
            if alignment.asset not in best or match.score > best[alignment.asset].score:
                best[alignment.asset] = match
        return best_first(best.values())

    def _hits(
        self, query: Items, bit_errors: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
        """For every (query item, posting) pair whose items differ in at most ``bit_errors`` (0..2) bits: query
        index, asset, offset in the asset."""
        flips = _FLIPS[: _PROBES[bit_errors]]
        probes = (query[:, None] ^ flips[None, :]).ravel()
        left = np.searchsorted(self.keys, probes, side="left")
        right = np.searchsorted(self.keys, probes, side="right")
        counts = right - left
        useful = (counts > 0) & (counts <= self.policy.max_postings_per_key)
        if not useful.any():
            return None
        counts, left = counts[useful], left[useful]
        query_index = np.repeat(np.flatnonzero(useful) // len(flips), counts)
        positions = self.postings[_runs(left, counts)].astype(np.int64)
        assets = np.searchsorted(self.starts, positions, side="right") - 1
        return query_index, assets, positions - self.starts[assets]

    def _vote(
        self,
        query_index: npt.NDArray[np.int64],
        assets: npt.NDArray[np.int64],
        local: npt.NDArray[np.int64],
        ratio: float,
    ) -> list[_Alignment]:
        offsets = local - np.rint(query_index * ratio).astype(np.int64)
        keys = assets * (1 << 32) + offsets + _OFFSET_BIAS
        unique, votes = np.unique(keys, return_counts=True)
        # An item or two of jitter (frame grids that do not coincide) splits votes between neighbours: pool them.
        pooled = votes.copy()
        for step in (-1, 1):
            at = np.searchsorted(unique, unique + step)
            found = (at < len(unique)) & (unique[np.minimum(at, len(unique) - 1)] == unique + step)
            pooled[found] += votes[at[found]]
        top = np.argsort(pooled)[::-1][: self.policy.candidates_per_ratio]
        return [
            _Alignment(int(unique[i] >> 32), int((unique[i] & 0xFFFFFFFF) - _OFFSET_BIAS), int(pooled[i]), ratio)
            for i in top
            if pooled[i] >= self.policy.min_votes
        ]

    def _rescore(self, query: Items, alignment: _Alignment, speed: float) -> Match | None:
        start, stop = self.starts[alignment.asset], self.starts[alignment.asset + 1]
        reference = self.items[start:stop]
        positions = alignment.offset + np.rint(np.arange(len(query)) * alignment.ratio).astype(np.int64)
        inside = (positions >= 0) & (positions < len(reference))
        if inside.sum() < self.policy.smoothing_items:
            return None
        q_index = np.flatnonzero(inside)
        xor = query[q_index] ^ reference[positions[inside]]
        errors = (_POPCOUNT16[xor & 0xFFFF] + _POPCOUNT16[xor >> 16]).astype(np.float64)
        window = np.ones(self.policy.smoothing_items) / self.policy.smoothing_items
        smoothed = np.convolve(errors, window, mode="same")

        aligned_query, aligned_reference = query[q_index], reference[positions[inside]]

        def scored(region: tuple[int, int]) -> tuple[float, float, float]:
            """Score, bit error rate and clip seconds of the aligned items ``first..last``, the agreement measured
            against what these two stretches reach by chance (a steady sound against another agrees everywhere)."""
            first, last = region
            ber = float(errors[first : last + 1].mean() / 32)
            seconds = (int(q_index[last]) - int(q_index[first]) + 1) * ITEM_S / speed
            chance = chance_level(aligned_query[first : last + 1], aligned_reference[first : last + 1])
            return score(ber, seconds, chance_ber=chance), ber, seconds

        # The region is the longest stretch that agrees, or the whole overlap if that scores higher: under heavy
        # noise the items agree only on average, and a few bad ones break every stretch short.
        run = _longest_run(smoothed < self.policy.good_item_errors)
        regions = [run, (0, len(errors) - 1)] if run[1] >= run[0] else [(0, len(errors) - 1)]
        scores = {region: scored(region) for region in regions}
        first, last = max(regions, key=lambda region: scores[region][0])
        match_score, ber, matched_s = scores[(first, last)]
        if match_score <= 0.0:
            return None
        q0 = int(q_index[first])
        return Match(
            asset_id=self.asset_ids[alignment.asset],
            score=match_score,
            query_offset_s=q0 * ITEM_S / speed,
            asset_offset_s=float(positions[q0] * ITEM_S),
            matched_s=matched_s,
            bit_error_rate=ber,
            speed=speed,
        )


class ClipIndex(Protocol):
    """What the clip search needs of an index: :class:`FingerprintIndex`, or :class:`LayeredIndex` over several."""

    policy: MatchPolicy

    def search(self, query: Items, *, ratios: Sequence[float] = (1.0,), speed: float = 1.0,
               bit_errors: int | None = None) -> list[Match]: ...

    def place_short(self, query: Items) -> list[Match]: ...

    def search_landmarks(self, landmarks: Landmarks, query: Items) -> list[Match]: ...


class LayeredIndex:
    """A large index, a small one over the assets added or replaced since it was built, and the large one's assets
    that were deleted or replaced since (``hidden``): the catalog's index kept current without rebuilding the
    large one for every change. Each layer answers with its best match per asset; the hidden assets' answers are
    dropped, and the layers merge by score (they hold disjoint assets once the hidden ones are dropped).
    """

    def __init__(self, base: FingerprintIndex, recent: FingerprintIndex, hidden: frozenset[str] = frozenset()) -> None:
        self.base, self.recent, self.hidden = base, recent, hidden
        self.policy = base.policy

    def __len__(self) -> int:
        return len(self.base) - len(self.hidden) + len(self.recent)

    def search(self, query: Items, *, ratios: Sequence[float] = (1.0,), speed: float = 1.0,
               bit_errors: int | None = None) -> list[Match]:
        return self._merge(layer.search(query, ratios=ratios, speed=speed, bit_errors=bit_errors)
                           for layer in (self.base, self.recent))

    def place_short(self, query: Items) -> list[Match]:
        return self._merge(layer.place_short(query) for layer in (self.base, self.recent))

    def search_landmarks(self, landmarks: Landmarks, query: Items) -> list[Match]:
        return self._merge(layer.search_landmarks(landmarks, query) for layer in (self.base, self.recent))

    def _merge(self, answers: Iterable[list[Match]]) -> list[Match]:
        base, recent = answers
        kept = [m for m in base if m.asset_id not in self.hidden] + recent
        return best_first(kept)


def score(bit_error_rate: float, matched_s: float, *, chance_ber: float = UNRELATED_BER) -> float:
    """0..1: agreement times confidence in the length of the region (a 3 s region counts about two thirds, 10 s
    nearly fully). Agreement is 1 at a bit error rate of 0 and 0 at ``UNRELATED_BER`` (what unrelated music
    reaches), or already at ``chance_ber`` when that is lower: the bit error rate the two stretches reach by chance
    (:func:`chance_level`), which is what a steady sound's items reach at their own alignment too. 0 when
    ``chance_ber`` is 0."""
    reach = min(UNRELATED_BER, chance_ber)
    if reach <= 0.0:
        return 0.0
    agreement = max(0.0, 1.0 - bit_error_rate / reach)
    return float(agreement * length_confidence(matched_s))


def length_confidence(matched_s: float) -> float:
    """0..1: how much a region of ``matched_s`` seconds counts (:func:`score`)."""
    return float(1.0 - np.exp(-matched_s / 3.0))


def chance_level(query: Items, reference: Items) -> float:
    """What the agreement of two aligned stretches is measured against (:func:`score`'s ``chance_ber``): their
    :func:`chance_bit_error_rate`, or 0 — a steady sound, nothing to match — under ``STEADY_BER`` (or
    ``SHORT_STEADY_BER`` for a stretch of ``CHANCE_LAG`` items or fewer)."""
    chance = chance_bit_error_rate(query, reference)
    return chance if chance >= (STEADY_BER if len(query) > CHANCE_LAG else SHORT_STEADY_BER) else 0.0


def chance_bit_error_rate(query: Items, reference: Items) -> float:
    """The bit error rate of two aligned stretches of ``n`` items if their agreement were chance: the mean over
    every pair of a query item and a reference item ``CHANCE_LAG`` or more positions apart (any other position when
    ``n`` is ``CHANCE_LAG`` or less). 0 for fewer than 2 items.

    Between music's items a second apart or more, about 0.4 of the bits differ (the median of the bench's pieces;
    0.17 in the least varied stretch that a true match aligned), so an alignment's agreement is information. A
    steady sound — a test tone, silence, mains hum, a click track — repeats one item, or a few that differ in a bit
    or two, and Chromaprint gives every steady sound nearly the same items: a stretch of it agrees with any other
    steady one as well at every position as at its alignment, and this falls to the aligned bit error rate itself,
    or to 0. Noise gives random items that share most of their bits (white noise: about 0.17). Computed from the
    count of ones per bit position on each side, less the pairs under ``CHANCE_LAG`` apart counted directly:
    ``O(32 n)``.
    """
    n = len(query)
    if n < 2:
        return 0.0
    query = np.ascontiguousarray(query, dtype=np.uint32)
    reference = np.ascontiguousarray(reference, dtype=np.uint32)
    ones_q = _ones_per_bit(query)
    ones_r = _ones_per_bit(reference)
    differing = int((ones_q * (n - ones_r) + ones_r * (n - ones_q)).sum())  # differing bits over all n² pairs
    # Less the pairs too close to have become unlike (lags 0, ±1 … ±7), or, in a stretch too short to hold pairs
    # that far apart, the aligned pairs alone.
    lags = range(1, CHANCE_LAG) if n > CHANCE_LAG else range(0)
    near = np.concatenate([query ^ reference, *(query[lag:] ^ reference[: n - lag] for lag in lags),
                           *(query[: n - lag] ^ reference[lag:] for lag in lags)])
    differing -= _bit_errors(near)
    return differing / (32 * (n * n - len(near)))


def _ones_per_bit(items: Items) -> npt.NDArray[np.int64]:
    """How many of ``items`` have each bit set (in the order of the bytes in memory: the same for any two)."""
    ones: npt.NDArray[np.int64] = np.unpackbits(items.view(np.uint8).reshape(-1, 4), axis=1).sum(axis=0, dtype=np.int64)
    return ones


def _bit_errors(xor: Items) -> int:
    """The set bits of every item of ``xor`` together."""
    return int(_POPCOUNT16[xor & 0xFFFF].sum(dtype=np.int64) + _POPCOUNT16[xor >> 16].sum(dtype=np.int64))


def merge(results: Iterable[Sequence[Match]], *, top: int, accept: float) -> list[Match]:
    """The best match per asset across shards or query variants, accepted ones only, best first."""
    best: dict[str, Match] = {}
    for matches in results:
        for match in matches:
            if match.score >= accept and (match.asset_id not in best or match.score > best[match.asset_id].score):
                best[match.asset_id] = match
    return best_first(best.values())[:top]


def best_first(matches: Iterable[Match]) -> list[Match]:
    """Highest score first; equal scores by asset id, so that every index over the same assets answers alike."""
    return sorted(matches, key=lambda m: (-m.score, m.asset_id))


def _runs(left: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``left[i] .. left[i] + counts[i] - 1`` for every ``i``, flattened: the postings of every key looked up."""
    return np.repeat(left - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())


def _longest_run(mask: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """First and last index of the longest run of ``True`` (``(0, -1)`` when there is none)."""
    if not mask.any():
        return 0, -1
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, stops = edges[::2], edges[1::2]
    longest = int(np.argmax(stops - starts))
    return int(starts[longest]), int(stops[longest] - 1)
