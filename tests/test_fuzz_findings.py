"""Regression tests for what ``bench/fuzz.py`` found in the project's own parsers, one test per finding."""

from __future__ import annotations

import json
import struct

import pytest

from pipelines.errors import MediaError
from pipelines.media.isobmff import Mp4FormatError, count_samples, track_format
from pipelines.media.probe import parse_probe
from pipelines.video.package import MeasuredRendition, PlaylistError, build_master_playlist
from tests.conftest import DATA
from tests.test_packaging import _rendition


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _init_with_entry(entry: bytes) -> bytes:
    """An init segment whose only sample entry is ``entry`` (a whole box)."""
    stsd = _box(b"stsd", b"\0\0\0\0\0\0\0\1" + entry)
    return _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", stsd)))))


@pytest.mark.parametrize("document", [
    "[]", "1", '"text"', "null", '{"format": [], "streams": {}}',
    '{"format": {"duration": "5"}, "streams": [1, {"codec_type": ["audio"]}]}',
    '{"format": {"duration": "5"}, "streams": [{"codec_type": "audio", "index": "x", "tags": [1],'
    ' "disposition": "yes", "side_data_list": [1, {"rotation": "ninety"}], "profile": {}}]}',
    '{"format": {"duration": "5"}, "streams": [{"codec_type": "audio"}], "chapters": {"0": 1}}',
    '{"format": {"duration": ' + "9" * 5000 + "}}",  # more digits than Python converts to an int
    "[" * 100_000,
])
def test_probe_json_of_any_shape_is_a_media_error_or_a_probe(document: str) -> None:
    """``parse_probe`` raised AttributeError on ``1`` (``data.get``), ValueError on ``"index": "x"``…"""
    try:
        probe = parse_probe(document, size_bytes=100)
    except MediaError as exc:
        assert exc.code in {"not_media", "no_media_streams"}
        return
    assert probe.kind == "audio" and probe.streams[0].index == 0
    json.dumps(probe.to_document(), allow_nan=False)


def test_real_probe_output_still_parses() -> None:
    probe = parse_probe((DATA / "ffprobe_h264_aac.json").read_text(), size_bytes=1000)
    assert probe.kind == "video" and probe.video is not None and probe.audio is not None


@pytest.mark.parametrize("entry", [
    _box(b"avc1", b"\0" * 10),  # the visual fields cut short
    _box(b"avc1", b"\0" * 78 + _box(b"avcC", b"\1")),  # an avcC too short for profile and level
    _box(b"mp4a", b"\0" * 12),  # the audio fields cut short
])
def test_sample_entries_cut_short_are_format_errors(entry: bytes) -> None:
    """struct.error and a bare ValueError escaped ``track_format`` for these."""
    with pytest.raises(Mp4FormatError):
        track_format(_init_with_entry(entry))


def test_a_trun_cut_short_is_a_format_error() -> None:
    segment = _box(b"moof", _box(b"traf", _box(b"trun", b"\0\0\0\0")))
    with pytest.raises(Mp4FormatError):
        count_samples(segment)
    whole = _box(b"moof", _box(b"traf", _box(b"trun", b"\0\0\0\0" + struct.pack(">I", 48))))
    assert count_samples(whole) == 48


@pytest.mark.parametrize("renditions", [
    [],  # a master playlist without a variant
    [_rendition('720p",URI="http://evil', "video", "avc1.64001f", 3_000_000, 2_900_000, width=1280, height=720)],
    [_rendition("720p\n#EXT-X-ENDLIST", "video", "avc1.64001f", 3_000_000, 2_900_000, width=1280, height=720)],
    [_rendition("..", "audio", "mp4a.40.2", 130_000, 128_000, channels=2)],
    [_rendition("720p", "video", 'avc1"', 3_000_000, 2_900_000, width=1280, height=720)],
    [_rendition("720p", "video", "avc1.64001f", 0, 0, width=1280, height=720)],
    [_rendition("720p", "video", "avc1.64001f", 3_000_000, 2_900_000, width=0, height=720)],
    [_rendition("audio-128k", "audio", "mp4a.40.2", 130_000, 128_000, channels=-2)],
    [_rendition("subs", "subtitles", "wvtt", 1_000, 1_000)],
])
def test_measurements_that_would_make_an_invalid_master_playlist_are_refused(renditions: list[MeasuredRendition]) -> None:
    """``build_master_playlist`` wrote these into playlists that players refuse (or that say other things)."""
    with pytest.raises(PlaylistError):
        build_master_playlist(renditions)
