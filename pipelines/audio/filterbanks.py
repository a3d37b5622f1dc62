"""The mel and chroma filterbanks of the feature analysis, in numpy alone.

They follow librosa's conventions (``librosa.filters.mel`` with Slaney's mel scale and area normalisation, and
``librosa.filters.chroma`` with its Gaussian bumps, octave weighting around C5 and C first), so that MFCC and
chroma summaries read as librosa users expect; ``tests/test_features.py`` checks both against librosa. They are
written here because importing ``librosa.filters`` loads librosa's numba kernels: seconds at every worker start,
and a crash when two processes write numba's on-disk cache at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: Floats) -> Floats:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    logarithmic = _BREAK_MEL + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(hz >= _BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: Floats) -> Floats:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _BREAK_MEL, _BREAK_HZ * np.exp(_LOG_STEP * (mel - _BREAK_MEL)), _LINEAR_HZ_PER_MEL * mel)


def mel_filterbank(*, rate: int, n_fft: int, n_mels: int) -> Floats:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters from 0 Hz to ``rate / 2``, equally spaced in mels, each
    scaled to unit area in Hz / 2 (Slaney's normalisation)."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(rate / 2.0)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def chroma_filterbank(*, rate: int, n_fft: int, centre_octave: float = 5.0, octave_width: float = 2.0) -> Floats:
    """``(12, n_fft // 2 + 1)``: each FFT bin spread over the pitch classes by a Gaussian a semitone (or the bin's
    width) wide around its pitch, each bin's weights of unit Euclidean norm, then weighted by a Gaussian in octaves
    around ``centre_octave`` (C5 ≈ 523 Hz) ``octave_width`` octaves wide. Row 0 is C."""
    freqs = np.arange(1, n_fft) * rate / n_fft
    pitch = 12.0 * np.log2(freqs / (440.0 / 16.0))  # semitones above the A four octaves under A440
    pitch = np.concatenate([[pitch[0] - 18.0], pitch])  # DC: placed 1.5 octaves under the first bin
    widths = np.concatenate([np.maximum(np.diff(pitch), 1.0), [1.0]])
    distance = pitch[None, :] - np.arange(12.0)[:, None]
    distance = np.remainder(distance + 6.0 + 120.0, 12.0) - 6.0
    weights = np.exp(-0.5 * (2.0 * distance / widths[None, :]) ** 2)
    weights /= np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), np.finfo(np.float64).tiny)
    weights *= np.exp(-0.5 * ((pitch / 12.0 - centre_octave) / octave_width) ** 2)[None, :]
    weights = np.roll(weights, -3, axis=0)  # rows from A to rows from C
    return np.ascontiguousarray(weights[:, : n_fft // 2 + 1])
