"""One ffmpeg process that decodes the master once and encodes every rung of the ladder into HLS.

The filter graph is built with ffmpeg-python and compiled to an argv that :mod:`pipelines.media.confined` hardens
and runs (ffmpeg-python's own ``.run()`` has no timeout and no sandbox). Video is decoded once and ``split`` into
one scaler per rung; audio likewise through ``asplit``. Every video rung uses the same fixed GOP with keyframes
forced at each segment boundary and scene-cut keyframes off, so all rungs cut their segments at the same
timestamps and a player can switch between them at any boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
from pathlib import Path

import ffmpeg

from pipelines.config import EncoderSettings, Limits
from pipelines.media.confined import FFmpegCall, master_input, run_confined
from pipelines.media.probe import Probe
from pipelines.media.runner import Progress
from pipelines.video.ladder import AudioRung, Ladder, VideoRung

log = logging.getLogger(__name__)

PLAYLIST_NAME = "index.m3u8"
INIT_NAME = "init.mp4"
SEGMENT_PATTERN = "segment_%05d.m4s"


@dataclass(frozen=True)
class EncodedRendition:
    """Where one rung's playlist landed, relative to the transcode's output folder."""

    name: str
    kind: str  # "video" | "audio"
    directory: Path


def hls_output_args(*, segment_s: float, directory: str, independent: bool) -> dict[str, str | float]:
    """ffmpeg's hls muxer set up for VOD fMP4 (CMAF) segments in ``directory``."""
    args: dict[str, str | float] = {
        "f": "hls",
        "hls_time": f"{segment_s:g}",
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": INIT_NAME,
        "hls_segment_filename": f"{directory}/{SEGMENT_PATTERN}",
        "map_metadata": -1,
    }
    if independent:
        args["hls_flags"] = "independent_segments"
    return args


def video_encoder_args(rung: VideoRung, *, frame_rate: float, encoder: EncoderSettings) -> dict[str, str | int]:
    """libx264 options for one rung: VBV-capped bit rate, a fixed GOP of one segment, no scene-cut keyframes."""
    gop = max(1, round(frame_rate * encoder.segment_s))
    return {
        "c:v": "libx264",
        "preset": encoder.x264_preset,
        "profile:v": rung.profile,
        "pix_fmt": "yuv420p",
        "b:v": f"{rung.bitrate_kbps}k",
        "maxrate": f"{rung.maxrate_kbps}k",
        "bufsize": f"{rung.bufsize_kbit}k",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": 0,
        "force_key_frames": f"expr:gte(t,n_forced*{encoder.segment_s:g})",
        "threads": encoder.threads,
        # B-frames make the first decode time precede the first presentation time. Left to its default, the
        # muxer shifts the whole track later to keep decode times non-negative, and the picture then lags
        # the sound by the B-frame delay (80 ms at 25 fps) in players that ignore edit lists, as MSE does.
        "avoid_negative_ts": "disabled",
    }


def audio_encoder_args(rung: AudioRung) -> dict[str, str | int]:
    return {"c:a": "aac", "b:a": f"{rung.bitrate_kbps}k", "ac": rung.channels, "ar": rung.sample_rate}


def build_transcode_cmd(
    source: Path,
    probe: Probe,
    ladder: Ladder,
    out_dir: Path,
    *,
    encoder: EncoderSettings,
    ffmpeg_bin: str = "ffmpeg",
) -> tuple[FFmpegCall, list[EncodedRendition]]:
    """The single ffmpeg run that writes every rung of ``ladder`` as HLS into ``out_dir``.

    Output paths in the argv are relative (``<rung name>/index.m3u8``): the run's working directory is
    ``out_dir``, and so ``source`` should be absolute.
    """
    inp = ffmpeg.input(str(source))
    outputs = []
    renditions: list[EncodedRendition] = []

    video = probe.video
    if ladder.video:
        assert video is not None and ladder.frame_rate is not None
        decoded = inp[str(video.index)]
        if video.frame_rate is None or video.frame_rate > ladder.frame_rate + 0.01:
            decoded = decoded.filter("fps", fps=f"{ladder.frame_rate:g}")
        branches = _split(decoded, "split", len(ladder.video))
        for rung, branch in zip(ladder.video, branches, strict=True):
            scaled = branch.filter("scale", rung.width, rung.height).filter("setsar", 1).filter("format", "yuv420p")
            outputs.append(
                ffmpeg.output(
                    scaled,
                    f"{rung.name}/{PLAYLIST_NAME}",
                    **video_encoder_args(rung, frame_rate=ladder.frame_rate, encoder=encoder),
                    **hls_output_args(segment_s=encoder.segment_s, directory=rung.name, independent=True),
                )
            )
            renditions.append(EncodedRendition(rung.name, "video", Path(rung.name)))

    audio = probe.audio
    if ladder.audio:
        assert audio is not None
        branches = _split(inp[str(audio.index)], "asplit", len(ladder.audio))
        for audio_rung, branch in zip(ladder.audio, branches, strict=True):
            outputs.append(
                ffmpeg.output(
                    branch,
                    f"{audio_rung.name}/{PLAYLIST_NAME}",
                    **audio_encoder_args(audio_rung),
                    **hls_output_args(segment_s=encoder.segment_s, directory=audio_rung.name, independent=False),
                )
            )
            renditions.append(EncodedRendition(audio_rung.name, "audio", Path(audio_rung.name)))

    args = (
        ffmpeg.merge_outputs(*outputs)
        .global_args("-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning", "-progress", "pipe:1")
        .compile(cmd=ffmpeg_bin, overwrite_output=True)
    )
    call = FFmpegCall(kind="transcode", args=tuple(args), inputs=(master_input(source),), writes=(out_dir,),
                      cwd=out_dir, duration_s=probe.duration_s)
    return call, renditions


def transcode(
    source: Path,
    probe: Probe,
    ladder: Ladder,
    out_dir: Path,
    *,
    encoder: EncoderSettings,
    limits: Limits,
    ffmpeg_bin: str = "ffmpeg",
    on_fraction: Callable[[float], None] | None = None,
) -> list[EncodedRendition]:
    """Encode the whole ladder into ``out_dir`` in one ffmpeg run.

    ``on_fraction`` receives the fraction (0..1) of the master encoded so far. Raises ``FFmpegError`` when
    ffmpeg fails or runs past the limit for a master of this duration.
    """
    call, renditions = build_transcode_cmd(source.resolve(), probe, ladder, out_dir, encoder=encoder,
                                           ffmpeg_bin=ffmpeg_bin)
    for rendition in renditions:
        (out_dir / rendition.directory).mkdir(parents=True, exist_ok=True)
    log.info("transcoding %d renditions", len(renditions))

    def forward(progress: Progress) -> None:
        if on_fraction is not None:
            on_fraction(1.0 if progress.done else min(1.0, progress.out_time_s / probe.duration_s))

    run_confined(call, limits=limits, on_progress=forward)
    return renditions


def _split(stream: ffmpeg.nodes.Stream, filter_name: str, count: int) -> list[ffmpeg.nodes.Stream]:
    """``count`` branches of one decoded stream; a lone branch needs no split filter."""
    if count == 1:
        return [stream]
    node = stream.filter_multi_output(filter_name, count)
    return [node[i] for i in range(count)]
