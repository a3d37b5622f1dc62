"""Spectral-peak landmarks: the second fingerprint, for clips whose Chromaprint items drown in noise.

Chromaprint summarises all the energy of a pitch class, so steady noise at a few dB under the music changes most
of its items (the bench's 10 s clips with pink noise at 5 dB SNR: a bit error rate of 0.25–0.30 at their true
place for the worst 1–2 %, against about 0.35 for unrelated music). A spectral peak — a partial standing out of
the spectrum around it — survives such noise where the pitch class's total does not. A landmark is a pair of
peaks: an anchor and a peak shortly after it, hashed from the anchor's frequency, the second's frequency offset
and the time between them (18 bits); an index of landmark hashes with their anchor times places a clip by
voting, like the Chromaprint index.

The catalog side keeps few landmarks (about 6.6 a second: peaks that are the maximum of a ±0.28 s by ±260 Hz
neighbourhood, each paired with the next ``CATALOG_FANOUT`` peaks in its target zone), which costs 26 bytes a
second of index. A clip is analysed with a smaller neighbourhood and every pair in the zone: its peaks are a
superset of the catalog's (a maximum over a larger neighbourhood is one over a smaller), so every catalog
landmark whose two peaks the noise left standing is among the clip's.

Audio is analysed mono at ``RATE`` (soxr resamples it as it streams in): a 1024-point STFT every 256 samples
(``FRAME_S``, 23 ms), 150 Hz–3.5 kHz. :class:`LandmarkSink` reads a master's decode block by block, in chunks,
with the context each chunk's peaks and pairs need kept from the one before, so it gives what
:func:`clip_landmarks` gives for the whole signal at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter, uniform_filter
import soxr

RATE = 11025
FRAME = 1024
HOP = 256
FRAME_S = HOP / RATE
"""Seconds between two spectrogram frames: the unit of landmark times."""
LOW_BIN, HIGH_BIN = 14, 330
"""The analysed band, in bins of ``RATE / FRAME`` (10.8 Hz): about 150 Hz to 3.5 kHz."""
CATALOG_NEIGHBOURHOOD = (12, 24)
"""(frames, bins) either side within which a catalog peak is the maximum."""
CLIP_NEIGHBOURHOOD = (6, 12)
CONTRAST = 1.0
"""Natural log of power (4.3 dB) by which a peak stands above the mean of the ``_CONTEXT`` around it."""
_CONTEXT = (17, 31)
MAX_DT = 24
"""A target lies 1..``MAX_DT`` frames (0.55 s) after its anchor ..."""
MAX_DF = 32
"""... and less than ``MAX_DF`` bins (345 Hz) above or below it."""
CATALOG_FANOUT = 2
HASH_BITS = 18
_MARGIN = max(CATALOG_NEIGHBOURHOOD[0], _CONTEXT[0] // 2)
"""Frames of spectrogram a chunk's peaks need either side of them."""
_CHUNK_FRAMES = 2048
_WINDOW = np.hanning(FRAME + 1)[:-1].astype(np.float32)


@dataclass(frozen=True)
class Landmarks:
    """Landmark hashes (``HASH_BITS`` bits) and their anchors' frame numbers, in time order."""

    hashes: npt.NDArray[np.uint32]
    frames: npt.NDArray[np.uint32]

    def __len__(self) -> int:
        return len(self.hashes)

    def to_bytes(self) -> bytes:
        """Little-endian uint32 pairs (hash, frame): how the catalog stores them."""
        return np.stack([self.hashes, self.frames], axis=1).astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Landmarks:
        pairs = np.frombuffer(data, dtype="<u4").reshape(-1, 2)
        return cls(pairs[:, 0].astype(np.uint32), pairs[:, 1].astype(np.uint32))


class LandmarkSink:
    """A :class:`~pipelines.media.decode.PcmSink` that finds a master's catalog landmarks as its decode streams by
    (or a clip's, with ``clip=True``). Holds about a minute of spectrogram at a time, whatever the length."""

    def __init__(self, *, rate: int, channels: int, clip: bool = False) -> None:
        self._channels = channels  # of the blocks fed: ``(frames, channels)``, or ``(frames,)`` for mono
        self._resampler = None if rate == RATE else soxr.ResampleStream(rate, RATE, 1, dtype="float32")
        self._neighbourhood = CLIP_NEIGHBOURHOOD if clip else CATALOG_NEIGHBOURHOOD
        self._fanout = 0 if clip else CATALOG_FANOUT
        self._samples = np.zeros(0, dtype=np.float32)  # not yet framed
        self._arrived: list[npt.NDArray[np.float32]] = []  # nor yet joined to them
        self._arrived_count = 0
        self._rows: list[npt.NDArray[np.float32]] = []  # spectrogram frames not yet searched for peaks
        self._first_row = 0  # frame number of self._rows[0]
        self._searched = 0  # frames before this one have had their peaks found
        self._peaks_t = np.zeros(0, dtype=np.int64)  # peaks not yet paired as anchors
        self._peaks_f = np.zeros(0, dtype=np.int64)
        self._hashes: list[npt.NDArray[np.uint32]] = []
        self._frames: list[npt.NDArray[np.uint32]] = []

    def feed(self, block: npt.NDArray[np.float32]) -> None:
        mono = block.reshape(len(block), self._channels).mean(axis=1, dtype=np.float32)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        self._add(mono)

    def finish(self) -> Landmarks:
        if self._resampler is not None:
            self._add(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self._spectrum(final=True)
        self._search(final=True)
        self._pair(final=True)
        if not self._hashes:
            return Landmarks(np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint32))
        return Landmarks(np.concatenate(self._hashes), np.concatenate(self._frames))

    def _add(self, mono: npt.NDArray[np.float32]) -> None:
        self._arrived.append(mono)
        self._arrived_count += len(mono)
        if self._arrived_count >= _CHUNK_FRAMES * HOP:
            self._spectrum(final=False)
            self._search(final=False)
            self._pair(final=False)

    def _spectrum(self, *, final: bool) -> None:
        """Frame what has arrived into log-power spectrogram rows; keep the samples the next frame needs."""
        self._samples = np.concatenate([self._samples, *self._arrived])
        self._arrived, self._arrived_count = [], 0
        if final and len(self._samples) < FRAME:  # the last partial frame, zero-padded as any frame would be
            self._samples = np.concatenate([self._samples, np.zeros(FRAME - len(self._samples), np.float32)])
        count = 1 + (len(self._samples) - FRAME) // HOP if len(self._samples) >= FRAME else 0
        if count <= 0:
            return
        frames = np.lib.stride_tricks.sliding_window_view(self._samples, FRAME)[::HOP][:count] * _WINDOW
        spectrum = np.fft.rfft(frames, axis=1)[:, LOW_BIN:HIGH_BIN]
        power = spectrum.real**2 + spectrum.imag**2
        self._rows.append(np.log(power + 1e-10).astype(np.float32))
        self._samples = self._samples[count * HOP :]

    def _search(self, *, final: bool) -> None:
        """Find the peaks of every frame whose neighbourhood has arrived; drop rows no later search needs."""
        if not self._rows:
            return
        rows = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
        stop = self._first_row + len(rows) if final else self._first_row + len(rows) - _MARGIN
        if stop <= self._searched:
            self._rows = [rows]
            return
        t, f = _peaks(rows, self._neighbourhood)
        t += self._first_row
        new = (t >= self._searched) & (t < stop)
        self._peaks_t = np.concatenate([self._peaks_t, t[new]])
        self._peaks_f = np.concatenate([self._peaks_f, f[new]])
        self._searched = stop
        keep_from = max(0, stop - _MARGIN - self._first_row)
        self._rows = [rows[keep_from:]]
        self._first_row += keep_from

    def _pair(self, *, final: bool) -> None:
        """Pair every peak whose target zone has been searched; keep the others for the next chunk."""
        t, f = self._peaks_t, self._peaks_f
        ready = len(t) if final else int(np.searchsorted(t, self._searched - MAX_DT, side="left"))
        if ready == 0:
            return
        hashes, anchors = _pairs(t, f, ready, self._fanout)
        self._hashes.append(hashes)
        self._frames.append(anchors.astype(np.uint32))
        self._peaks_t, self._peaks_f = t[ready:], f[ready:]



def clip_landmarks(samples: npt.NDArray[np.float32], *, rate: int = RATE) -> Landmarks:
    """A clip's landmarks (mono samples at ``rate``): all the pairs of its denser peaks, to look up."""
    sink = LandmarkSink(rate=rate, channels=1, clip=True)
    sink.feed(samples)
    return sink.finish()


def catalog_landmarks(samples: npt.NDArray[np.float32], *, rate: int = RATE) -> Landmarks:
    """The landmarks the catalog keeps for mono ``samples`` at ``rate`` (a master's come from its decode)."""
    sink = LandmarkSink(rate=rate, channels=1)
    sink.feed(samples)
    return sink.finish()


def _peaks(rows: npt.NDArray[np.float32], neighbourhood: tuple[int, int]) -> tuple[npt.NDArray[np.int64], ...]:
    """(frame, bin) of each point that is the maximum of its neighbourhood and stands ``CONTRAST`` above its
    context's mean, frames in order."""
    size = (2 * neighbourhood[0] + 1, 2 * neighbourhood[1] + 1)
    peak = (rows == maximum_filter(rows, size=size, mode="nearest")) & (
        rows - uniform_filter(rows, size=_CONTEXT, mode="nearest") > CONTRAST)
    t, f = np.nonzero(peak)
    return t.astype(np.int64), f.astype(np.int64)


def _pairs(t: npt.NDArray[np.int64], f: npt.NDArray[np.int64], anchors: int,
           fanout: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    """Hashes and anchor frames of the landmarks of the first ``anchors`` peaks (``t`` in order): each with the
    first ``fanout`` peaks of its target zone (0: all of them)."""
    first = np.searchsorted(t, t[:anchors] + 1, side="left")
    last = np.searchsorted(t, t[:anchors] + MAX_DT, side="right")
    counts = last - first
    anchor = np.repeat(np.arange(anchors), counts)
    target = np.repeat(first - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    df = f[target] - f[anchor]
    inside = np.abs(df) < MAX_DF
    anchor, target, df = anchor[inside], target[inside], df[inside]
    if fanout:
        group_start = np.searchsorted(anchor, anchor, side="left")
        nth = np.arange(len(anchor)) - group_start
        anchor, target, df = anchor[nth < fanout], target[nth < fanout], df[nth < fanout]
    dt = t[target] - t[anchor]
    hashes = ((f[anchor] >> 1) << 10) | (((df + MAX_DF) >> 1) << 5) | dt
    return hashes.astype(np.uint32), t[anchor]
