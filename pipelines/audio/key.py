"""Key and mode from a chroma summary, by correlation with key profiles (Krumhansl–Schmuckler).

librosa has no key estimator. The mean chroma of the music (12 pitch-class energies, C first) is correlated
with the 24 rotations of a major and a minor key profile; the best correlation names the key. Profiles:

- ``krumhansl``: Krumhansl & Kessler (1982) probe-tone ratings, the classic Krumhansl–Schmuckler algorithm.
- ``temperley``: Temperley (2007), pitch-class frequencies in the Kostka–Payne corpus.

The confidence is a softmax over the 24 correlations (temperature ``CONFIDENCE_TEMPERATURE``): near 1 when one key
stands clearly above the others, about 1/24 when all fit equally (noise, speech, atonal music). How far to trust
it: right on tonal music with a clear centre; relative major/minor and fifth-related keys are the usual
confusions (Spotify's own key has the same failure mode), and modal or atonal music has no true answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

KeyProfileName = Literal["krumhansl", "temperley"]

PROFILES: dict[KeyProfileName, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "krumhansl": (
        (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
        (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
    ),
    "temperley": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330),
    ),
}
"""(major, minor) profiles, tonic first."""

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

CONFIDENCE_TEMPERATURE = 0.05
"""Correlation units: a key whose correlation is 0.05 under the best one counts e^−1 as much."""

MIN_CORRELATION = 0.4
"""Under this best correlation the chroma has no tonal centre and no key is reported (key −1). Noise and speech
reach 0.30–0.33 by chance; tonal music 0.45–0.95."""

MIN_CHROMA_CONTRAST = 0.06
"""Under this coefficient of variation across the 12 bins the chroma is flat (noise, percussion): key −1.
Measured: music 0.08–0.64, white and pink noise and noise-burst click tracks 0.045–0.058."""


@dataclass(frozen=True)
class KeyEstimate:
    """A key in Spotify's convention: ``key`` 0 = C … 11 = B, −1 when none was detected; ``mode`` 1 major, 0 minor."""

    key: int
    mode: int
    confidence: float
    """0..1, see the module docstring; 0 when ``key`` is −1."""
    correlation: float
    """Pearson correlation (−1..1) of the chroma with the best key's profile."""

    @property
    def name(self) -> str | None:
        """E.g. ``"A minor"``; ``None`` when no key was detected."""
        if self.key < 0:
            return None
        return f"{PITCH_CLASSES[self.key]} {'major' if self.mode == 1 else 'minor'}"


def estimate_key(chroma_mean: npt.ArrayLike, *, profile: KeyProfileName = "krumhansl") -> KeyEstimate:
    """The key of a 12-bin mean chroma (C first, any non-negative scale).

    The mode is the best profile's mode even when no key is detected (then ``key`` is −1 and ``confidence`` 0),
    as in Spotify's fields, where ``mode`` is always 0 or 1.
    """
    chroma = np.asarray(chroma_mean, dtype=np.float64).reshape(12)
    correlations = key_correlations(chroma, profile=profile)  # (2, 12): mode-major row 0, minor row 1
    mode_row, tonic = np.unravel_index(int(np.argmax(correlations)), correlations.shape)
    best = float(correlations[mode_row, tonic])
    mode = 1 if mode_row == 0 else 0
    contrast = float(chroma.std() / chroma.mean()) if chroma.mean() > 0 else 0.0
    if not np.isfinite(best) or best < MIN_CORRELATION or contrast < MIN_CHROMA_CONTRAST:
        return KeyEstimate(key=-1, mode=mode, confidence=0.0, correlation=best if np.isfinite(best) else 0.0)
    weights = np.exp((correlations - best) / CONFIDENCE_TEMPERATURE)
    return KeyEstimate(key=int(tonic), mode=mode, confidence=float(1.0 / weights.sum()), correlation=best)


def key_correlations(
    chroma: npt.NDArray[np.float64], *, profile: KeyProfileName = "krumhansl"
) -> npt.NDArray[np.float64]:
    """Pearson correlations, shape ``(2, 12)``: row 0 major, row 1 minor, column = tonic pitch class.

    A flat (constant) chroma correlates with nothing: all NaN.
    """
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    out = np.empty((2, 12), dtype=np.float64)
    centred = chroma - chroma.mean()
    norm = np.linalg.norm(centred)
    for row, base in enumerate((major, minor)):
        for tonic in range(12):
            rotated = np.roll(base, tonic)
            reference = rotated - rotated.mean()
            out[row, tonic] = float(centred @ reference / (norm * np.linalg.norm(reference))) if norm > 0 else np.nan
    return out
