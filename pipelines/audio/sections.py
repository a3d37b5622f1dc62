"""Sections — the large parts of a recording (intro, verse, chorus, a spoken interlude) — as Spotify's audio
analysis gave them: start, duration, loudness, tempo, key and mode of each.

Computed on the ~2 s analysis segments of :mod:`pipelines.audio.features`, never on the audio again. Each segment is
described by its mean MFCCs (timbre), its chroma profile (harmony) and its level; every column standardised over
the file. A boundary's *novelty* is the distance between the mean description of the ``WINDOW_SEGMENTS``
segments before it and of those after it (~8 s each side). Boundaries are the novelty peaks that stand out from
the file's own novelty (median + ``PEAK_MADS`` median absolute deviations), strongest first, at least
``MIN_SECTION_S`` apart. How far to trust them: changes of instrumentation, harmony or level of a few seconds and
more are found to about ±2 s (one segment); a repeat of the same material is not a boundary, and a gradual
build is found late or not at all. No ground truth was at hand to score them: they are a summary, not a
structural analysis.

Per section: ``loudness`` is the mean power level in dBFS (a full-scale sine is −3 dB), not LUFS; ``tempo`` the
median beat interval of the section's beats (null where the section has under 8 beats, e.g. beyond the rhythm
window); ``key``/``mode`` the key profile fit of the section's chroma (:func:`pipelines.audio.key.estimate_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.audio.key import estimate_key

Floats = npt.NDArray[np.float64]

WINDOW_SEGMENTS = 4
MIN_SECTION_S = 10.0
PEAK_MADS = 3.0
MIN_SECTION_BEATS = 8


@dataclass(frozen=True)
class Section:
    start_s: float
    duration_s: float
    loudness_db: float
    tempo_bpm: float | None
    key: int
    mode: int
    key_confidence: float

    def to_document(self) -> dict[str, object]:
        return {
            "start": round(self.start_s, 2),
            "duration": round(self.duration_s, 2),
            "loudness": round(self.loudness_db, 2),
            "tempo": None if self.tempo_bpm is None else round(self.tempo_bpm, 2),
            "key": self.key,
            "mode": self.mode,
            "key_confidence": round(self.key_confidence, 3),
        }


def find_sections(
    *,
    mfcc: Floats,
    chroma: Floats,
    level_db: Floats,
    segment_s: float,
    duration_s: float,
    beats_s: Sequence[float],
) -> tuple[Section, ...]:
    """Sections of a file from its per-segment mean MFCCs ``(n, k)``, chroma sums ``(n, 12)`` and mean levels
    (dBFS, ``(n,)``), each segment ``segment_s`` long, and its beat times (s). Empty for an empty file."""
    n = len(level_db)
    if n == 0:
        return ()
    boundaries = [0, *_boundaries(mfcc, chroma, level_db, segment_s), n]
    beats = np.asarray(beats_s, dtype=np.float64)
    sections = []
    for first, last in zip(boundaries[:-1], boundaries[1:], strict=True):
        start = first * segment_s
        end = duration_s if last == n else min(duration_s, last * segment_s)
        power = np.power(10.0, level_db[first:last] / 10.0)
        inside = beats[(beats >= start) & (beats < end)]
        tempo = 60.0 / float(np.median(np.diff(inside))) if len(inside) >= MIN_SECTION_BEATS else None
        key = estimate_key(chroma[first:last].sum(axis=0))
        sections.append(Section(start_s=start, duration_s=max(0.0, end - start),
                                loudness_db=float(10.0 * np.log10(power.mean() + 1e-12)), tempo_bpm=tempo,
                                key=key.key, mode=key.mode, key_confidence=key.confidence))
    return tuple(sections)


def novelty(mfcc: Floats, chroma: Floats, level_db: Floats) -> Floats:
    """Per segment boundary ``i`` (before segment ``i``; 0 for the first), the distance between the standardised
    mean descriptions of up to ``WINDOW_SEGMENTS`` segments either side, divided by the square root of the
    description's length."""
    totals = chroma.sum(axis=1, keepdims=True)
    profile = np.divide(chroma, totals, out=np.zeros_like(chroma), where=totals > 0)
    described = np.column_stack([mfcc, profile, level_db])
    spread = described.std(axis=0)
    standard = (described - described.mean(axis=0)) / np.where(spread > 1e-9, spread, 1.0)
    n = len(standard)
    out = np.zeros(n)
    for i in range(2, n - 1):
        before = standard[max(0, i - WINDOW_SEGMENTS) : i].mean(axis=0)
        after = standard[i : i + WINDOW_SEGMENTS].mean(axis=0)
        out[i] = float(np.linalg.norm(before - after)) / np.sqrt(standard.shape[1])
    return out


def _boundaries(mfcc: Floats, chroma: Floats, level_db: Floats, segment_s: float) -> list[int]:
    n = len(level_db)
    gap = max(1, int(round(MIN_SECTION_S / segment_s)))
    if n < 2 * gap:
        return []
    curve = novelty(mfcc, chroma, level_db)
    inner = curve[gap : n - gap + 1]
    median = float(np.median(inner))
    threshold = median + PEAK_MADS * float(np.median(np.abs(inner - median)))
    chosen: list[int] = []
    for index in np.argsort(curve)[::-1]:
        i = int(index)
        if curve[i] <= threshold or curve[i] <= 0.0:
            break
        if i < gap or n - i < gap or any(abs(i - c) < gap for c in chosen):
            continue
        chosen.append(i)
    return sorted(chosen)
