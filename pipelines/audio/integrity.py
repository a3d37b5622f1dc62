"""Is the master what it claims to be? Effective bit depth and spectral cutoff, from the job's one PCM decode.

Both meters are fed fixed chunks by :class:`~pipelines.audio.qc.AudioQC` and keep a bounded state (a 24-bit
mask; one averaged power spectrum), so a six-hour master costs no more memory than a short one.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import fft

from pipelines.media.decode import Block

BitDepthVerdict = Literal[
    "as_declared", "fewer_bits_than_declared", "measured", "not_integer_pcm", "not_measurable", "silent"
]
SpectrumVerdict = Literal["full_band", "band_limited", "suspected_lossy", "suspected_upsampled", "no_signal"]

_GRID_BITS = 24  # float32 holds any 24-bit integer sample exactly
_LOWER_RATES_NYQUIST_HZ = (4000.0, 5512.5, 8000.0, 11025.0, 12000.0)  # half of 8, 11.025, 16, 22.05, 24 kHz


@dataclass(frozen=True, kw_only=True)
class BitDepthReport:
    """``effective_bits``: the bits the samples actually use (1–24), ``None`` where it cannot be told."""

    declared_bits: int | None
    effective_bits: int | None
    verdict: BitDepthVerdict
    note: str

    def to_document(self) -> dict[str, object]:
        return {"declared_bits": self.declared_bits, "effective_bits": self.effective_bits,
                "verdict": self.verdict, "note": self.note}


class BitDepthMeter:
    """Effective bit depth: how many of the 24 bits of a sample grid the decoded samples use.

    Method: ffmpeg converts integer PCM to float32 exactly (an ``n``-bit sample ``v`` becomes ``v / 2**(n-1)``),
    so every sample of an ``n``-bit source, times 2**23, is an integer whose lowest ``24 − n`` bits are zero.
    The meter ORs those integers together; the lowest set bit of the result gives the depth actually used. A
    16-bit file padded to 24 bits measures 16; an 8-bit one converted to 16, 8.

    Limits: the grid survives only a bit-exact decode. When the source's rate differs from the analysis rate
    (the decode resampled it) the meter does not try (``not_measurable``); lossy codecs, float masters, gain
    or a downmix leave samples off any grid (``not_integer_pcm``), and sources deeper than 24 bits read as 24.
    A 16-bit master with its lowest bit never set (a gain of −6 dB applied in 16 bits) reads as 15.
    """

    def __init__(self, *, rate: int, declared_rate: int | None, declared_bits: int | None) -> None:
        self._declared_bits = declared_bits
        self._resampled_from = declared_rate if declared_rate is not None and declared_rate != rate else None
        self._mask = 0
        self._on_grid = True
        self._done = self._resampled_from is not None

    def feed(self, chunk: Block) -> None:
        if self._done or len(chunk) == 0:
            return
        scaled = chunk * np.float32(2**(_GRID_BITS - 1))  # a power of two: exact
        whole = np.rint(scaled)
        if not np.array_equal(whole, scaled) or float(np.abs(scaled).max()) >= 2**31:
            self._on_grid, self._done = False, True
            return
        self._mask |= int(np.bitwise_or.reduce(whole.astype(np.int32), axis=None))
        self._done = bool(self._mask & 1)  # all 24 bits in use: nothing more to learn

    def finish(self) -> BitDepthReport:
        declared = self._declared_bits
        if self._resampled_from is not None:
            note = f"the source ({self._resampled_from} Hz) was resampled for analysis: its sample grid is gone"
            return BitDepthReport(declared_bits=declared, effective_bits=None, verdict="not_measurable", note=note)
        if not self._on_grid:
            note = "samples are not on a 24-bit integer grid: a float, lossy, processed or downmixed source"
            return BitDepthReport(declared_bits=declared, effective_bits=None, verdict="not_integer_pcm", note=note)
        if self._mask == 0:
            return BitDepthReport(declared_bits=declared, effective_bits=None, verdict="silent",
                                  note="every sample is zero")
        low = self._mask & 0xFFFFFF
        effective = _GRID_BITS - ((low & -low).bit_length() - 1)
        verdict: BitDepthVerdict
        if declared is None:
            verdict, note = "measured", f"{effective} bits used; no declared depth to compare"
        elif effective < min(declared, _GRID_BITS):
            verdict, note = "fewer_bits_than_declared", f"declared {declared} bits, only {effective} used"
        else:
            verdict, note = "as_declared", f"{effective} bits used"
        return BitDepthReport(declared_bits=declared, effective_bits=effective, verdict=verdict, note=note)


@dataclass(frozen=True, kw_only=True)
class SpectrumReport:
    """Where the content of the averaged spectrum stops, and what that suggests about the source.

    ``cutoff_hz``: the highest frequency with content (Hz); ``cliff_db``: how far the level falls across it
    within about 1 kHz (dB; ``None`` when it is a gradual roll-off); ``nyquist_hz``: half the lower of the
    declared and the analysis rate, the highest frequency the source could carry.
    """

    cutoff_hz: float | None
    cliff_db: float | None
    nyquist_hz: float
    verdict: SpectrumVerdict
    note: str

    @property
    def suspect(self) -> bool:
        """True when the source looks lossy-encoded or upsampled."""
        return self.verdict in ("suspected_lossy", "suspected_upsampled")

    def to_document(self) -> dict[str, object]:
        return {"cutoff_hz": None if self.cutoff_hz is None else round(self.cutoff_hz),
                "cliff_db": None if self.cliff_db is None else round(self.cliff_db, 1),
                "nyquist_hz": self.nyquist_hz, "verdict": self.verdict, "note": self.note}


class SpectrumMeter:
    """An averaged power spectrum over the whole master, and the verdict on its high-frequency cutoff.

    Each chunk contributes ``frames_per_chunk`` Hann-windowed frames of ``fft_size`` samples per channel, so
    the cost is bounded per second of audio and the state is one spectrum. At :meth:`finish`, the spectrum
    (smoothed over 200 Hz) is searched for a *cliff*: a fall of at least ``cliff_db`` within ~1 kHz after
    which nothing comes back — an encoder's low-pass or an upsampler's anti-imaging filter. Without one, the
    cutoff is the highest frequency within ``range_db`` of the in-band level (the power mean over
    200 Hz–5 kHz), which a natural roll-off reaches gradually.

    Verdicts: ``full_band`` (content to ≥ 90 % of the Nyquist frequency), ``suspected_upsampled`` (a cliff at
    90–100 % of half of 8, 11.025, 16, 22.05 or 24 kHz), ``suspected_lossy`` (a cliff elsewhere: MP3 at
    128 kbit/s stops at 16–17 kHz; a 32 kHz source upsampled stops near 16 kHz too, and reads as lossy),
    ``band_limited`` (a gradual roll-off below 90 %: dull or old recordings, speech) and ``no_signal``.
    Limits: the analysis runs at the decode's rate, so what lies above 22.05 kHz (a 96 kHz master made from
    a 44.1 kHz one) is invisible; a lossy encode at ≥ 256 kbit/s keeps content to ~20 kHz and passes.
    """

    def __init__(self, *, rate: int, declared_rate: int | None, fft_size: int = 4096, frames_per_chunk: int = 4,
                 range_db: float = 60.0, cliff_db: float = 25.0) -> None:
        self._rate = rate
        self._nyquist = min(declared_rate or rate, rate) / 2.0
        self._fft_size = fft_size
        self._frames_per_chunk = frames_per_chunk
        self._range_db = range_db
        self._cliff_db = cliff_db
        self._window = np.hanning(fft_size).astype(np.float32)
        self._power = np.zeros(fft_size // 2 + 1)
        self._frames = 0

    def feed(self, chunk: Block) -> None:
        if len(chunk) < self._fft_size:
            return
        starts = np.linspace(0, len(chunk) - self._fft_size, self._frames_per_chunk).astype(int)
        frames = np.stack([chunk[s:s + self._fft_size].T for s in starts])  # (frames, channels, samples)
        spectra = fft.rfft(frames * self._window, axis=-1)
        self._power += (spectra.real**2 + spectra.imag**2).sum(axis=(0, 1), dtype=np.float64)
        self._frames += frames.shape[0] * frames.shape[1]

    def finish(self) -> SpectrumReport:
        nyquist = self._nyquist
        if self._frames == 0 or not self._power.any():
            return SpectrumReport(cutoff_hz=None, cliff_db=None, nyquist_hz=nyquist, verdict="no_signal",
                                  note="no audible content to analyse")
        bin_hz = self._rate / self._fft_size
        width = max(1, round(200.0 / bin_hz))
        smoothed = np.convolve(self._power / self._frames, np.ones(width) / width, mode="same")
        level = 10.0 * np.log10(smoothed + 1e-30)
        top = int(nyquist / bin_hz)
        band = slice(round(200.0 / bin_hz), max(round(200.0 / bin_hz) + 1, round(min(5000.0, 0.8 * nyquist) / bin_hz)))
        reference = 10.0 * math.log10(float(smoothed[band].mean()) + 1e-30)
        present = np.flatnonzero(level[:top] >= reference - self._range_db)
        if len(present) == 0:
            return SpectrumReport(cutoff_hz=None, cliff_db=None, nyquist_hz=nyquist, verdict="no_signal",
                                  note="no content within range of the in-band level")
        cutoff, cliff = present[-1] * bin_hz, _cliff(level[:top], bin_hz, self._cliff_db)
        if cliff is not None:
            cutoff = cliff[0]
        verdict: SpectrumVerdict
        if cutoff >= 0.9 * nyquist:
            verdict, note = "full_band", f"content up to {cutoff / 1000:.1f} kHz"
        elif cliff is None:
            verdict, note = "band_limited", f"content rolls off gradually by {cutoff / 1000:.1f} kHz"
        elif any(0.9 * lower <= cutoff <= 1.005 * lower for lower in _LOWER_RATES_NYQUIST_HZ):
            verdict = "suspected_upsampled"
            note = f"a sharp cutoff at {cutoff / 1000:.1f} kHz: upsampled from a lower rate"
        else:
            verdict = "suspected_lossy"
            note = f"a sharp cutoff at {cutoff / 1000:.1f} kHz: a lossy encoder's low-pass (or an upsampled source)"
        return SpectrumReport(cutoff_hz=float(cutoff), cliff_db=None if cliff is None else cliff[1],
                              nyquist_hz=nyquist, verdict=verdict, note=note)


def _cliff(level: npt.NDArray[np.float64], bin_hz: float, min_drop_db: float) -> tuple[float, float] | None:
    """The lowest steep fall of ``level`` (dB per bin) after which it never recovers: (edge Hz, drop dB), or None.

    The drop at each frequency is the mean level 150–700 Hz below it less the mean level 150–700 Hz above it.
    """
    near, far = max(1, round(150.0 / bin_hz)), max(2, round(700.0 / bin_hz))
    first, last = round(1500.0 / bin_hz), len(level) - far - 1
    if last <= first:
        return None
    sums = np.concatenate([[0.0], np.cumsum(level)])
    index = np.arange(first, last)
    below = (sums[index - near + 1] - sums[index - far]) / (far - near + 1)
    above = (sums[index + far + 1] - sums[index + near]) / (far - near + 1)
    drops = below - above
    # the level from ``far`` past each candidate to the top: a cliff is one after which nothing comes back
    rest_max = np.maximum.accumulate(level[::-1])[::-1][index + far]
    valid = np.flatnonzero((drops >= min_drop_db) & (rest_max <= above + 10.0))
    if len(valid) == 0:
        return None
    group = valid[: int(np.argmax(np.diff(valid) > far)) + 1] if np.any(np.diff(valid) > far) else valid
    best = int(group[np.argmax(drops[group])])  # the lowest cliff: a later one is the decode's own filter
    centre, drop = int(index[best]), float(drops[best])
    # the edge: where the fall starts, the highest frequency below the cliff whose level is within 3 dB of the
    # level 1 kHz lower (a soft resampler's transition band would otherwise push it past the source's Nyquist)
    span = max(1, round(1000.0 / bin_hz))
    edge = centre
    while edge - span > first and level[edge - span] - level[edge] > 3.0 and centre - edge < 3 * span:
        edge -= 1
    return edge * bin_hz, drop
