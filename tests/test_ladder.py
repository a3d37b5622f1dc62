"""select_ladder: never upscale, never above the master's bit rate, mono and speech get lower rungs."""

from __future__ import annotations

from pipelines.media.probe import Probe, Stream
from pipelines.video.ladder import LadderPolicy, select_ladder


def _video(width: int, height: int, *, kbps: int | None = None, fps: float = 30.0, channels: int | None = 2) -> Probe:
    streams = [Stream(index=0, codec_type="video", codec_name="h264", width=width, height=height, frame_rate=fps,
                      bit_rate=kbps * 1000 if kbps else None)]
    if channels:
        streams.append(Stream(index=1, codec_type="audio", codec_name="aac", channels=channels, sample_rate=48000))
    return Probe(kind="video", duration_s=60, container="mp4", size_bytes=1, bit_rate=None, streams=tuple(streams))


def _audio(*, channels: int, kbps: int | None = None, rate: int = 44100) -> Probe:
    stream = Stream(index=0, codec_type="audio", codec_name="flac", channels=channels, sample_rate=rate,
                    bit_rate=kbps * 1000 if kbps else None)
    return Probe(kind="audio", duration_s=60, container="flac", size_bytes=1, bit_rate=None, streams=(stream,))


def test_1080p_master_gets_the_full_apple_style_ladder() -> None:
    ladder = select_ladder(_video(1920, 1080), LadderPolicy())
    assert [(r.width, r.height, r.bitrate_kbps, r.profile) for r in ladder.video] == [
        (1920, 1080, 5800, "high"), (1280, 720, 3000, "high"), (960, 540, 2000, "high"),
        (640, 360, 730, "main"), (416, 234, 365, "main"),
    ]
    top = ladder.video[0]
    assert (top.maxrate_kbps, top.bufsize_kbit) == (6380, 12760)
    assert [(a.bitrate_kbps, a.channels, a.sample_rate) for a in ladder.audio] == [(128, 2, 48000)]
    assert ladder.frame_rate == 30.0


def test_never_upscales_a_720p_master() -> None:
    assert [r.name for r in select_ladder(_video(1280, 720), LadderPolicy()).video] == ["720p", "540p", "360p", "234p"]


def test_a_master_between_rungs_keeps_its_own_resolution() -> None:
    just_above = select_ladder(_video(720, 404), LadderPolicy()).video
    assert [(r.width, r.height, r.bitrate_kbps) for r in just_above] == [(720, 404, 730), (418, 234, 365)]  # 720:404 is a little wider than 16:9
    well_above = select_ladder(_video(480, 270), LadderPolicy()).video
    assert [(r.width, r.height) for r in well_above] == [(480, 270), (416, 234)]
    tiny = select_ladder(_video(176, 144), LadderPolicy()).video
    assert [(r.width, r.height) for r in tiny] == [(176, 144)]


def test_no_rung_above_the_master_bit_rate() -> None:
    ladder = select_ladder(_video(1920, 1080, kbps=2500), LadderPolicy())
    # 1080p and 720p are both capped at 2.5 Mbit/s; 720p would add nothing and is dropped; 540p is at its own rate.
    assert [(r.name, r.bitrate_kbps) for r in ladder.video] == [("1080p", 2500), ("540p", 2000), ("360p", 730), ("234p", 365)]
    assert all(r.maxrate_kbps >= r.bitrate_kbps for r in ladder.video)


def test_portrait_master_gets_the_ladder_turned_on_its_side() -> None:
    ladder = select_ladder(_video(1080, 1920), LadderPolicy())
    assert [(r.width, r.height) for r in ladder.video][:2] == [(1080, 1920), (720, 1280)]


def test_high_frame_rates_are_capped() -> None:
    assert select_ladder(_video(1280, 720, fps=120), LadderPolicy()).frame_rate == 60.0


def test_mono_video_gets_mono_audio_and_silent_video_none() -> None:
    assert [(a.bitrate_kbps, a.channels) for a in select_ladder(_video(640, 360, channels=1), LadderPolicy()).audio] == [(64, 1)]
    assert select_ladder(_video(640, 360, channels=None), LadderPolicy()).audio == ()


def test_audio_masters() -> None:
    stereo = select_ladder(_audio(channels=2), LadderPolicy())
    assert stereo.video == () and stereo.frame_rate is None
    assert [(a.bitrate_kbps, a.channels, a.sample_rate) for a in stereo.audio] == [(256, 2, 44100), (128, 2, 44100), (64, 2, 44100)]
    mono = select_ladder(_audio(channels=1, rate=16000), LadderPolicy())
    assert [(a.bitrate_kbps, a.channels, a.sample_rate) for a in mono.audio] == [(96, 1, 48000), (64, 1, 48000), (32, 1, 48000)]
    speech = select_ladder(_audio(channels=2), LadderPolicy(), content_class="speech")
    assert [a.channels for a in speech.audio] == [1, 1, 1]
    low = select_ladder(_audio(channels=2, kbps=96), LadderPolicy())
    assert [a.bitrate_kbps for a in low.audio] == [96, 64]


def test_ladder_digest_changes_with_the_ladder() -> None:
    a = select_ladder(_video(1920, 1080), LadderPolicy())
    b = select_ladder(_video(1280, 720), LadderPolicy())
    assert a.digest() == select_ladder(_video(1920, 1080), LadderPolicy()).digest() != b.digest()
