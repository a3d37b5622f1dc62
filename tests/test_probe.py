"""ffprobe output → Probe, and the limits a master must respect (pure functions over captured output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import Limits
from pipelines.errors import MediaError
from pipelines.media.probe import parse_probe, validate

DATA = Path(__file__).parent / "data"


def test_video_master_from_captured_ffprobe_output() -> None:
    probe = parse_probe((DATA / "ffprobe_h264_aac.json").read_text(), size_bytes=13159839)
    assert probe.kind == "video" and probe.duration_s == pytest.approx(14.0)
    assert probe.container.startswith("mov,mp4")
    assert probe.video is not None and probe.video.display_size == (1280, 720)
    assert probe.video.frame_rate == pytest.approx(30.0)
    assert probe.audio is not None and probe.audio.sample_rate == 48000 and probe.audio.channels == 1
    assert probe.video_bit_rate == 7442826
    assert "handler_name" not in probe.tags  # muxer noise is not a tag a person set


def test_ogg_tags_live_on_the_stream_and_are_merged() -> None:
    probe = parse_probe((DATA / "ffprobe_vorbis.json").read_text(), size_bytes=8695)
    assert probe.kind == "audio" and probe.video is None
    assert probe.tags == {"title": "Hi", "artist": "Me"}


def _doc(streams: list[dict[str, object]], duration: str = "10.0", tags: dict[str, object] | None = None) -> str:
    return json.dumps({"streams": streams, "format": {"format_name": "x", "duration": duration, "tags": tags or {}}})


def test_cover_art_does_not_make_a_song_a_video() -> None:
    text = _doc([
        {"index": 0, "codec_type": "audio", "codec_name": "mp3", "sample_rate": "44100", "channels": 2},
        {"index": 1, "codec_type": "video", "codec_name": "mjpeg", "width": 500, "height": 500,
         "disposition": {"attached_pic": 1}},
    ])
    probe = parse_probe(text, size_bytes=1)
    assert probe.kind == "audio" and probe.video is None


def test_rotated_phone_video_is_measured_as_displayed() -> None:
    text = _doc([{"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                  "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}])
    video = parse_probe(text, size_bytes=1).video
    assert video is not None and video.display_size == (1080, 1920)


def test_hostile_tags_are_sanitised() -> None:
    text = _doc([{"index": 0, "codec_type": "audio", "codec_name": "flac"}],
                tags={"TITLE": "bad\x00name\x1b[31m", "comment": "x" * 100_000})
    tags = parse_probe(text, size_bytes=1).tags
    assert tags["title"] == "badname[31m"
    assert len(tags["comment"]) == 1000


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "not_media"),
        (json.dumps({"streams": []}), "not_media"),
        (_doc([{"index": 0, "codec_type": "subtitle", "codec_name": "srt"}]), "no_media_streams"),
        (_doc([{"index": 0, "codec_type": "data", "codec_name": "bin_data"}]), "no_media_streams"),
    ],
)
def test_outputs_that_describe_nothing_playable(text: str, code: str) -> None:
    with pytest.raises(MediaError) as info:
        parse_probe(text, size_bytes=1)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("stream", "duration", "limits", "code"),
    [
        ({"codec_type": "audio", "codec_name": "flac"}, "0", Limits(), "no_duration"),
        ({"codec_type": "audio", "codec_name": "flac"}, "7200", Limits(max_duration_s=3600), "duration_too_long"),
        ({"codec_type": "video", "codec_name": "h264", "width": 8000, "height": 8000}, "1", Limits(), "resolution_too_large"),
        ({"codec_type": "video", "codec_name": "h264"}, "1", Limits(), "no_resolution"),
    ],
)
def test_limits(stream: dict[str, object], duration: str, limits: Limits, code: str) -> None:
    probe = parse_probe(_doc([{"index": 0, **stream}], duration=duration), size_bytes=1)
    with pytest.raises(MediaError) as info:
        validate(probe, limits)
    assert info.value.code == code


def test_too_many_streams() -> None:
    streams = [{"index": i, "codec_type": "audio", "codec_name": "pcm_s16le"} for i in range(64)]
    with pytest.raises(MediaError) as info:
        validate(parse_probe(_doc(streams), size_bytes=1), Limits())
    assert info.value.code == "too_many_streams"
