"""EBU R128 / ITU-R BS.1770-4 loudness, loudness range and true peak, streamed from the job's one PCM decode.

:class:`LoudnessMeter` is a :class:`~pipelines.media.decode.PcmSink`. It K-weights every block (two biquads designed
for the actual sample rate from the standard's analogue prototype, state kept across blocks), keeps one mean
square per 100 ms of audio (8 bytes per 100 ms: about 1.7 MB for a six-hour audiobook; the signal itself is
never kept) and derives from those, at :meth:`LoudnessMeter.finish`:

- integrated loudness (LUFS): 400 ms blocks with 75 % overlap, gated at −70 LUFS absolute and −10 LU relative;
- loudness range (LU, EBU Tech 3342): the 10th to 95th percentile of 3 s short-term loudness every 100 ms,
  gated at −70 LUFS absolute and −20 LU relative;
- momentary (400 ms) and short-term (3 s) loudness at a coarse interval, for a report chart.

True peak (dBTP) is the largest magnitude of the signal oversampled 4× by a polyphase FIR (a Kaiser-windowed
sinc, 48 taps per phase: flat within 0.02 dB to 0.9 × Nyquist), filtered by FFT overlap-save with the filter
history kept across blocks; sample peak (dBFS) is the largest sample magnitude. Both treat the signal as zero
before its first and after its last sample, as ffmpeg's ``ebur128`` does: an abrupt start or end can read a
little above the sample peak.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import math

import numpy as np
import numpy.typing as npt
from scipy import fft, signal

from pipelines.media.decode import Block

Floats = npt.NDArray[np.float64]

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
_STEP_S = 0.1  # the 100 ms hop of gating blocks and short-term windows
_MOMENTARY_STEPS = 4  # 400 ms
_SHORT_TERM_STEPS = 30  # 3 s


def k_weighting(rate: int) -> Floats:
    """The BS.1770 K-weighting filter for ``rate`` Hz as second-order sections (shelf, then high-pass).

    The coefficients are derived from the analogue prototype behind the standard's 48 kHz table (as
    libebur128 and ffmpeg do), so that 44.1 kHz and any other rate get the same response.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, high_pass], dtype=np.float64)


def channel_weights(channels: int) -> Floats:
    """BS.1770 channel weights: 1.0 for up to three channels; 5.1 in ffmpeg's order (LFE 0, surrounds 1.41)."""
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


class BlockBuffer:
    """Regroups blocks of any length into chunks of exactly ``frames`` frames, copying only what must wait.

    A yielded chunk may be a view of the caller's block or of an internal buffer reused for the next chunk:
    the consumer must be done with it before asking for the next one.
    """

    def __init__(self, *, frames: int, channels: int) -> None:
        self._buffer = np.empty((frames, channels), dtype=np.float32)
        self._filled = 0

    def push(self, block: Block) -> Iterator[Block]:
        size, pos = len(self._buffer), 0
        while pos < len(block):
            if self._filled == 0 and len(block) - pos >= size:
                yield block[pos:pos + size]
                pos += size
                continue
            take = min(size - self._filled, len(block) - pos)
            self._buffer[self._filled:self._filled + take] = block[pos:pos + take]
            self._filled += take
            pos += take
            if self._filled == size:
                self._filled = 0
                yield self._buffer

    def flush(self) -> Block:
        """What is left (fewer than ``frames`` frames, possibly none), as a copy."""
        rest = self._buffer[:self._filled].copy()
        self._filled = 0
        return rest


class TruePeakDetector:
    """Running true peak per channel: the signal oversampled ``factor``× by a polyphase FIR.

    Phase 0 of the interpolator is the input itself (the windowed sinc is zero at every non-zero multiple of the
    factor), so only the ``factor − 1`` in-between phases are computed, by FFT overlap-save on fixed chunks.
    A chunk whose samples (with the filter history) cannot reach the running peak through the filter — its
    magnitude times the largest phase's L1 norm is below it — is skipped: the bound is exact, not a guess.
    """

    def __init__(self, *, channels: int, factor: int = 4, taps_per_phase: int = 48, fft_size: int = 32768) -> None:
        prototype = signal.firwin(factor * taps_per_phase + 1, 1.0 / factor, window=("kaiser", 8.0)) * factor
        phases = np.stack([prototype[p::factor][:taps_per_phase] for p in range(1, factor)])  # (phases, taps)
        self._history_len = taps_per_phase - 1
        self._fft_size = fft_size
        self._spectra = fft.rfft(phases.astype(np.float32), n=fft_size, axis=-1)[None]  # (1, phases, bins)
        self._bound = float(np.abs(phases).sum(axis=1).max())
        self._history = np.zeros((channels, self._history_len), dtype=np.float32)
        self.chunk_frames = fft_size - self._history_len
        """The chunk length (frames) :meth:`process` is most efficient with."""
        self._blocks = BlockBuffer(frames=self.chunk_frames, channels=channels)
        self.peaks = np.zeros(channels)
        """Largest oversampled magnitude so far per channel, linear (1.0 = full scale)."""
        self.sample_peaks = np.zeros(channels)
        """Largest sample magnitude so far per channel, linear."""

    def feed(self, block: Block) -> None:
        """Take a block of any length (regrouped into chunks of ``chunk_frames``)."""
        for chunk in self._blocks.push(block):
            self.process(chunk)

    def finish(self) -> Floats:
        """Flush the filter (the interpolation past the last sample) and return the peaks per channel."""
        rest = self._blocks.flush()
        tail = np.zeros((self._history_len + 1, len(self.peaks)), dtype=np.float32)
        self.process(np.concatenate([rest, tail]))
        return self.peaks

    def process(self, chunk: Block) -> None:
        """Take the next chunk of at most ``fft_size − taps_per_phase + 1`` frames directly."""
        if len(chunk) == 0:
            return
        extended = np.concatenate([self._history, chunk.T], axis=1)  # (channels, history + frames)
        self._history = extended[:, len(chunk):].copy()
        magnitude = np.abs(extended)
        np.maximum(self.sample_peaks, magnitude[:, self._history_len:].max(axis=1), out=self.sample_peaks)
        np.maximum(self.peaks, self.sample_peaks, out=self.peaks)
        if bool(np.all(magnitude.max(axis=1) * self._bound <= self.peaks)):
            return
        spectrum = fft.rfft(extended, n=self._fft_size, axis=-1)[:, None, :]  # (channels, 1, bins)
        upsampled = fft.irfft(spectrum * self._spectra, n=self._fft_size, axis=-1, overwrite_x=True)
        valid = upsampled[:, :, self._history_len:self._history_len + len(chunk)]
        np.maximum(self.peaks, np.abs(valid).max(axis=(1, 2)), out=self.peaks)


@dataclass(frozen=True, kw_only=True)
class LoudnessReport:
    """What :class:`LoudnessMeter` measured. ``None`` where there was too little (or too quiet) audio.

    ``momentary_lufs`` and ``short_term_lufs`` hold one value per ``series_interval_s``, the first at
    ``series_interval_s`` (the window ending there); ``None`` where the window is digital silence or not full.
    """

    duration_s: float
    integrated_lufs: float | None
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    sample_peak_dbfs: float | None
    true_peak_per_channel_dbtp: tuple[float | None, ...]
    max_momentary_lufs: float | None
    max_short_term_lufs: float | None
    series_interval_s: float
    momentary_lufs: tuple[float | None, ...]
    short_term_lufs: tuple[float | None, ...]

    def to_document(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration_s, 3),
            "integrated_lufs": _round(self.integrated_lufs),
            "loudness_range_lu": _round(self.loudness_range_lu),
            "true_peak_dbtp": _round(self.true_peak_dbtp),
            "sample_peak_dbfs": _round(self.sample_peak_dbfs),
            "true_peak_per_channel_dbtp": [_round(v) for v in self.true_peak_per_channel_dbtp],
            "max_momentary_lufs": _round(self.max_momentary_lufs),
            "max_short_term_lufs": _round(self.max_short_term_lufs),
            "series_interval_s": self.series_interval_s,
            "momentary_lufs": [_round(v, 1) for v in self.momentary_lufs],
            "short_term_lufs": [_round(v, 1) for v in self.short_term_lufs],
        }


class LoudnessMeter:
    """A :class:`~pipelines.media.decode.PcmSink` measuring BS.1770-4 loudness, loudness range and peaks.

    ``rate`` (Hz) must be a multiple of 10 (100 ms is a whole number of frames); ``series_interval_s`` is the
    spacing of the momentary/short-term series kept for a chart, a multiple of 0.1 s.
    """

    def __init__(self, *, rate: int, channels: int, series_interval_s: float = 1.0) -> None:
        if rate % 10 or channels < 1:
            raise ValueError(f"unsupported PCM format: {rate} Hz, {channels} channels")
        self._rate = rate
        self._step = rate // 10
        self._series_steps = max(1, round(series_interval_s / _STEP_S))
        # float32 filtering: measured against float64 on −40 dBFS noise with DC, 4e-6 dB apart, twice as fast
        self._sos = k_weighting(rate).astype(np.float32)
        self._state = np.zeros((len(self._sos), 2, channels), dtype=np.float32)
        self._weights = channel_weights(channels).astype(np.float32)
        self._partial_sum = 0.0
        self._partial_frames = 0
        self._steps: list[Floats] = []  # mean square of each complete 100 ms, K-weighted, channel-weighted
        self._frames = 0
        self._true_peak = TruePeakDetector(channels=channels)
        # chunks of ~0.7 s: few calls into scipy per second of audio, and the true-peak FFT's own length
        self._blocks = BlockBuffer(frames=self._true_peak.chunk_frames, channels=channels)

    def feed(self, block: Block) -> None:
        for chunk in self._blocks.push(block):
            self._process(chunk)

    def _process(self, block: Block) -> None:
        if len(block) == 0:
            return
        self._frames += len(block)
        self._true_peak.process(block)
        weighted, self._state = signal.sosfilt(self._sos, block, axis=0, zi=self._state)
        power = np.square(weighted) @ self._weights
        need = self._step - self._partial_frames
        if len(power) < need:
            self._partial_sum += float(power.sum(dtype=np.float64))
            self._partial_frames += len(power)
            return
        first = (self._partial_sum + float(power[:need].sum(dtype=np.float64))) / self._step
        rest = power[need:]
        whole = len(rest) // self._step
        means = rest[: whole * self._step].reshape(whole, self._step).mean(axis=1, dtype=np.float64)
        self._steps.append(np.concatenate([[first], means]))
        tail = rest[whole * self._step:]
        self._partial_sum, self._partial_frames = float(tail.sum(dtype=np.float64)), len(tail)

    def finish(self) -> LoudnessReport:
        self._process(self._blocks.flush())
        steps = np.concatenate(self._steps) if self._steps else np.zeros(0)
        momentary = _windows(steps, _MOMENTARY_STEPS)
        short_term = _windows(steps, _SHORT_TERM_STEPS)
        peaks = self._true_peak.finish()
        every = self._series_steps
        return LoudnessReport(
            duration_s=self._frames / self._rate,
            integrated_lufs=integrated_loudness(momentary),
            loudness_range_lu=loudness_range(short_term),
            true_peak_dbtp=_db(float(peaks.max())) if len(peaks) else None,
            sample_peak_dbfs=_db(float(self._true_peak.sample_peaks.max())),
            true_peak_per_channel_dbtp=tuple(_db(float(p)) for p in peaks),
            max_momentary_lufs=_lufs(float(momentary.max())) if len(momentary) else None,
            max_short_term_lufs=_lufs(float(short_term.max())) if len(short_term) else None,
            series_interval_s=every * _STEP_S,
            momentary_lufs=_series(momentary, _MOMENTARY_STEPS, every, len(steps)),
            short_term_lufs=_series(short_term, _SHORT_TERM_STEPS, every, len(steps)),
        )


def integrated_loudness(blocks: Floats) -> float | None:
    """Gated integrated loudness (LUFS) from the mean squares of 400 ms blocks with 75 % overlap.

    ``None`` when no block is above the −70 LUFS absolute gate (silence, or nothing 400 ms long).
    """
    above = blocks[blocks > _power(ABSOLUTE_GATE_LUFS)]
    if len(above) == 0:
        return None
    relative = _power(_loudness(float(above.mean())) + RELATIVE_GATE_LU)
    return _loudness(float(above[above > relative].mean()))


def loudness_range(short_term: Floats) -> float | None:
    """Loudness range (LU, EBU Tech 3342) from the mean squares of 3 s windows every 100 ms.

    ``None`` when no window is above the −70 LUFS absolute gate.
    """
    above = short_term[short_term > _power(ABSOLUTE_GATE_LUFS)]
    if len(above) == 0:
        return None
    relative = _power(_loudness(float(above.mean())) + LRA_RELATIVE_GATE_LU)
    loudness = -0.691 + 10.0 * np.log10(above[above > relative])
    low, high = np.percentile(loudness, [10.0, 95.0])
    return float(high - low)


def _windows(steps: Floats, length: int) -> Floats:
    """Mean square of every window of ``length`` consecutive 100 ms steps (one per step, full windows only)."""
    if len(steps) < length:
        return np.zeros(0)
    sums = np.cumsum(np.concatenate([[0.0], steps]))
    windows: Floats = np.maximum(sums[length:] - sums[:-length], 0.0) / length
    return windows


def _series(windows: Floats, length: int, every: int, steps: int) -> tuple[float | None, ...]:
    """The window ending at each multiple of ``every`` steps, as LUFS (``None`` when not full or silent)."""
    values: list[float | None] = []
    for end in range(every, steps + 1, every):
        index = end - length
        values.append(_lufs(float(windows[index])) if index >= 0 and windows[index] > 0 else None)
    return tuple(values)


def _power(lufs: float) -> float:
    return float(10.0 ** ((lufs + 0.691) / 10.0))


def _loudness(power: float) -> float:
    """LUFS of a positive channel-weighted mean square."""
    return -0.691 + 10.0 * math.log10(power)


def _lufs(power: float) -> float | None:
    return _loudness(power) if power > 0 else None


def _db(linear: float) -> float | None:
    return 20.0 * math.log10(linear) if linear > 0 else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
