"""Embedded cover art (MP3 ``APIC``, FLAC ``PICTURE``, MP4 ``covr``) copied out of the master as an image file.

ffmpeg shows such a picture as a video stream with the ``attached_pic`` disposition. It is copied out byte for
byte (no decode, no re-encode), then checked before anything publishes it: a JPEG or PNG by its magic bytes,
no larger than :data:`MAX_COVER_BYTES`, with sane dimensions read from its own header. A picture that fails a
check is left out with a reason; it never fails the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.config import Limits
from pipelines.errors import FFmpegError
from pipelines.media.confined import FFmpegCall, master_input, run_confined
from pipelines.media.probe import Probe, Stream

MAX_COVER_BYTES = 10 << 20
MIN_SIDE_PX, MAX_SIDE_PX = 16, 8192
MAX_ASPECT = 8.0
"""A cover wider or taller than this many times the other side is a banner or a broken header, not a cover."""

# codec → (file extension, content type, magic bytes)
COVER_FORMATS: dict[str, tuple[str, str, bytes]] = {
    "mjpeg": ("jpg", "image/jpeg", b"\xff\xd8\xff"),
    "png": ("png", "image/png", b"\x89PNG\r\n\x1a\n"),
}
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True, kw_only=True)
class CoverArt:
    """A checked cover image in the workspace, ready to publish as :attr:`name` beside the ladder."""

    path: Path
    content_type: str
    width: int
    height: int
    size_bytes: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True, kw_only=True)
class CoverResult:
    """The cover, or None with the reason there is none to publish (None when the master has no picture)."""

    cover: CoverArt | None
    reason: str | None = None


def cover_stream(probe: Probe) -> Stream | None:
    """The master's first attached picture, if any."""
    return next((s for s in probe.streams if s.codec_type == "video" and s.attached_pic), None)


def build_cover_cmd(master: Path, stream_index: int, out_path: Path, *, ffmpeg: str) -> FFmpegCall:
    """The ffmpeg run that copies one attached picture of ``master`` to ``out_path``, unchanged.

    It may write only ``out_path``'s folder, and no file of more than one byte past :data:`MAX_COVER_BYTES`:
    ffmpeg stops there (``SIGXFSZ``) instead of writing a picture of hundreds of megabytes."""
    args = (
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
        "-i", str(master),
        "-map", f"0:{stream_index}", "-map_metadata", "-1", "-c", "copy", "-frames:v", "1",
        "-f", "image2", "-update", "1", "-y", str(out_path),
    )
    return FFmpegCall(kind="picture", args=args, inputs=(master_input(master),), writes=(out_path.parent,),
                      max_file_bytes=MAX_COVER_BYTES + 1)


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """``(codec, width, height)`` read from a PNG's ``IHDR`` or a JPEG's start-of-frame; None for anything else."""
    png_magic, jpeg_magic = COVER_FORMATS["png"][2], COVER_FORMATS["mjpeg"][2]
    if data.startswith(png_magic):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not data.startswith(jpeg_magic):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            if length < 7 or i + 9 > len(data):
                return None
            return "mjpeg", int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a JPEG we can vouch for
            return None
        i += 2 + length
    return None


def check_cover(path: Path, *, codec: str) -> CoverResult:
    """Check an extracted picture: magic bytes match ``codec``, size and dimensions within bounds."""
    size = path.stat().st_size
    if size > MAX_COVER_BYTES:
        return CoverResult(cover=None, reason=f"the cover art is {size} bytes, more than {MAX_COVER_BYTES}")
    info = image_size(path.read_bytes())
    if info is None or info[0] != codec:
        return CoverResult(cover=None, reason=f"the cover art is not a readable {COVER_FORMATS[codec][1]} image")
    _, width, height = info
    if not (MIN_SIDE_PX <= width <= MAX_SIDE_PX and MIN_SIDE_PX <= height <= MAX_SIDE_PX) or (
        max(width, height) > MAX_ASPECT * min(width, height)
    ):
        return CoverResult(cover=None, reason=f"the cover art is {width}x{height}, not a plausible cover")
    content_type = COVER_FORMATS[codec][1]
    return CoverResult(cover=CoverArt(path=path, content_type=content_type, width=width, height=height,
                                      size_bytes=size))


def extract_cover_art(master: Path, probe: Probe, out_dir: Path, *, ffmpeg: str, limits: Limits) -> CoverResult:
    """Copy the master's attached picture to ``out_dir/cover.jpg`` (or ``.png``) and check it.

    Returns ``CoverResult(cover=None)`` when the master has no picture, and a reason when it has one that is
    not a JPEG or PNG, cannot be copied or fails :func:`check_cover`. Raises ``FFmpegError`` only when ffmpeg
    cannot start.
    """
    stream = cover_stream(probe)
    if stream is None:
        return CoverResult(cover=None)
    if stream.codec_name not in COVER_FORMATS:
        return CoverResult(cover=None, reason=f"the cover art is {stream.codec_name}, not JPEG or PNG")
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"cover.{COVER_FORMATS[stream.codec_name][0]}"
    try:
        run_confined(build_cover_cmd(master, stream.index, out_path, ffmpeg=ffmpeg), limits=limits)
    except FFmpegError as exc:
        if exc.returncode is None and not exc.timed_out:
            raise  # ffmpeg could not start: the worker is broken, not the master
        out_path.unlink(missing_ok=True)
        return CoverResult(cover=None, reason=f"the cover art could not be copied out ({exc.reason})")
    if not out_path.is_file():
        return CoverResult(cover=None, reason="the cover art stream holds no picture")
    return check_cover(out_path, codec=stream.codec_name)
