"""Scenes and pictures of a video master, from one small decode.

ffmpeg decodes the video stream once, at a constant frame rate (the master's, at most ``max_frame_rate``) and
scaled down to ``analysis_width`` pixels wide, to raw RGB on a pipe. Each frame is looked at as it arrives and
then dropped; what is kept is bounded: a few numbers a frame, a few frames of each open scene, and the sprite
tiles. From it come

- **cuts**, with their scores, at exact frame times (:mod:`pipelines.video.scene_cuts` says how);
- **black intervals**: runs of at least ``min_black_s`` in which at least ``black_pixel_ratio`` of the pixels
  are at or below ``black_luma`` of full scale (ffmpeg ``blackdetect``'s measure, with a shorter minimum);
- **faces per scene**: OpenCV's bundled frontal-face Haar cascade on up to ``face_frames`` frames spread over
  the scene (away from its edges), each detection confirmed by a second cascade (``alt2``) on its region,
  which removes most of the first cascade's false alarms on textures. Faces smaller than about 24 pixels in
  the analysis frame (a twelfth of its width) are not seen;
- the **poster**: the sharpest well-exposed frame of the longest non-black scene — the shot the video spends
  most time on is the likeliest to represent it — preferring scenes that are not wholly in the first or last
  5 % (titles, credits), and away from the scene's edges (no transition frames). It is decoded again from the
  master, at display size, with an accurate seek;
- the **sprite sheet** and its WebVTT track (:mod:`pipelines.video.thumbnails`), from the same decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipelines.config import Limits
from pipelines.errors import FFmpegError, MediaError, blame_master
from pipelines.media.confined import FFmpegCall, master_input, run_confined
from pipelines.media.probe import Probe
from pipelines.video.scene_cuts import Cut, CutDetector, CutPolicy, Rgb, signature
from pipelines.video.thumbnails import (
    POSTER_NAME,
    SPRITE_COLUMNS,
    SPRITE_NAME,
    VTT_NAME,
    SpriteLayout,
    build_poster_cmd,
    build_sprite,
    build_thumbnails_vtt,
    sprite_interval,
    tile_size,
    write_jpeg,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class VideoAnalysisSettings:
    """Sizes in pixels, times in seconds, luma in 0..1 of full scale."""

    analysis_width: int = 320
    max_frame_rate: float = 60.0
    cuts: CutPolicy = CutPolicy()
    black_luma: float = 0.10
    black_pixel_ratio: float = 0.98
    min_black_s: float = 0.5
    face_frames: int = 3
    frames_kept_per_scene: int = 6
    """Frames of a scene kept, evenly spread, for faces and the poster (twice this at most while it is open)."""


@dataclass(frozen=True)
class Scene:
    index: int
    start_s: float
    end_s: float
    score: float | None
    """The score of the cut that opened the scene; ``None`` for the first."""
    faces: bool
    face_count: int
    black: bool
    poster_time_s: float | None = field(default=None, compare=False)
    poster_quality: float = field(default=0.0, compare=False)

    def to_document(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "score": self.score, "faces": self.faces, "face_count": self.face_count, "black": self.black}


@dataclass(frozen=True)
class VideoAnalysis:
    """What :func:`analyse_video` measured and wrote (``poster.jpg``, ``sprite.jpg``, ``thumbnails.vtt``)."""

    frame_rate: float
    frames: int
    width: int
    height: int
    scenes: tuple[Scene, ...]
    cuts: tuple[Cut, ...]
    black: tuple[tuple[float, float], ...]
    poster_time_s: float
    sprite: SpriteLayout

    @property
    def duration_s(self) -> float:
        return self.frames / self.frame_rate

    def to_document(self, uri: Callable[[str], str]) -> dict[str, Any]:
        """``video`` of the job document; ``uri`` turns a file name of the output folder into its URI."""
        return {
            "frame_rate": round(self.frame_rate, 3),
            "frames": self.frames,
            "analysis_size": f"{self.width}x{self.height}",
            "scenes": [scene.to_document() for scene in self.scenes],
            "cuts": [{"time_s": round(c.time_s, 3), "frame": c.frame, "score": c.score} for c in self.cuts],
            "black": [{"start_s": round(start, 3), "end_s": round(end, 3)} for start, end in self.black],
            "poster": {"uri": uri(POSTER_NAME), "time_s": round(self.poster_time_s, 3)},
            "sprite": {"uri": uri(SPRITE_NAME), "columns": self.sprite.columns, "rows": self.sprite.rows,
                       "tile_width": self.sprite.tile_width, "tile_height": self.sprite.tile_height,
                       "interval_s": self.sprite.interval_s, "tiles": self.sprite.count},
            "thumbnails_vtt": uri(VTT_NAME),
        }


def analysis_geometry(probe: Probe, settings: VideoAnalysisSettings) -> tuple[int, int, float]:
    """``(width, height, frame rate)`` of the analysis decode: even sizes, the display aspect kept."""
    video = probe.video
    if video is None or video.display_size is None:
        raise MediaError("no_video", "the master has no video stream to analyse")
    source_width, source_height = video.display_size
    width = min(settings.analysis_width, source_width) // 2 * 2
    height = max(2, round(width * source_height / source_width / 2) * 2)
    rate = min(video.frame_rate or 25.0, settings.max_frame_rate)
    return max(2, width), height, rate


def build_analysis_decode_cmd(
    source: Path, stream_index: int, *, width: int, height: int, frame_rate: float, duration_s: float, ffmpeg: str
) -> FFmpegCall:
    """The ffmpeg run that writes one video stream of ``source`` (``duration_s`` long) as constant-rate
    ``width``×``height`` RGB24 to stdout."""
    args = (
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
        "-i", str(source),
        "-map", f"0:{stream_index}", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", f"fps={frame_rate:.6g},scale={width}:{height}:flags=area,format=rgb24",
        "-f", "rawvideo", "pipe:1",
    )
    return FFmpegCall(kind="video_decode", args=args, inputs=(master_input(source),), duration_s=duration_s)


class _FaceDetector:
    """The bundled frontal-face cascade, each detection confirmed by the ``alt2`` cascade on its region."""

    def __init__(self) -> None:
        self._root = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # the stubs lack cv2.data
        self._detector = self._load("haarcascade_frontalface_default.xml")
        self._confirmer: cv2.CascadeClassifier | None = None  # loaded at the first detection (~0.5 s to parse)

    def _load(self, name: str) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(str(self._root / name))
        if cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade {name} is missing from {self._root}")
        return cascade

    def count(self, rgb: Rgb) -> int:
        """How many faces the frame shows."""
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self._detector.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=5, minSize=(24, 24))
        if len(found) == 0:
            return 0
        if self._confirmer is None:
            self._confirmer = self._load("haarcascade_frontalface_alt2.xml")
        confirmed = 0
        for x, y, w, h in found:
            pad = w // 4
            region = gray[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
            again = self._confirmer.detectMultiScale(region, scaleFactor=1.05, minNeighbors=3,
                                                     minSize=(w * 2 // 3, h * 2 // 3))
            confirmed += len(again) > 0
        return confirmed


@dataclass
class _OpenScene:
    start: int
    score: float | None
    step: int
    kept: list[tuple[int, Rgb]] = field(default_factory=list)

    def keep(self, index: int, frame: Rgb, limit: int) -> None:
        """Keep frames on a grid of ``step`` frames from the start, coarsening it when more than ``2 × limit``."""
        if (index - self.start) % self.step:
            return
        self.kept.append((index, frame))
        if len(self.kept) > 2 * limit:
            self.step *= 2
            self.kept = [(i, f) for i, f in self.kept if (i - self.start) % self.step == 0]


class SceneAnalyzer:
    """Reads the analysis frames in order (:meth:`feed`), then :meth:`finish` gives scenes, black and tiles."""

    def __init__(self, *, width: int, height: int, frame_rate: float, duration_s: float,
                 settings: VideoAnalysisSettings | None = None) -> None:
        self.settings = settings or VideoAnalysisSettings()
        self.width, self.height, self.frame_rate = width, height, frame_rate
        self._detector = CutDetector(frame_rate=frame_rate, policy=self.settings.cuts)
        self._faces = _FaceDetector()
        self._black = bytearray()
        self._dark_level = round(self.settings.black_luma * 255)
        self._first_step = max(1, round(frame_rate * 0.2))
        self._open = _OpenScene(start=0, score=None, step=self._first_step)
        self._scenes: list[Scene] = []
        tile_width, tile_height = tile_size(width, height)
        interval = sprite_interval(duration_s)
        self._tile_shape = (tile_width, tile_height)
        self._tile_interval = interval
        self._tiles: list[Rgb] = []

    @property
    def frames(self) -> int:
        return len(self._black)

    def feed(self, frame: Rgb) -> None:
        index = self.frames
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        dark = np.count_nonzero(luma <= self._dark_level) / luma.size
        self._black.append(1 if dark >= self.settings.black_pixel_ratio else 0)
        self._open.keep(index, frame, self.settings.frames_kept_per_scene)
        for cut in self._detector.push(signature(frame)):
            self._split(cut)
        if round(len(self._tiles) * self._tile_interval * self.frame_rate) == index:
            tile = cv2.resize(frame, self._tile_shape, interpolation=cv2.INTER_AREA)
            self._tiles.append(np.asarray(tile, dtype=np.uint8))

    def finish(self) -> tuple[list[Scene], list[Cut], list[tuple[float, float]], list[Rgb], SpriteLayout]:
        """Close the last scene; return scenes, cuts, black intervals, sprite tiles and their layout."""
        for cut in self._detector.finish():
            self._split(cut)
        if self.frames:
            self._scenes.append(self._close(self._open, self.frames))
        layout = SpriteLayout(interval_s=self._tile_interval, count=len(self._tiles),
                              columns=max(1, min(SPRITE_COLUMNS, len(self._tiles))),
                              tile_width=self._tile_shape[0], tile_height=self._tile_shape[1])
        return self._scenes, list(self._detector.cuts), self._black_intervals(), self._tiles, layout

    def _split(self, cut: Cut) -> None:
        following = _OpenScene(start=cut.frame, score=cut.score, step=self._first_step,
                               kept=[(i, f) for i, f in self._open.kept if i >= cut.frame])
        self._open.kept = [(i, f) for i, f in self._open.kept if i < cut.frame]
        self._scenes.append(self._close(self._open, cut.frame))
        self._open = following

    def _close(self, scene: _OpenScene, end: int) -> Scene:
        """The finished scene ``[scene.start, end)``: faces and the best poster frame among the kept frames."""
        rate, settings = self.frame_rate, self.settings
        black = sum(self._black[scene.start : end]) >= 0.9 * (end - scene.start)
        edge = min(round(0.3 * rate), (end - scene.start) // 5)
        inner = [(i, f) for i, f in scene.kept if scene.start + edge <= i < end - edge and not self._black[i]]
        inner = inner or [(i, f) for i, f in scene.kept if not self._black[i]]
        face_count = 0
        if inner and not black:
            # one frame per 2 s of scene, 1 to face_frames: a detection costs ~20 ms of CPU
            wanted = min(settings.face_frames, len(inner), max(1, round((end - scene.start) / rate / 2.0)))
            picks = sorted({round(p) for p in np.linspace(0, len(inner) - 1, wanted)})
            face_count = max(self._faces.count(inner[p][1]) for p in picks)
        poster_time, poster_quality = None, -1.0
        for index, frame in inner:
            quality = _picture_quality(frame)
            if quality > poster_quality:
                poster_time, poster_quality = index / rate, quality
        return Scene(index=len(self._scenes), start_s=scene.start / rate, end_s=end / rate, score=scene.score,
                     faces=face_count > 0, face_count=face_count, black=black,
                     poster_time_s=poster_time, poster_quality=poster_quality)

    def _black_intervals(self) -> list[tuple[float, float]]:
        flags = np.frombuffer(bytes(self._black), dtype=np.uint8).astype(np.int8)
        edges = np.diff(np.concatenate(([0], flags, [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        shortest = self.settings.min_black_s * self.frame_rate
        return [(float(s) / self.frame_rate, float(e) / self.frame_rate) for s, e in zip(starts, ends, strict=True)
                if e - s >= shortest - 0.5]


def _picture_quality(frame: Rgb) -> float:
    """Sharpness (variance of the Laplacian of luma) times exposure (1 at mid-grey, falling to 0.05 at the
    extremes): a focused, well-exposed frame scores highest."""
    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(luma, cv2.CV_32F).var())
    exposure = max(0.05, 1.0 - abs(float(luma.mean()) / 255.0 - 0.45) / 0.45)
    return sharpness * exposure


def choose_poster(scenes: list[Scene], duration_s: float) -> float:
    """The poster's time: the best frame of the longest non-black scene, a scene wholly in the first or last
    5 % counting half; the middle of the video when no scene has a non-black frame."""
    margin = 0.05 * duration_s

    def weight(scene: Scene) -> float:
        length = scene.end_s - scene.start_s
        at_edge = scene.end_s <= margin or scene.start_s >= duration_s - margin
        return length * (0.5 if at_edge else 1.0)

    usable = [s for s in scenes if not s.black and s.poster_time_s is not None]
    if not usable:
        return duration_s / 2
    best = max(usable, key=lambda s: (weight(s), s.poster_quality))
    assert best.poster_time_s is not None
    return best.poster_time_s


def analyse_video(
    source: Path,
    probe: Probe,
    out_dir: Path,
    *,
    ffmpeg: str,
    limits: Limits,
    settings: VideoAnalysisSettings | None = None,
    on_fraction: Callable[[float], None] | None = None,
) -> VideoAnalysis:
    """Decode the master's video once, small, and write ``poster.jpg``, ``sprite.jpg`` and ``thumbnails.vtt``
    into ``out_dir``.

    Raises ``MediaError`` (``no_video``, ``decode_failed``, ``decode_timeout``, ``resource_limit``) when the
    master has no video or ffmpeg cannot decode it.
    """
    settings = settings or VideoAnalysisSettings()
    width, height, rate = analysis_geometry(probe, settings)
    assert probe.video is not None
    analyzer = SceneAnalyzer(width=width, height=height, frame_rate=rate, duration_s=probe.duration_s,
                             settings=settings)
    frame_bytes = width * height * 3
    expected = max(1, round(probe.duration_s * rate))
    pending = bytearray()

    def receive(data: bytes) -> None:
        pending.extend(data)
        whole = len(pending) // frame_bytes
        if not whole:
            return
        block = bytes(pending[: whole * frame_bytes])
        del pending[: whole * frame_bytes]
        frames = np.frombuffer(block, dtype=np.uint8).reshape(whole, height, width, 3)
        for frame in frames:
            analyzer.feed(frame)
        if on_fraction is not None:
            on_fraction(min(1.0, analyzer.frames / expected))

    decode = build_analysis_decode_cmd(source, probe.video.index, width=width, height=height, frame_rate=rate,
                                       duration_s=probe.duration_s, ffmpeg=ffmpeg)
    _run_decode(decode, limits=limits, on_stdout=receive)
    if analyzer.frames == 0:
        raise MediaError("decode_failed", "ffmpeg decoded no video frame from the master")
    scenes, cuts, black, tiles, layout = analyzer.finish()
    duration = analyzer.frames / rate
    poster_time = choose_poster(scenes, duration)

    write_jpeg(out_dir / SPRITE_NAME, build_sprite(tiles, layout))
    (out_dir / VTT_NAME).write_text(build_thumbnails_vtt(layout, duration_s=duration))
    seek = max(0.0, poster_time - 0.25 / rate)  # frames before the seek time are dropped; this one is kept
    _run_decode(build_poster_cmd(source, probe.video.index, seek, out_dir / POSTER_NAME, ffmpeg=ffmpeg),
                limits=limits, on_stdout=None)
    if not (out_dir / POSTER_NAME).is_file():
        raise MediaError("decode_failed", f"ffmpeg wrote no poster frame at {poster_time:.3f} s")
    return VideoAnalysis(frame_rate=rate, frames=analyzer.frames, width=width, height=height,
                         scenes=tuple(scenes), cuts=tuple(cuts), black=tuple(black), poster_time_s=poster_time,
                         sprite=layout)


def _run_decode(call: FFmpegCall, *, limits: Limits, on_stdout: Callable[[bytes], None] | None) -> None:
    try:
        run_confined(call, limits=limits, on_stdout=on_stdout)
    except FFmpegError as exc:
        error = blame_master(exc, doing="decoding the video for scene analysis", timeout_code="decode_timeout",
                             failed_code="decode_failed", memory_mb=limits.process_memory_mb)
        if error is exc:
            raise
        raise error from exc
