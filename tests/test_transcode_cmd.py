"""The single-decode ffmpeg command, as a golden argv (the list is the contract with ffmpeg): the argv that runs,
with the input hardening :mod:`pipelines.media.confined` adds."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import EncoderSettings, Limits
from pipelines.media.confined import hardened_argv, master_input
from pipelines.media.probe import Probe, Stream
from pipelines.video.ladder import LadderPolicy, select_ladder
from pipelines.video.transcode import build_transcode_cmd

HLS = ["-hls_fmp4_init_filename", "init.mp4", "-hls_playlist_type", "vod"]


def _x264(bitrate: str, bufsize: str, maxrate: str, profile: str) -> list[str]:
    return [
        "-avoid_negative_ts", "disabled", "-b:v", bitrate, "-bufsize", bufsize, "-c:v", "libx264", "-force_key_frames", "expr:gte(t,n_forced*6)",
        "-g", "150",
    ], ["-keyint_min", "150", "-map_metadata", "-1", "-maxrate", maxrate, "-pix_fmt", "yuv420p",
        "-preset", "veryfast", "-profile:v", profile, "-sc_threshold", "0", "-threads", "0"]


def _video_output(rung: str, bitrate: str, bufsize: str, maxrate: str, profile: str, label: str) -> list[str]:
    head, tail = _x264(bitrate, bufsize, maxrate, profile)
    return [
        "-map", label, "-f", "hls", *head, "-hls_flags", "independent_segments", *HLS,
        "-hls_segment_filename", f"{rung}/segment_%05d.m4s", "-hls_segment_type", "fmp4", "-hls_time", "6",
        *tail, f"{rung}/index.m3u8",
    ]


def test_one_decode_split_into_every_rung_with_aligned_keyframes() -> None:
    probe = Probe(
        kind="video", duration_s=60, container="mp4", size_bytes=1, bit_rate=None,
        streams=(
            Stream(index=0, codec_type="video", codec_name="h264", width=1280, height=720, frame_rate=25.0),
            Stream(index=1, codec_type="audio", codec_name="aac", channels=2, sample_rate=48000),
        ),
    )
    ladder = select_ladder(probe, LadderPolicy(video_rungs=((720, 3000), (360, 730))))
    call, renditions = build_transcode_cmd(Path("/work/master"), probe, ladder, Path("/work/hls"),
                                           encoder=EncoderSettings())
    assert hardened_argv(call, Limits()) == [
        "ffmpeg",
        "-protocol_whitelist", "file",
        "-format_whitelist", "mov,mp4,m4a,3gp,matroska,webm,avi,mpegts,mpeg,flv,wav,w64,flac,ogg,mp3,aac,aiff,caf",
        "-max_pixels", "33177600", "-i", "/work/master",
        "-filter_complex",
        "[0:0]split=2[s0][s1];"
        "[s0]scale=1280:720[s2];[s2]setsar=1[s3];[s3]format=yuv420p[s4];"
        "[s1]scale=640:360[s5];[s5]setsar=1[s6];[s6]format=yuv420p[s7]",
        *_video_output("720p", "3000k", "6600k", "3300k", "high", "[s4]"),
        *_video_output("360p", "730k", "1606k", "803k", "main", "[s7]"),
        "-map", "0:1", "-f", "hls", "-ac", "2", "-ar", "48000", "-b:a", "128k", "-c:a", "aac", *HLS,
        "-hls_segment_filename", "audio-128k/segment_%05d.m4s", "-hls_segment_type", "fmp4", "-hls_time", "6",
        "-map_metadata", "-1", "audio-128k/index.m3u8",
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning", "-progress", "pipe:1", "-y",
    ]
    assert [(r.name, r.kind) for r in renditions] == [("720p", "video"), ("360p", "video"), ("audio-128k", "audio")]
    # It reads the master alone, writes only the output folder (its working directory), and has a transcode's time.
    assert call.inputs == (master_input(Path("/work/master")),)
    assert call.writes == (Path("/work/hls"),) and call.cwd == Path("/work/hls")
    assert (call.kind, call.duration_s) == ("transcode", 60)


def test_audio_master_uses_asplit_and_a_high_frame_rate_master_is_resampled() -> None:
    audio = Probe(
        kind="audio", duration_s=60, container="flac", size_bytes=1, bit_rate=None,
        streams=(Stream(index=0, codec_type="audio", codec_name="flac", channels=2, sample_rate=44100),),
    )
    call, _ = build_transcode_cmd(Path("/m"), audio, select_ladder(audio, LadderPolicy()), Path("/o"),
                                  encoder=EncoderSettings())
    cmd = call.args
    assert cmd[cmd.index("-filter_complex") + 1] == "[0:0]asplit=3[s0][s1][s2]"
    fast = Probe(
        kind="video", duration_s=60, container="mp4", size_bytes=1, bit_rate=None,
        streams=(Stream(index=0, codec_type="video", codec_name="h264", width=640, height=360, frame_rate=120.0),),
    )
    call, _ = build_transcode_cmd(Path("/m"), fast, select_ladder(fast, LadderPolicy()), Path("/o"),
                                  encoder=EncoderSettings())
    cmd = call.args
    assert cmd[cmd.index("-filter_complex") + 1].startswith("[0:0]fps=fps=60[s0];[s0]split=2")
    assert cmd[cmd.index("-g") + 1] == "360"
