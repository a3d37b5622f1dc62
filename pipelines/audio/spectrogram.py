"""A spectrogram of the whole master for the quality report, from the job's one PCM decode, in bounded memory.

:class:`SpectrogramSink` is a :class:`~pipelines.media.decode.PcmSink`. It takes the power spectrum of every
``fft_size`` frames of the mono mix (Hann window, no overlap) and averages them into time columns. It keeps at
most ``max_columns`` columns: when they are full, neighbouring pairs merge and each column from then on spans
twice as long. A 20-second clip and a 10-hour audiobook both end with between ``max_columns / 2`` and
``max_columns`` columns of ``fft_size / 2 + 1`` bins (at most 2 MB at the defaults). A column spanning more
than 32 FFT frames averages 32 of them, evenly spaced: the cost per hour falls as the master grows longer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import fft

from pipelines.audio.loudness import BlockBuffer
from pipelines.media.decode import Block

_HOPS_PER_CHUNK = 64  # FFT frames computed together: one scipy call per ~1.5 s at 44.1 kHz
_ANALYSED_PER_COLUMN = 32  # a longer column averages an even sample of this many frames: enough for a picture
_FLOOR_DB = -150.0


@dataclass(frozen=True, kw_only=True)
class Spectrogram:
    """Mean power per frequency bin and time column, in dB relative to a full-scale sine.

    ``levels_db`` is ``(bins, columns)``: bin ``i`` is centred on ``i * bin_hz`` Hz, column ``j`` covers
    ``[j * column_s, (j + 1) * column_s)`` seconds of the master. A master shorter than one FFT frame has no
    columns at all.
    """

    rate: int
    bin_hz: float
    column_s: float
    levels_db: npt.NDArray[np.float32]

    @property
    def duration_s(self) -> float:
        """Seconds the columns cover (the master's length, to within one column)."""
        return float(self.levels_db.shape[1] * self.column_s)


class SpectrogramSink:
    """A :class:`~pipelines.media.decode.PcmSink` accumulating a :class:`Spectrogram` of the mono mix.

    ``rate`` (Hz) and ``channels`` describe the decoded PCM; ``fft_size`` sets the frequency resolution
    (``rate / fft_size`` Hz) and ``max_columns`` (an even number) bounds the memory.
    """

    def __init__(self, *, rate: int, channels: int, fft_size: int = 1024, max_columns: int = 512) -> None:
        if max_columns < 2 or max_columns % 2:
            raise ValueError("max_columns must be an even number ≥ 2")
        self._rate, self._fft_size = rate, fft_size
        window = np.hanning(fft_size).astype(np.float32)
        # scaled so that a full-scale sine reads 0 dB (its peak bin is amplitude · Σw / 2), and mixing to mono
        self._window = window * np.float32(2.0 / float(window.sum()) / channels)
        self._blocks = BlockBuffer(frames=fft_size * _HOPS_PER_CHUNK, channels=channels)
        self._columns = np.zeros((max_columns, fft_size // 2 + 1))
        self._filled = 0  # complete columns
        self._hops_per_column = 1
        self._current = np.zeros(fft_size // 2 + 1)
        self._current_hops = 0  # FFT frames of time in the open column
        self._current_analysed = 0  # of which analysed
        self._hop = 0  # FFT frames seen

    def feed(self, block: Block) -> None:
        for chunk in self._blocks.push(block):
            self._process(chunk)

    def finish(self) -> Spectrogram:
        """The spectrogram so far; a last column less than half full is left out."""
        rest = self._blocks.flush()
        self._process(rest[: len(rest) - len(rest) % self._fft_size])
        columns = self._columns[: self._filled]
        if self._current_hops * 2 >= self._hops_per_column and self._current_analysed:
            columns = np.vstack([columns, self._current / self._current_analysed])
        levels = 10.0 * np.log10(np.maximum(columns.T, 10.0 ** (_FLOOR_DB / 10.0)))
        return Spectrogram(
            rate=self._rate,
            bin_hz=self._rate / self._fft_size,
            column_s=self._hops_per_column * self._fft_size / self._rate,
            levels_db=levels.astype(np.float32),
        )

    def _process(self, chunk: Block) -> None:
        """Take whole FFT frames; in columns of more than ``_ANALYSED_PER_COLUMN`` frames, analyse an even sample."""
        hops = len(chunk) // self._fft_size
        if hops == 0:
            return
        stride = max(1, self._hops_per_column // _ANALYSED_PER_COLUMN)  # both powers of two: it divides a column
        analysed = (self._hop + np.arange(hops)) % stride == 0
        frames = chunk[: hops * self._fft_size].reshape(hops, self._fft_size, -1)
        if stride > 1:
            frames = frames[analysed]
        mono = frames[..., 0] * self._window  # the mono mix, windowed: channel by channel, strided reads only
        for channel in range(1, frames.shape[2]):
            mono += frames[..., channel] * self._window
        spectra = fft.rfft(mono, axis=-1)
        powers = spectra.real**2 + spectra.imag**2
        rows = np.concatenate([[0], np.cumsum(analysed)])  # rows of ``powers`` before each hop
        done = 0
        while done < hops:  # one step per column the chunk touches
            take = min(hops - done, self._hops_per_column - self._current_hops)
            first, last = int(rows[done]), int(rows[done + take])
            if last > first:
                self._current += powers[first:last].sum(axis=0)
                self._current_analysed += last - first
            self._current_hops += take
            done += take
            if self._current_hops == self._hops_per_column:
                self._push(self._current / max(1, self._current_analysed))
                self._current[:] = 0.0
                self._current_hops = self._current_analysed = 0
        self._hop += hops

    def _push(self, column: npt.NDArray[np.float64]) -> None:
        self._columns[self._filled] = column
        self._filled += 1
        if self._filled == len(self._columns):  # full: merge pairs; columns from now on span twice as long
            half = len(self._columns) // 2
            self._columns[:half] = (self._columns[0::2] + self._columns[1::2]) / 2.0
            self._columns[half:] = 0.0
            self._filled = half
            self._hops_per_column *= 2
