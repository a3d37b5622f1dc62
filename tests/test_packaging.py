"""Packaging from measurements: the init-segment reader, the media-playlist parser, the master playlist."""

from __future__ import annotations

from pathlib import Path

import m3u8
import pytest

from pipelines.media.isobmff import Mp4FormatError, TrackFormat, count_samples, track_format
from pipelines.video.package import (
    MeasuredRendition,
    PlaylistError,
    build_master_playlist,
    parse_media_playlist,
    publication_order,
)

DATA = Path(__file__).parent / "data"


def test_codecs_come_from_the_init_segments_ffmpeg_wrote() -> None:
    assert track_format((DATA / "init_h264_high.mp4").read_bytes()) == TrackFormat("avc1.64001f", width=1280, height=720)
    assert track_format((DATA / "init_aac_lc.mp4").read_bytes()) == TrackFormat(
        "mp4a.40.2", channels=2, sample_rate=48000
    )


def test_damaged_init_segments_raise_a_format_error() -> None:
    data = (DATA / "init_h264_high.mp4").read_bytes()
    for broken in (b"", data[:40], b"\x00\x00\x00\x08free", data[:8] + b"\xff" * 40):
        with pytest.raises(Mp4FormatError):
            track_format(broken)


def test_count_samples_reads_trun_boxes(tmp_path: Path) -> None:
    assert count_samples(b"") == 0
    # moof(traf(trun with 42 samples)) built by hand: sizes are 8 + payload.
    trun = (20).to_bytes(4, "big") + b"trun" + b"\x00\x00\x00\x00" + (42).to_bytes(4, "big") + b"\x00" * 4
    traf = (8 + len(trun)).to_bytes(4, "big") + b"traf" + trun
    moof = (8 + len(traf)).to_bytes(4, "big") + b"moof" + traf
    assert count_samples(moof + b"\x00\x00\x00\x08mdat") == 42


def test_media_playlist_parser_on_captured_ffmpeg_output() -> None:
    playlist = parse_media_playlist((DATA / "rendition_720p.m3u8").read_text())
    assert playlist.init_uri == "init.mp4" and playlist.ended
    assert playlist.segments == (("segment_00000.m4s", 6.0), ("segment_00001.m4s", 6.0), ("segment_00002.m4s", 2.0))
    assert playlist.duration_s == 14.0
    with pytest.raises(PlaylistError):
        parse_media_playlist("hello")
    with pytest.raises(PlaylistError):
        parse_media_playlist("#EXTM3U\nsegment.m4s\n")


def _rendition(name: str, kind: str, codecs: str, peak: int, average: int, **fmt: int) -> MeasuredRendition:
    return MeasuredRendition(
        name=name, kind=kind, directory=Path(name), format=TrackFormat(codecs, **fmt), duration_s=20.0,
        peak_bps=peak, average_bps=average, segment_count=4, frame_rate=25.0 if kind == "video" else None,
        total_bytes=average * 20 // 8,
    )


def test_master_playlist_is_written_from_measurements() -> None:
    text = build_master_playlist([
        _rendition("360p", "video", "avc1.4d401e", 800_000, 700_000, width=640, height=360),
        _rendition("audio-128k", "audio", "mp4a.40.2", 135_000, 130_000, channels=2),
        _rendition("720p", "video", "avc1.64001f", 3_200_000, 2_900_000, width=1280, height=720),
    ])
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio-128k",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",'
        'URI="audio-128k/index.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=3335000,AVERAGE-BANDWIDTH=3030000,CODECS="avc1.64001f,mp4a.40.2",'
        'RESOLUTION=1280x720,FRAME-RATE=25.000,AUDIO="aac"\n720p/index.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=935000,AVERAGE-BANDWIDTH=830000,CODECS="avc1.4d401e,mp4a.40.2",'
        'RESOLUTION=640x360,FRAME-RATE=25.000,AUDIO="aac"\n360p/index.m3u8\n'
    )
    parsed = m3u8.loads(text)  # an independent parser agrees
    assert [p.stream_info.bandwidth for p in parsed.playlists] == [3335000, 935000]


def test_audio_only_master_lists_each_audio_rung_as_a_variant() -> None:
    text = build_master_playlist([
        _rendition("audio-64k", "audio", "mp4a.40.2", 70_000, 66_000, channels=2),
        _rendition("audio-256k", "audio", "mp4a.40.2", 270_000, 260_000, channels=2),
    ])
    parsed = m3u8.loads(text)
    assert [(p.uri, p.stream_info.codecs) for p in parsed.playlists] == [
        ("audio-256k/index.m3u8", "mp4a.40.2"), ("audio-64k/index.m3u8", "mp4a.40.2"),
    ]
    assert parsed.media == []


def test_master_is_published_last_and_playlists_after_their_segments(tmp_path: Path) -> None:
    for name in ("720p", "audio-128k"):
        (tmp_path / name).mkdir()
        for file in ("index.m3u8", "init.mp4", "segment_00000.m4s", "segment_00001.m4s"):
            (tmp_path / name / file).write_bytes(b"x")
    (tmp_path / "master.m3u8").write_text("#EXTM3U\n")
    order = publication_order(tmp_path, [
        _rendition("720p", "video", "avc1.64001f", 1, 1, width=2, height=2),
        _rendition("audio-128k", "audio", "mp4a.40.2", 1, 1, channels=2),
    ])
    keys = [key for _, key, _ in order]
    assert keys[-1] == "master.m3u8"
    assert keys.index("720p/index.m3u8") > max(keys.index(k) for k in keys if k.startswith("720p/segment"))
    types = {key: content_type for _, key, content_type in order}
    assert types["720p/index.m3u8"] == "application/vnd.apple.mpegurl"
    assert types["720p/segment_00000.m4s"] == "video/iso.segment"
    assert types["720p/init.mp4"] == "video/mp4" and types["audio-128k/init.mp4"] == "audio/mp4"
