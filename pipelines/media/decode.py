"""The one PCM decode of a master's audio, streamed to every analysis that needs samples.

ffmpeg decodes the master's audio stream once to 32-bit float PCM on a pipe; the blocks are handed, as they
arrive, to each :class:`PcmSink` (the fingerprinter today; features and loudness read the same blocks). No
stage re-opens the master, and a six-hour audiobook is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pipelines.config import Limits
from pipelines.errors import FFmpegError, MediaError, resource_limit_error
from pipelines.media.confined import FFmpegCall, master_input, run_confined
from pipelines.media.probe import Probe

ANALYSIS_RATE = 44100
"""Hz: high enough for loudness and spectral analysis; each sink resamples down to what it needs."""

Block = npt.NDArray[np.float32]
"""Samples as ``(frames, channels)`` float32 in −1..1."""


class PcmSink(Protocol):
    """Something that reads the decoded audio block by block, in order."""

    def feed(self, block: Block) -> None: ...


@dataclass(frozen=True)
class PcmFormat:
    rate: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return 4 * self.channels


def analysis_format(probe: Probe) -> PcmFormat:
    """Stereo (or mono for a mono master) at ``ANALYSIS_RATE``."""
    audio = probe.audio
    channels = 1 if audio is not None and audio.channels == 1 else 2
    return PcmFormat(rate=ANALYSIS_RATE, channels=channels)


def build_decode_cmd(source: Path, stream_index: int, fmt: PcmFormat, *, ffmpeg: str, duration_s: float) -> FFmpegCall:
    """The ffmpeg run that writes one audio stream of ``source`` (``duration_s`` long) to standard output as
    float PCM."""
    args = (
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning",
        "-i", str(source),
        "-map", f"0:{stream_index}", "-vn", "-sn", "-dn", "-map_metadata", "-1",
        "-ac", str(fmt.channels), "-ar", str(fmt.rate), "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1",
    )
    return FFmpegCall(kind="audio_decode", args=args, inputs=(master_input(source),), duration_s=duration_s)


def decode_audio(
    source: Path,
    probe: Probe,
    sinks: Sequence[PcmSink],
    *,
    ffmpeg: str,
    limits: Limits,
    fmt: PcmFormat | None = None,
    on_fraction: Callable[[float], None] | None = None,
) -> int:
    """Decode the master's first audio stream once and feed every block to every sink; return the frames.

    Raises ``MediaError`` (``no_audio``, ``decode_failed``, ``decode_timeout``) when the master has no audio or
    ffmpeg cannot decode it.
    """
    audio = probe.audio
    if audio is None:
        raise MediaError("no_audio", "the master has no audio stream to analyse")
    fmt = fmt or analysis_format(probe)
    expected = max(1, int(probe.duration_s * fmt.rate))
    pending = bytearray()
    frames = 0

    def receive(data: bytes) -> None:
        nonlocal frames
        pending.extend(data)
        usable = len(pending) - len(pending) % fmt.frame_bytes
        if usable == 0:
            return
        block = np.frombuffer(bytes(pending[:usable]), dtype="<f4").reshape(-1, fmt.channels)
        del pending[:usable]
        for sink in sinks:
            sink.feed(block)
        frames += len(block)
        if on_fraction is not None:
            on_fraction(min(1.0, frames / expected))

    call = build_decode_cmd(source, audio.index, fmt, ffmpeg=ffmpeg, duration_s=probe.duration_s)
    try:
        run_confined(call, limits=limits, on_stdout=receive)
    except FFmpegError as exc:
        if exc.timed_out:
            raise MediaError("decode_timeout", "decoding the audio ran past its time limit") from exc
        if exc.returncode is None:
            raise
        if exc.out_of_memory:
            raise resource_limit_error(exc, memory_mb=limits.process_memory_mb) from exc
        raise MediaError("decode_failed", f"ffmpeg could not decode the audio: {exc.reason}") from exc
    return frames
