"""The adaptive-bitrate ladder as data, and the pure choice of a ladder for a master.

A ladder is never upscaled and never asks for more bits than the master has: a 720p master gets no 1080p rung,
and a 96 kbps Vorbis master no 256 kbps AAC rung.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import json
from typing import Literal

from pipelines.audio.content_class import ContentClass
from pipelines.media.probe import Probe


@dataclass(frozen=True, kw_only=True)
class VideoRung:
    """One H.264 rendition. Bit rates in kbit/s; ``bufsize_kbit`` is the VBV buffer."""

    name: str
    width: int
    height: int
    bitrate_kbps: int
    maxrate_kbps: int
    bufsize_kbit: int
    profile: Literal["high", "main"]


@dataclass(frozen=True, kw_only=True)
class AudioRung:
    """One AAC-LC rendition, in kbit/s, channels and Hz."""

    name: str
    bitrate_kbps: int
    channels: int
    sample_rate: int


@dataclass(frozen=True, kw_only=True)
class Ladder:
    video: tuple[VideoRung, ...]
    audio: tuple[AudioRung, ...]
    frame_rate: float | None
    """The frame rate every video rung is encoded at (frames per second), ``None`` for audio masters."""

    def digest(self) -> str:
        """A short stable hash of the ladder, part of the output keys so a changed ladder never overwrites."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, kw_only=True)
class LadderPolicy:
    """The nominal rungs a ladder is cut from.

    Video rungs are ``(lines, kbit/s)`` where lines is the short side of the picture (so a portrait master gets
    the same ladder turned on its side). The defaults follow Apple's HLS authoring examples for 16:9 content.
    """

    video_rungs: tuple[tuple[int, int], ...] = ((1080, 5800), (720, 3000), (540, 2000), (360, 730), (234, 365))
    maxrate_factor: float = 1.1
    bufsize_factor: float = 2.0
    main_profile_below_lines: int = 540
    native_rung_margin: float = 0.15
    """How far above its top policy rung a master may be for that rung to take the master's own size instead."""
    music_audio_kbps: tuple[int, ...] = (256, 128, 64)
    speech_audio_kbps: tuple[int, ...] = (96, 64, 32)
    video_audio_kbps: int = 128
    mono_video_audio_kbps: int = 64
    max_frame_rate: float = 60.0


def select_ladder(probe: Probe, policy: LadderPolicy, *, content_class: ContentClass | None = None) -> Ladder:
    """Choose the ladder for ``probe``.

    Video masters get every policy rung at or below the master's short side, with the top rung at the master's
    own size when it falls between two policy rungs, each capped at the master's video bit rate, plus one AAC
    rendition group. Audio masters get a stereo ladder, or a mono one with lower rungs when the master is mono or the
    content class is speech.
    """
    audio = probe.audio
    source_channels = audio.channels if audio and audio.channels else 2
    sample_rate = _output_sample_rate(audio.sample_rate if audio else None)
    if probe.kind == "audio":
        mono = source_channels == 1 or content_class == "speech"
        rates = policy.speech_audio_kbps if mono else policy.music_audio_kbps
        channels = 1 if mono else 2
        return Ladder(
            video=(),
            audio=_audio_rungs(rates, channels, sample_rate, cap_kbps=_kbps(audio.bit_rate if audio else None)),
            frame_rate=None,
        )

    video = probe.video
    assert video is not None and video.display_size is not None
    width, height = video.display_size
    audio_rungs: tuple[AudioRung, ...] = ()
    if audio is not None:
        kbps = policy.video_audio_kbps if source_channels > 1 else policy.mono_video_audio_kbps
        audio_rungs = _audio_rungs((kbps,), min(source_channels, 2), sample_rate, cap_kbps=_kbps(audio.bit_rate))
    frame_rate = min(video.frame_rate or 30.0, policy.max_frame_rate)
    video_rungs = _video_rungs(width, height, _kbps(probe.video_bit_rate), policy)
    return Ladder(video=video_rungs, audio=audio_rungs, frame_rate=frame_rate)


def _video_rungs(width: int, height: int, cap_kbps: int | None, policy: LadderPolicy) -> tuple[VideoRung, ...]:
    short, long_ = min(width, height), max(width, height)
    chosen = [(lines, kbps) for lines, kbps in policy.video_rungs if lines <= short]
    # No master loses resolution: one just above its top policy rung takes that rung's place at its own size;
    # one well above it (or below every rung) gets an extra top rung, its bit rate scaled by area.
    if chosen and chosen[0][0] < short <= chosen[0][0] * (1 + policy.native_rung_margin):
        chosen[0] = (short, chosen[0][1])
    elif not chosen or short > chosen[0][0]:
        nearest_lines, nearest_kbps = chosen[0] if chosen else policy.video_rungs[-1]
        chosen.insert(0, (short, round(nearest_kbps * (short / nearest_lines) ** 2)))
    rungs: list[VideoRung] = []
    for lines, nominal_kbps in chosen:
        kbps = min(nominal_kbps, cap_kbps) if cap_kbps else nominal_kbps
        if rungs and kbps >= rungs[-1].bitrate_kbps:
            continue  # capped to the same rate as the rung above: it would only waste bits
        other = _even(long_ * lines / short)
        w, h = (other, _even(lines)) if width >= height else (_even(lines), other)
        maxrate = round(kbps * policy.maxrate_factor)
        rungs.append(
            VideoRung(
                name=f"{min(w, h)}p",
                width=w,
                height=h,
                bitrate_kbps=kbps,
                maxrate_kbps=maxrate,
                bufsize_kbit=round(maxrate * policy.bufsize_factor),
                profile="main" if lines < policy.main_profile_below_lines else "high",
            )
        )
    return tuple(rungs)


def _audio_rungs(
    rates: tuple[int, ...], channels: int, sample_rate: int, *, cap_kbps: int | None
) -> tuple[AudioRung, ...]:
    capped: list[int] = []
    for rate in rates:
        kbps = min(rate, cap_kbps) if cap_kbps else rate
        kbps = max(kbps, 16)
        if kbps not in capped:
            capped.append(kbps)
    return tuple(
        AudioRung(name=f"audio-{kbps}k", bitrate_kbps=kbps, channels=channels, sample_rate=sample_rate)
        for kbps in sorted(capped, reverse=True)
    )


def _output_sample_rate(source_hz: int | None) -> int:
    """AAC at 44.1 kHz for masters of the 44.1 kHz family, 48 kHz for everything else."""
    return 44100 if source_hz and 44100 % source_hz == 0 else 48000


def _kbps(bit_rate: int | None) -> int | None:
    return round(bit_rate / 1000) if bit_rate else None


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)
