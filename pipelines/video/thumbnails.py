"""Pictures for players: the thumbnail sprite sheet, its WebVTT track, and the poster frame.

The sprite's tiles come from the scene analysis's own small decode (tiles are smaller than its frames); the
poster, which is shown large, is decoded again from the master at one time with an accurate seek (``-ss``
before ``-i``: ffmpeg decodes from the keyframe before and drops frames up to the time), so it costs one
group of pictures, not a pass over the video.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import cv2
import numpy as np

from pipelines.media.confined import FFmpegCall, master_input
from pipelines.video.scene_cuts import Rgb

SPRITE_NAME = "sprite.jpg"
VTT_NAME = "thumbnails.vtt"
POSTER_NAME = "poster.jpg"

TILE_WIDTH = 160
SPRITE_COLUMNS = 10
MAX_TILES = 100
INTERVALS_S = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
POSTER_MAX_WIDTH = 1280


@dataclass(frozen=True)
class SpriteLayout:
    """A grid of ``count`` tiles, each ``tile_width`` × ``tile_height`` pixels, one every ``interval_s``."""

    interval_s: float
    count: int
    columns: int
    tile_width: int
    tile_height: int

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.count / self.columns))

    def tile_box(self, tile: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of tile number ``tile`` in the sheet, in pixels."""
        row, column = divmod(tile, self.columns)
        return column * self.tile_width, row * self.tile_height, self.tile_width, self.tile_height


def sprite_interval(duration_s: float) -> float:
    """Seconds between tiles: the shortest of ``INTERVALS_S`` that keeps the sheet to ``MAX_TILES`` tiles."""
    for interval in INTERVALS_S:
        if math.ceil(duration_s / interval) <= MAX_TILES:
            return interval
    return math.ceil(duration_s / MAX_TILES)


def tile_size(frame_width: int, frame_height: int) -> tuple[int, int]:
    """``TILE_WIDTH`` wide (or the frame's width if smaller), the frame's aspect kept, even height."""
    width = min(TILE_WIDTH, frame_width)
    height = max(2, round(width * frame_height / frame_width / 2) * 2)
    return width, height


def build_sprite(tiles: list[Rgb], layout: SpriteLayout) -> Rgb:
    """The sheet: tiles left to right, top to bottom, black where the last row is short."""
    sheet = np.zeros((layout.rows * layout.tile_height, layout.columns * layout.tile_width, 3), dtype=np.uint8)
    for number, tile in enumerate(tiles):
        x, y, w, h = layout.tile_box(number)
        sheet[y : y + h, x : x + w] = tile
    return sheet


def build_thumbnails_vtt(layout: SpriteLayout, *, duration_s: float, sprite_uri: str = SPRITE_NAME) -> str:
    """The WebVTT thumbnails track: one cue per tile, from its time to the next (the last to ``duration_s``),
    whose text is ``sprite_uri#xywh=x,y,w,h`` (a media fragment: the tile's box in the sheet)."""
    lines = ["WEBVTT", ""]
    for number in range(layout.count):
        start = number * layout.interval_s
        end = duration_s if number == layout.count - 1 else (number + 1) * layout.interval_s
        x, y, w, h = layout.tile_box(number)
        lines += [f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.001))}", f"{sprite_uri}#xywh={x},{y},{w},{h}",
                  ""]
    return "\n".join(lines)


def write_jpeg(path: Path, rgb: Rgb, *, quality: int = 80) -> None:
    """Write an RGB image as a baseline JPEG."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode {path.name}")
    path.write_bytes(data.tobytes())


def build_poster_cmd(source: Path, stream_index: int, time_s: float, output: Path, *, ffmpeg: str) -> FFmpegCall:
    """The ffmpeg run that writes the frame at ``time_s`` as a JPEG at most ``POSTER_MAX_WIDTH`` wide, into
    ``output``'s folder."""
    args = (
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
        "-ss", f"{time_s:.3f}", "-i", str(source),
        "-map", f"0:{stream_index}", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-frames:v", "1", "-vf", f"scale='min({POSTER_MAX_WIDTH},iw)':-2:flags=lanczos,format=yuvj420p",
        "-q:v", "3", "-f", "image2", "-update", "1", "-y", str(output),
    )
    return FFmpegCall(kind="picture", args=args, inputs=(master_input(source),), writes=(output.parent,))


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
