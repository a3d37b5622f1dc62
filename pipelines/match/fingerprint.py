"""Chromaprint fingerprints over a master's whole length, from the job's one PCM decode.

libchromaprint (through pyacoustid's ctypes binding) is fed the decoded samples — never the raw upload, which
could be a playlist in disguise — and returns its raw fingerprint: one 32-bit sub-fingerprint ("item") every
``ITEM_S`` seconds, each item summarising the chroma of about two seconds of audio around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import chromaprint
import numpy as np
import numpy.typing as npt

from pipelines.match.landmarks import Landmarks, LandmarkSink
from pipelines.media.decode import Block

ITEM_S = 1365 / 11025
"""Seconds between two items: Chromaprint's hop of 1365 samples at its internal 11,025 Hz."""

Items = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Fingerprint:
    """A raw Chromaprint fingerprint; ``duration_s`` is the length of the audio it was computed from. A master's
    also has its spectral-peak ``landmarks`` (:mod:`pipelines.match.landmarks`), which find it in heavy noise."""

    items: Items
    duration_s: float
    landmarks: Landmarks | None = None

    def to_document(self) -> dict[str, object]:
        document: dict[str, object] = {"duration_s": round(self.duration_s, 3), "items": int(len(self.items)),
                                       "item_s": round(ITEM_S, 6)}
        if self.landmarks is not None:
            document["landmarks"] = len(self.landmarks)
        return document


class FingerprintSink:
    """A :class:`~pipelines.media.decode.PcmSink` that fingerprints everything it is fed, items and landmarks."""

    def __init__(self, *, rate: int, channels: int) -> None:
        self._rate = rate
        self._frames = 0
        self._fingerprinter = chromaprint.Fingerprinter()
        self._fingerprinter.start(rate, channels)
        self._landmarks = LandmarkSink(rate=rate, channels=channels)

    def feed(self, block: Block) -> None:
        self._fingerprinter.feed(_to_s16(block).tobytes())
        self._landmarks.feed(block)
        self._frames += len(block)

    def finish(self) -> Fingerprint:
        return Fingerprint(items=_raw(self._fingerprinter.finish()), duration_s=self._frames / self._rate,
                           landmarks=self._landmarks.finish())


def fingerprint_samples(samples: npt.NDArray[np.float32], *, rate: int) -> Items:
    """The raw fingerprint of mono samples (−1..1) at ``rate`` Hz: how clip variants are fingerprinted."""
    fingerprinter = chromaprint.Fingerprinter()
    fingerprinter.start(rate, 1)
    fingerprinter.feed(_to_s16(samples).tobytes())
    return _raw(fingerprinter.finish())


def _raw(compressed: bytes) -> Items:
    items, _algorithm = chromaprint.decode_fingerprint(compressed)
    return np.asarray(items, dtype=np.uint32)


def _to_s16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
