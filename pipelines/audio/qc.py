"""Audio QC of a master from the job's one PCM decode: clipping, DC offset, silences, phase, noise floor.

:class:`AudioQC` is a :class:`~pipelines.media.decode.PcmSink`. It regroups the decode's blocks into chunks of
20 analysis windows (1 s at the default 50 ms) and keeps only running sums and a few run lengths, so its
memory does not grow with the master's length (the internal silences it lists are capped). It also feeds the
source checks of :mod:`pipelines.audio.integrity` (effective bit depth, spectral cutoff), which need the
declared sample rate and bit depth from the probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from pipelines.audio.integrity import BitDepthMeter, BitDepthReport, SpectrumMeter, SpectrumReport
from pipelines.audio.loudness import BlockBuffer
from pipelines.media.decode import Block

PhaseVerdict = Literal["mono", "dual_mono", "stereo", "partly_out_of_phase", "out_of_phase", "silent"]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class QCSettings:
    """Thresholds of the QC; levels in dBFS (RMS of a full-scale square wave = 0 dBFS), times in seconds."""

    clip_level: float = 0.999
    clip_min_run: int = 3
    window_s: float = 0.05
    silence_dbfs: float = -60.0
    internal_silence_s: float = 2.0
    max_listed_silences: int = 100
    noise_floor_window_s: float = 0.5
    anti_phase_correlation: float = -0.3
    out_of_phase_fraction: float = 0.5
    partly_out_of_phase_fraction: float = 0.1
    dual_mono_side_db: float = -50.0


@dataclass(frozen=True, kw_only=True)
class Span:
    start_s: float
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class AudioQCReport:
    """What :class:`AudioQC` found.

    ``clipped_samples`` counts samples in runs of ≥ ``clip_min_run`` consecutive samples of one sign at
    ``|x| ≥ clip_level`` in one channel, ``clip_events`` those runs (the first ten start at ``clip_times_s``).
    ``dc_offset``: the mean sample per channel (fraction of full scale). Silence is a 50 ms window whose RMS
    over all channels is below ``silence_dbfs``; ``head_silence_s``/``tail_silence_s`` run from the start / to
    the end; ``internal_silences`` are longer than ``internal_silence_s`` (at most ``max_listed_silences``
    listed, all counted). ``noise_floor_dbfs``: the RMS of the quietest 500 ms that is not digital silence.
    Phase: ``correlation`` is the correlation of the channels over the whole master, ``anti_phase_fraction``
    the share of non-silent windows correlated below −0.3, ``mono_downmix_loss_db`` the level of (L+R)/2
    against the channels' mean power (0 dB: identical channels, −3 dB: unrelated ones, very negative: one
    inverted), ``balance_db`` the power of L over R.
    """

    duration_s: float
    channels: int
    rms_dbfs: float | None
    clipped_samples: int
    clip_events: int
    clip_times_s: tuple[float, ...]
    dc_offset: tuple[float, ...]
    head_silence_s: float
    tail_silence_s: float
    internal_silences: tuple[Span, ...]
    internal_silence_count: int
    digital_silence_s: float
    noise_floor_dbfs: float | None
    correlation: float | None
    anti_phase_fraction: float | None
    mono_downmix_loss_db: float | None
    balance_db: float | None
    phase: PhaseVerdict
    bit_depth: BitDepthReport
    spectrum: SpectrumReport
    settings: QCSettings = field(default_factory=QCSettings)

    @property
    def max_dc_offset(self) -> float:
        return max((abs(v) for v in self.dc_offset), default=0.0)

    def to_document(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration_s, 3), "channels": self.channels, "rms_dbfs": _round(self.rms_dbfs),
            "clipping": {"samples": self.clipped_samples, "events": self.clip_events,
                         "first_at_s": [round(t, 3) for t in self.clip_times_s]},
            "dc_offset": [round(v, 6) for v in self.dc_offset],
            "silence": {"head_s": round(self.head_silence_s, 2), "tail_s": round(self.tail_silence_s, 2),
                        "internal": [{"start_s": round(s.start_s, 2), "duration_s": round(s.duration_s, 2)}
                                     for s in self.internal_silences],
                        "internal_count": self.internal_silence_count,
                        "digital_s": round(self.digital_silence_s, 2)},
            "noise_floor_dbfs": _round(self.noise_floor_dbfs),
            "phase": {"verdict": self.phase, "correlation": _round(self.correlation, 3),
                      "anti_phase_fraction": _round(self.anti_phase_fraction, 3),
                      "mono_downmix_loss_db": _round(self.mono_downmix_loss_db),
                      "balance_db": _round(self.balance_db)},
            "bit_depth": self.bit_depth.to_document(),
            "spectrum": self.spectrum.to_document(),
        }


class AudioQC:
    """A :class:`~pipelines.media.decode.PcmSink` running every QC check on the decoded audio.

    ``rate`` and ``channels`` describe the decoded PCM; ``declared_rate`` (Hz) and ``declared_bits`` are the
    source's, from the probe (``None`` when unknown or, for bits, a lossy codec).
    """

    def __init__(self, *, rate: int, channels: int, declared_rate: int | None = None,
                 declared_bits: int | None = None, settings: QCSettings | None = None) -> None:
        self._settings = settings = settings or QCSettings()
        self._rate, self._channels = rate, channels
        self._window = max(1, round(rate * settings.window_s))
        self._blocks = BlockBuffer(frames=20 * self._window, channels=channels)
        self._silent_power = 10.0 ** (settings.silence_dbfs / 10.0)
        self._bit_depth = BitDepthMeter(rate=rate, declared_rate=declared_rate, declared_bits=declared_bits)
        self._spectrum = SpectrumMeter(rate=rate, declared_rate=declared_rate)
        self._frames = 0
        self._sums = np.zeros(channels)
        self._squares = np.zeros(channels)
        self._cross = 0.0  # Σ L·R
        self._side = 0.0  # Σ (L − R)²
        self._clip_runs = np.zeros((2, channels), dtype=np.int64)  # current run length, per sign and channel
        self._clipped = 0
        self._clip_events = 0
        self._clip_times: list[float] = []
        self._windows = 0  # analysis windows seen
        self._first_sound: int | None = None
        self._last_sound: int | None = None
        self._silences: list[Span] = []
        self._silence_count = 0
        self._digital_windows = 0
        self._floor_span = max(1, round(settings.noise_floor_window_s / settings.window_s))
        self._floor_carry = np.zeros(0)
        self._floor = math.inf
        self._phase_windows = 0
        self._anti_phase_windows = 0

    def feed(self, block: Block) -> None:
        for chunk in self._blocks.push(block):
            self._process(chunk)

    def finish(self) -> AudioQCReport:
        self._process(self._blocks.flush())
        for sign in range(2):
            for channel in range(self._channels):
                self._close_clip_run(int(self._clip_runs[sign, channel]), self._frames)
        self._clip_runs[:] = 0
        s, frames = self._settings, max(1, self._frames)
        duration = self._frames / self._rate
        window_s = self._window / self._rate
        if self._first_sound is None or self._last_sound is None:
            head = tail = duration
        else:
            head = self._first_sound * window_s
            tail = max(0.0, duration - (self._last_sound + 1) * window_s)
        power = float(self._squares.sum()) / (frames * self._channels)
        correlation, loss, balance, anti = self._phase_figures()
        return AudioQCReport(
            duration_s=duration, channels=self._channels,
            rms_dbfs=10.0 * math.log10(power) if power > 0 else None,
            clipped_samples=self._clipped, clip_events=self._clip_events, clip_times_s=tuple(self._clip_times),
            dc_offset=tuple(float(v) for v in self._sums / frames),
            head_silence_s=head, tail_silence_s=tail, internal_silences=tuple(self._silences),
            internal_silence_count=self._silence_count, digital_silence_s=self._digital_windows * window_s,
            noise_floor_dbfs=10.0 * math.log10(self._floor) if math.isfinite(self._floor) else None,
            correlation=correlation, anti_phase_fraction=anti, mono_downmix_loss_db=loss, balance_db=balance,
            phase=self._phase_verdict(correlation, loss, anti),
            bit_depth=self._bit_depth.finish(), spectrum=self._spectrum.finish(), settings=s,
        )

    def _process(self, chunk: Block) -> None:
        if len(chunk) == 0:
            return
        self._bit_depth.feed(chunk)
        self._spectrum.feed(chunk)
        x = np.ascontiguousarray(chunk.T, dtype=np.float64)  # (channels, frames): reductions along rows are fast
        starts = np.arange(0, x.shape[1], self._window)
        peaks = np.maximum.reduceat(np.abs(x), starts, axis=1)  # (channels, windows)
        self._clipping(x, float(peaks.max()))
        self._sums += x.sum(axis=1)
        squares = np.add.reduceat(x * x, starts, axis=1)  # (channels, windows)
        self._squares += squares.sum(axis=1)
        lengths = np.diff(np.append(starts, x.shape[1]))
        power = squares.sum(axis=0) / (lengths * self._channels)
        self._silences_in(power < self._silent_power)
        digital = peaks.max(axis=0) == 0
        self._digital_windows += int(np.count_nonzero(digital))
        self._noise_floor(np.where(digital, np.nan, power))
        if self._channels == 2:
            self._phase(x, squares, starts, lengths)
        self._frames += x.shape[1]
        self._windows += len(starts)

    def _clipping(self, x: Floats, peak: float) -> None:
        level = self._settings.clip_level
        if peak < level:
            for sign in range(2):
                for channel in range(self._channels):
                    self._close_clip_run(int(self._clip_runs[sign, channel]), self._frames)
            self._clip_runs[:] = 0
            return
        for sign, mask in enumerate((x >= level, x <= -level)):
            for channel in range(self._channels):
                self._clip_runs[sign, channel] = self._runs(mask[channel], int(self._clip_runs[sign, channel]))

    def _runs(self, mask: npt.NDArray[np.bool_], carry: int) -> int:
        """Count the finished runs of ``mask`` (``carry`` samples of a run already under way); return the open one."""
        edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = ends - starts
        if carry and len(starts) and starts[0] == 0:
            lengths[0] += carry
        else:
            self._close_clip_run(carry, self._frames)
        if len(lengths) and ends[-1] == len(mask):
            open_run, lengths, starts = int(lengths[-1]), lengths[:-1], starts[:-1]
        else:
            open_run = 0
        for start, length in zip(starts, lengths, strict=True):
            self._close_clip_run(int(length), self._frames + int(start) + int(length))
        return open_run

    def _close_clip_run(self, length: int, end_frame: int) -> None:
        if length >= self._settings.clip_min_run:
            self._clipped += length
            self._clip_events += 1
            if len(self._clip_times) < 10:
                self._clip_times.append((end_frame - length) / self._rate)

    def _silences_in(self, silent: npt.NDArray[np.bool_]) -> None:
        sound = np.flatnonzero(~silent) + self._windows
        if len(sound) == 0:
            return
        if self._first_sound is None:
            self._first_sound = int(sound[0])
        previous = np.concatenate([[self._last_sound], sound[:-1]]) if self._last_sound is not None else sound[:-1]
        following = sound if self._last_sound is not None else sound[1:]
        gaps = following - previous - 1
        window_s = self._window / self._rate
        for index in np.flatnonzero(gaps * window_s >= self._settings.internal_silence_s):
            self._silence_count += 1
            if len(self._silences) < self._settings.max_listed_silences:
                start = (int(previous[index]) + 1) * window_s
                self._silences.append(Span(start_s=start, duration_s=float(gaps[index]) * window_s))
        self._last_sound = int(sound[-1])

    def _noise_floor(self, power: Floats) -> None:
        """Track the quietest run of ``noise_floor_window_s`` (windows of digital silence are NaN, never chosen)."""
        series = np.concatenate([self._floor_carry, power])
        span = self._floor_span
        if len(series) >= span:
            sums = np.convolve(series, np.ones(span), mode="valid") / span
            if not np.all(np.isnan(sums)):
                self._floor = min(self._floor, float(np.nanmin(sums)))
        self._floor_carry = series[-(span - 1):] if span > 1 else np.zeros(0)

    def _phase(self, x: Floats, squares: Floats, starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> None:
        left, right = x
        cross = np.add.reduceat(left * right, starts)
        self._cross += float(cross.sum())
        self._side += float(np.square(left - right).sum())
        audible = np.all(squares / lengths >= self._silent_power, axis=0)
        if np.any(audible):
            windows = cross[audible] / np.sqrt(squares[0, audible] * squares[1, audible])
            self._phase_windows += int(np.count_nonzero(audible))
            self._anti_phase_windows += int(np.count_nonzero(windows < self._settings.anti_phase_correlation))

    def _phase_figures(self) -> tuple[float | None, float | None, float | None, float | None]:
        """(correlation, mono downmix loss dB, balance dB, anti-phase fraction); ``None`` where undefined."""
        if self._channels != 2:
            return None, None, None, None
        ll, rr = float(self._squares[0]), float(self._squares[1])
        if ll <= 0 or rr <= 0:
            return None, None, None, None
        correlation = self._cross / math.sqrt(ll * rr)
        mid = max(ll + rr + 2.0 * self._cross, 0.0) / 4.0
        loss = 10.0 * math.log10(mid / ((ll + rr) / 2.0)) if mid > 0 else -120.0
        anti = self._anti_phase_windows / self._phase_windows if self._phase_windows else None
        return correlation, max(loss, -120.0), 10.0 * math.log10(ll / rr), anti

    def _phase_verdict(self, correlation: float | None, loss: float | None, anti: float | None) -> PhaseVerdict:
        s = self._settings
        if self._channels == 1:
            return "mono"
        if correlation is None or loss is None:
            return "silent"
        mid = float(self._squares.sum()) + 2.0 * self._cross  # Σ (L + R)²
        if self._side <= 0 or (mid > 0 and 10.0 * math.log10(self._side / mid) <= s.dual_mono_side_db):
            return "dual_mono"
        if correlation <= s.anti_phase_correlation or (anti or 0.0) >= s.out_of_phase_fraction:
            return "out_of_phase"
        if (anti or 0.0) >= s.partly_out_of_phase_fraction:
            return "partly_out_of_phase"
        return "stereo"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
