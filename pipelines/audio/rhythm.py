"""Tempo, beats, bars and metre from a per-frame onset-strength envelope.

The beat tracker is librosa's (``librosa.beat.beat_track`` at a given tempo: Ellis's 2007 dynamic programme) and
the attack count is librosa's onset picker; the tempo and its octave check, the metre and the bars are this
module's own. librosa's kernels are compiled or loaded under a lock first (:mod:`pipelines.audio.kernels`).

How each figure is found and how far to trust it (figures from ``bench/features_bench.py``):

- **tempo** — the strongest beat period in the onset envelope's autocorrelation (``librosa.autocorrelate``),
  weighted by a log-normal preference around 120 BPM one octave wide (librosa's prior), refined between lags
  (librosa's own estimate, ``librosa.feature.tempo``, stops at whole-frame lags, ±1.2 % at 120 BPM). Then the
  octave is checked on the beats themselves: the beats are tracked at that period, and if the points halfway
  between them carry attacks nearly as strong as the beats and the autocorrelation at half the period is nearly
  as high (``DOUBLE_EVIDENCE``), the beat is taken to be twice as fast — the autocorrelation alone favours slow
  periods, because a bar repeats as well as a beat does. The other octaves are listed with their
  autocorrelation strengths. The onset strength is a rise in dB, so over silence a quiet attack counts as much
  as a loud one: quiet off-beat clicks in silence double the tempo, where the same clicks over a music bed
  30 dB down do not. On the benchmark's MIDI corpus: Accuracy1 0.92, Accuracy2 1.0 (``bench/README.md``).
- **beats** — librosa's tracker at that tempo (tightness 100, the period rounded to whole frames, weak beats
  at either end trimmed); within ~2 ms of generated attacks.
- **time signature** — 3 or 4 beats per bar: whether the beats' accents repeat every 3 beats more than every
  2 or 4; **bars** — the beats that start a bar: the phase of that cycle whose beats are most accented.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt
import scipy.ndimage

from pipelines.audio.kernels import load_kernels

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

MIN_BPM, MAX_BPM = 30.0, 300.0
PRIOR_CENTRE_BPM, PRIOR_OCTAVES = 120.0, 1.0
"""The tempo prior: log-normal around 120 BPM, one octave wide (librosa's)."""
MAX_DOUBLED_BPM = 200.0
"""The octave check doubles a tempo only up to this."""
DOUBLE_EVIDENCE = 1.3
"""The beat is taken to be twice as fast when the attacks halfway between the beats (relative to those on them,
:func:`midpoint_ratio`) plus the autocorrelation at half the period (relative to that at the period) reach this.
Set on the benchmark's MIDI corpus, where the two groups lie at 1.0–1.2 (right as it was) and 1.4–1.8 (the beat
was twice as fast): the accuracy it reports is measured on the data this was chosen on."""
MIN_RHYTHM_S = 5.0
MIN_PULSE = 0.1
"""Under this autocorrelation at the best beat period there is no pulse to speak of: no tempo is reported."""
MIN_METRE_BEATS = 12
ONSET_LAG_FRAMES = 1
"""The flux peaks as an attack enters the 93 ms window, a frame before the attack reaches its centre: beat times
are reported one frame later (measured: within 2 ms on noise clicks and on tonal attacks over a pad)."""
TIGHTNESS = 100.0
"""How strongly the tracker holds to the tempo (Ellis's and librosa's default)."""


@dataclass(frozen=True)
class TempoAlternative:
    """Another reading of the beat period: ``bpm`` and its autocorrelation ``strength`` (0..1)."""

    bpm: float
    strength: float


@dataclass(frozen=True)
class Rhythm:
    """Tempo, beats and metre over the rhythm window; all ``None``/empty when no pulse can be measured."""

    tempo_bpm: float | None
    tempo_confidence: float | None
    alternatives: tuple[TempoAlternative, ...]
    beats_s: tuple[float, ...]
    time_signature: int | None
    time_signature_confidence: float | None
    bars_s: tuple[float, ...] = ()
    """Times (s) of the beats that start a bar; empty without a time signature."""


NO_RHYTHM = Rhythm(None, None, (), (), None, None)


def analyse_rhythm(onset: Floats, level_db: Floats, *, sr: int, hop_length: int) -> Rhythm:
    """Tempo (BPM), its alternatives, beat and bar times (s) and metre from per-frame onset strength and level
    (dBFS), one value every ``hop_length`` samples at ``sr`` Hz."""
    load_kernels()
    frame_s = hop_length / sr
    if len(onset) * frame_s < MIN_RHYTHM_S or float(np.std(onset)) <= 1e-9:
        return NO_RHYTHM
    ac = _autocorrelation(onset)
    lags = np.arange(int(np.ceil(60.0 / (MAX_BPM * frame_s))), min(len(ac) - 1, int(60.0 / (MIN_BPM * frame_s)) + 1))
    bpms = 60.0 / (lags * frame_s)
    prior = np.exp(-0.5 * (np.log2(bpms / PRIOR_CENTRE_BPM) / PRIOR_OCTAVES) ** 2)
    best = int(lags[int(np.argmax(np.maximum(ac[lags], 0.0) * prior))])
    if ac[best] < MIN_PULSE:
        return NO_RHYTHM
    confidence = float(np.clip(ac[best], 0.0, 1.0))
    period = _refine_peak(ac, best)
    beats = track_beats(onset, 60.0 / (period * frame_s), sr=sr, hop_length=hop_length)
    faster = _strength_at(ac, period / 2.0) / max(confidence, 1e-9)
    if 60.0 / (period / 2.0 * frame_s) <= MAX_DOUBLED_BPM and midpoint_ratio(onset, beats) + faster >= DOUBLE_EVIDENCE:
        half = _refine_peak(ac, int(round(period / 2.0))) if period >= 4.0 else period / 2.0
        period = half if abs(half - period / 2.0) <= 0.1 * period else period / 2.0
        beats = track_beats(onset, 60.0 / (period * frame_s), sr=sr, hop_length=hop_length)
    tempo = 60.0 / (period * frame_s)
    alternatives = tuple(
        TempoAlternative(bpm=tempo * factor, strength=_strength_at(ac, period / factor))
        for factor in (0.5, 2.0)
        if MIN_BPM <= tempo * factor <= MAX_BPM and period / factor < len(ac) - 2
    )
    metre, metre_confidence, downbeat = _metre(onset, level_db, beats)
    beat_times = tuple(float(b + ONSET_LAG_FRAMES) * frame_s for b in beats)
    return Rhythm(
        tempo_bpm=tempo,
        tempo_confidence=confidence,
        alternatives=alternatives,
        beats_s=beat_times,
        time_signature=metre,
        time_signature_confidence=metre_confidence,
        bars_s=() if metre is None else beat_times[downbeat::metre],
    )


def track_beats(onset: Floats, bpm: float, *, sr: int, hop_length: int) -> Ints:
    """Beat frames through ``onset`` at about ``bpm``: ``librosa.beat.beat_track`` with that tempo (tightness
    ``TIGHTNESS``; leading and trailing beats weaker than half the beats' RMS local score trimmed)."""
    load_kernels()
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=hop_length, bpm=bpm,
                                       tightness=TIGHTNESS, trim=True, units="frames")
    return np.asarray(beats, dtype=np.int64)


def midpoint_ratio(onset: Floats, beats: Ints) -> float:
    """How strong the attacks halfway between beats are next to those on the beats (0 none, 1 as strong), each
    measured as the envelope's peak within ±2 frames above the envelope's median."""
    if len(beats) < 4:
        return 0.0
    floor = float(np.median(onset))
    peak = scipy.ndimage.maximum_filter1d(onset, size=5, mode="nearest") - floor
    on = float(np.mean(np.maximum(peak[beats], 0.0)))
    middle = np.round((beats[:-1] + beats[1:]) / 2.0).astype(np.int64)
    off = float(np.mean(np.maximum(peak[middle], 0.0)))
    return off / on if on > 0.0 else 0.0


def onset_rate(onset: Floats, *, sr: int, hop_length: int) -> float:
    """Attacks per second: librosa's onset picker on the envelope (``onset_detect``: local maxima standing 0.07 of
    the envelope's range over the mean of the 0.1 s either side, 30 ms apart); 0 when the envelope is flat."""
    if len(onset) < 3 or float(onset.max() - onset.min()) <= 1e-12:
        return 0.0
    load_kernels()
    peaks = librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=hop_length, units="frames")
    return float(len(peaks) / (len(onset) * hop_length / sr))


def _autocorrelation(signal: Floats) -> Floats:
    """Autocorrelation of the signal's deviations from its mean, 1 at lag 0."""
    ac = librosa.autocorrelate(signal - signal.mean())
    return np.asarray(ac / ac[0], dtype=np.float64)


def _refine_peak(ac: Floats, lag: int) -> float:
    """The lag of the parabola through the autocorrelation at ``lag`` and its neighbours (sub-frame precision)."""
    if lag < 1 or lag + 1 >= len(ac):
        return float(lag)
    left, centre, right = ac[lag - 1], ac[lag], ac[lag + 1]
    curvature = left - 2.0 * centre + right
    if curvature >= 0.0:
        return float(lag)
    return float(lag + np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def _strength_at(ac: Floats, lag: float) -> float:
    """The autocorrelation's highest value within ±3 % of ``lag``, clipped to 0..1."""
    lo, hi = max(1, int(np.floor(lag * 0.97))), min(len(ac) - 1, int(np.ceil(lag * 1.03)))
    return float(np.clip(ac[lo : hi + 1].max(), 0.0, 1.0))


def _metre(onset: Floats, level_db: Floats, beats: Ints) -> tuple[int | None, float | None, int]:
    """3 or 4 beats per bar, from how the beats' accents repeat; a 0..1 confidence; the index of the first
    downbeat among the beats (the phase of the bar whose beats are most accented).

    A beat's accent is its onset strength plus its level (each standardised over the beats): downbeats are
    usually both the strongest attacks and the loudest moments of a bar.
    """
    if len(beats) < MIN_METRE_BEATS:
        return None, None, 0
    accents = _standardised([onset[max(0, b - 2) : b + 3].max() for b in beats]) + _standardised(
        [level_db[max(0, b - 2) : b + 3].max() for b in beats]
    )
    centred = accents - accents.mean()
    variance = float(centred @ centred) / len(centred)
    if variance <= 1e-12:
        return 4, 0.0, 0
    r = {k: float(centred[k:] @ centred[:-k]) / (len(centred) - k) / variance for k in (2, 3, 4)}
    triple = r[3] - max(r[2], r[4])
    metre = 3 if triple > 0.0 else 4
    downbeat = int(np.argmax([accents[phase::metre].mean() for phase in range(metre)]))
    return metre, float(np.clip(abs(triple), 0.0, 1.0)), downbeat


def _standardised(values: list[float]) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std())
    return (array - array.mean()) / spread if spread > 1e-9 else np.zeros_like(array)
