"""ffprobe → :class:`Probe`, and the checks a master must pass before anything decodes it.

The parser (:func:`parse_probe`) and the validator (:func:`validate`) are pure; :func:`probe_file` is the thin
call. The master is only ever read from a local copy the job made, through the demuxers in
``ACCEPTED_DEMUXERS``: a playlist or ``ffconcat`` script disguised as media is refused by ffmpeg before it can
open anything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
import json
from pathlib import Path
import re
from typing import Any, Literal

from pipelines.config import Limits
from pipelines.errors import FFmpegError, MediaError, resource_limit_error
from pipelines.media.confined import FFmpegCall, master_input, run_confined
from pipelines.media.tags import MAX_TAGS, Chapter, clean_text, parse_chapters

MediaKind = Literal["audio", "video"]

MAX_TAG_CHARS = 1000
MAX_PROBE_OUTPUT_BYTES = 64 << 20
"""Most of ffprobe's JSON read: a master's own description is kilobytes; only tags can make it megabytes."""
_MUXER_TAGS = frozenset({"encoder", "handler_name", "vendor_id"})  # written by tools, not by people


@dataclass(frozen=True, kw_only=True)
class Stream:
    index: int
    codec_type: str
    codec_name: str
    profile: str | None = None
    bit_rate: int | None = None
    duration_s: float | None = None
    # video
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    pix_fmt: str | None = None
    rotation: int = 0
    attached_pic: bool = False
    # audio
    sample_rate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    language: str | None = None
    sample_fmt: str | None = None
    bits_per_sample: int | None = None
    """The bit depth the stream declares (ffprobe's ``bits_per_raw_sample``, else ``bits_per_sample``: a 24-bit
    FLAC says 24 though it decodes to 32-bit samples); ``None`` where it declares none, as lossy codecs do."""

    @property
    def declared_integer_bits(self) -> int | None:
        """The declared depth of integer samples, what the QC's effective bit depth is compared against;
        ``None`` for float samples (their 32 bits are not a depth) or no declared depth."""
        if self.sample_fmt is None or self.sample_fmt.rstrip("p") in ("flt", "dbl"):
            return None
        return self.bits_per_sample

    @property
    def display_size(self) -> tuple[int, int] | None:
        """Width and height as shown, after the rotation ffmpeg applies when decoding."""
        if self.width is None or self.height is None:
            return None
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True, kw_only=True)
class Probe:
    """What ffprobe says about a master, reduced to what the job uses."""

    kind: MediaKind
    duration_s: float
    container: str
    size_bytes: int
    bit_rate: int | None
    streams: tuple[Stream, ...]
    tags: dict[str, str] = field(default_factory=dict)
    chapters: tuple[Chapter, ...] = ()

    @property
    def video(self) -> Stream | None:
        """The first real video stream (cover art is not video)."""
        return next((s for s in self.streams if s.codec_type == "video" and not s.attached_pic), None)

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.codec_type == "audio"), None)

    @property
    def video_bit_rate(self) -> int | None:
        """The video stream's bit rate (bit/s), or the container's less the audio's when only that is known."""
        video, audio = self.video, self.audio
        if video is None:
            return None
        if video.bit_rate:
            return video.bit_rate
        if self.bit_rate:
            return max(0, self.bit_rate - ((audio.bit_rate or 0) if audio else 0)) or None
        return None

    def to_document(self) -> dict[str, Any]:
        """The ``probe`` part of the job document."""
        return {
            "kind": self.kind,
            "duration_s": round(self.duration_s, 3),
            "container": self.container,
            "size_bytes": self.size_bytes,
            "bit_rate": self.bit_rate,
            "streams": [{k: v for k, v in asdict(s).items() if v is not None} for s in self.streams],
            "tags": dict(self.tags),
        }


def build_probe_cmd(path: Path, *, ffprobe: str) -> FFmpegCall:
    """The ffprobe run that describes a local master as JSON (hardened and confined by
    :func:`~pipelines.media.confined.run_confined`)."""
    args = (ffprobe, "-hide_banner", "-v", "error", "-show_format", "-show_streams", "-show_chapters",
            "-of", "json", "-i", str(path))
    return FFmpegCall(kind="probe", args=args, inputs=(master_input(path),))


def probe_file(
    path: Path, *, ffprobe: str, limits: Limits, max_output_bytes: int = MAX_PROBE_OUTPUT_BYTES
) -> Probe:
    """Probe and validate a local master.

    Raises ``MediaError`` for an empty file, a file no accepted demuxer reads, one whose description passes
    ``max_output_bytes`` (tags of hundreds of megabytes: ``tags_too_large``), or one that fails
    :func:`validate`; ``FFmpegError`` only when ffprobe itself cannot run.
    """
    size = path.stat().st_size
    if size == 0:
        raise MediaError("empty_file", "the master is an empty file (0 bytes)")
    call = build_probe_cmd(path, ffprobe=ffprobe)
    output = bytearray()

    def collect(data: bytes) -> None:
        output.extend(data)
        if len(output) > max_output_bytes:  # ffprobe is stopped here, before the worker holds it all
            raise MediaError("tags_too_large", f"the master's tags and description pass {max_output_bytes} bytes")

    try:
        completed = run_confined(call, limits=limits, on_stdout=collect)
    except FFmpegError as exc:
        if exc.timed_out:
            message = f"reading the master took longer than {limits.probe_timeout_s:g} s"
            raise MediaError("probe_timeout", message) from exc
        if exc.returncode is None:
            raise  # ffprobe could not start: the worker is broken, not the master
        if exc.out_of_memory:
            raise resource_limit_error(exc, memory_mb=limits.process_memory_mb) from exc
        reason = exc.reason.replace(str(path), "master")
        raise MediaError("not_media", f"the master is not a media file ffmpeg accepts ({reason})") from exc
    refused = refused_frame_size(completed.stderr_tail)
    if refused is not None:
        raise MediaError(
            "resolution_too_large",
            f"a frame of the video claims {refused[0]}x{refused[1]} pixels, more than a decoder may allocate "
            f"(the limit is {limits.max_width}x{limits.max_height})",
        )
    probe = parse_probe(output.decode("utf-8", "replace"), size_bytes=size)
    validate(probe, limits)
    if probe.container == "wav":
        with open(path, "rb") as reader:
            declared = declared_wav_data_bytes(reader.read(4096))
        if declared is not None and declared > 2 * size:
            raise MediaError(
                "truncated_master",
                f"the WAV header announces {declared} bytes of sound but the file holds {size} bytes in all; "
                "the file is probably cut short",
            )
    return probe


def declared_wav_data_bytes(head: bytes) -> int | None:
    """The size of the ``data`` chunk a RIFF/WAVE header announces (bytes), from the file's first bytes.

    ``None`` when there is none to trust: not RIFF/WAVE, no ``data`` chunk in ``head``, or the 0 / 0xFFFFFFFF
    that writers to a pipe leave when they cannot seek back."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position = 12
    while position + 8 <= len(head):
        kind, size = head[position:position + 4], int.from_bytes(head[position + 4:position + 8], "little")
        if kind == b"data":
            return None if size in (0, 0xFFFF_FFFF) else size
        position += 8 + size + (size & 1)
    return None


def refused_frame_size(stderr: str) -> tuple[int, int] | None:
    """The frame size a decoder refused to allocate (past ``-max_pixels`` or ffmpeg's own bound), from its log.

    ffprobe still exits 0 then, reporting the stream with no size: without this, an image bomb would read as a
    video without a frame size."""
    found = _REFUSED_FRAME.search(stderr)
    return (int(found.group(1)), int(found.group(2))) if found else None


_REFUSED_FRAME = re.compile(r"Picture size (\d+)x(\d+) (?:exceeds specified max pixel count|is invalid)")


def parse_probe(text: str, *, size_bytes: int) -> Probe:
    """Parse ``ffprobe -show_format -show_streams -show_chapters -of json`` output into a :class:`Probe`.

    Raises ``MediaError`` (``no_media_streams``, ``not_media``) when the output describes nothing playable.
    """
    try:
        data = _well_formed(json.loads(text))
    except (ValueError, RecursionError) as exc:  # not JSON, too deep, an integer of 5,000 digits, not a document
        raise MediaError("not_media", "ffprobe did not describe the master") from exc
    fmt = data.get("format") or {}
    if not fmt:
        raise MediaError("not_media", "ffprobe found no container in the master")
    streams = tuple(_parse_stream(s) for s in data.get("streams") or [] if s.get("codec_type") in {"audio", "video"})
    has_video = any(s.codec_type == "video" and not s.attached_pic for s in streams)
    has_audio = any(s.codec_type == "audio" for s in streams)
    if not has_video and not has_audio:
        raise MediaError("no_media_streams", "the master has no audio or video stream")
    durations = [_float(fmt.get("duration"))] + [s.duration_s for s in streams]
    duration = max((d for d in durations if d), default=0.0)
    # An attached picture's tags describe the picture ("Cover (front)"), not the master.
    stream_tags = (s.get("tags") for s in data.get("streams") or []
                   if isinstance(s, dict) and not (s.get("disposition") or {}).get("attached_pic"))
    tags = _merge_tags(fmt.get("tags"), *stream_tags)
    chapters = data.get("chapters")
    return Probe(
        kind="video" if has_video else "audio",
        duration_s=duration,
        container=str(fmt.get("format_name", "unknown")),
        size_bytes=size_bytes,
        bit_rate=_int(fmt.get("bit_rate")),
        streams=streams,
        tags=tags,
        chapters=parse_chapters(chapters if isinstance(chapters, list) else [], duration_s=duration or None),
    )


def validate(probe: Probe, limits: Limits) -> None:
    """Raise ``MediaError`` when the master is past a configured limit or has no usable duration."""
    if probe.duration_s <= 0:
        raise MediaError("no_duration", "the master has no measurable duration")
    if probe.duration_s > limits.max_duration_s:
        raise MediaError(
            "duration_too_long",
            f"the master lasts {probe.duration_s:.0f} s, more than the limit of {limits.max_duration_s:.0f} s",
        )
    if len(probe.streams) > limits.max_streams:
        message = f"the master has {len(probe.streams)} streams, more than {limits.max_streams}"
        raise MediaError("too_many_streams", message)
    video = probe.video
    if video is not None:
        size = video.display_size
        if size is None or size[0] <= 0 or size[1] <= 0:
            raise MediaError("no_resolution", "the video stream has no frame size")
        if size[0] > limits.max_width or size[1] > limits.max_height:
            raise MediaError(
                "resolution_too_large",
                f"the video is {size[0]}x{size[1]}, larger than the limit of {limits.max_width}x{limits.max_height}",
            )


def _well_formed(data: Any) -> dict[str, Any]:
    """ffprobe's ``format``, ``streams`` and ``chapters`` (nothing else is kept) with every part that is not of
    the JSON type ffprobe writes there left out, so that the parser only meets the shapes it expects (ffprobe's
    output is trusted no more than the master it describes). Raises ``ValueError`` for a non-object document."""
    if not isinstance(data, dict):
        raise ValueError("the document is not an object")

    def stream(raw: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in raw.items() if k not in _STRUCTURED or isinstance(v, _STRUCTURED[k])}
        kept["side_data_list"] = [side for side in kept.get("side_data_list") or [] if isinstance(side, dict)]
        for name in ("codec_type", "profile", "pix_fmt", "channel_layout", "sample_fmt"):
            if name in kept and not isinstance(kept[name], str):
                del kept[name]
        return kept

    streams = data.get("streams")
    chapters = data.get("chapters")
    return {
        "format": data["format"] if isinstance(data.get("format"), dict) else {},
        "streams": [stream(s) for s in streams if isinstance(s, dict)] if isinstance(streams, list) else [],
        "chapters": chapters if isinstance(chapters, list) else [],
    }


_STRUCTURED: dict[str, type] = {"tags": dict, "disposition": dict, "side_data_list": list}


def _parse_stream(raw: dict[str, Any]) -> Stream:
    tags = raw.get("tags") or {}
    return Stream(
        index=_int(raw.get("index")) or 0,
        codec_type=str(raw["codec_type"]),
        codec_name=str(raw.get("codec_name", "unknown")),
        profile=raw.get("profile"),
        bit_rate=_int(raw.get("bit_rate")),
        duration_s=_float(raw.get("duration")),
        width=_int(raw.get("width")),
        height=_int(raw.get("height")),
        frame_rate=_rate(raw.get("avg_frame_rate")) or _rate(raw.get("r_frame_rate")),
        pix_fmt=raw.get("pix_fmt"),
        rotation=_rotation(raw),
        attached_pic=bool((raw.get("disposition") or {}).get("attached_pic")),
        sample_rate=_int(raw.get("sample_rate")),
        channels=_int(raw.get("channels")),
        channel_layout=raw.get("channel_layout"),
        sample_fmt=raw.get("sample_fmt"),
        bits_per_sample=_declared_bits(raw),
        language=_clean_tag(tags.get("language")) if tags.get("language") not in (None, "und") else None,
    )


def _declared_bits(raw: dict[str, Any]) -> int | None:
    """Bits per sample as declared: ``bits_per_raw_sample`` where set, else ``bits_per_sample``; 0 means none."""
    bits = _int(raw.get("bits_per_raw_sample")) or _int(raw.get("bits_per_sample"))
    return bits if bits is not None and 0 < bits <= 64 else None


def _rotation(raw: dict[str, Any]) -> int:
    for side in raw.get("side_data_list") or []:
        if "rotation" in side:
            return int(_float(side["rotation"]) or 0) % 360
    return int(_float((raw.get("tags") or {}).get("rotate")) or 0) % 360


def _merge_tags(*sources: Any) -> dict[str, str]:
    """Container tags first, then stream tags (Ogg and FLAC keep theirs on the stream), keys lower-cased."""
    merged: dict[str, str] = {}
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key, value in source.items():
            name = _clean_tag(key, limit=64).lower()
            if name and name not in merged and name not in _MUXER_TAGS and len(merged) < MAX_TAGS:
                merged[name] = _clean_tag(value)
    return merged


def _clean_tag(value: Any, *, limit: int = MAX_TAG_CHARS) -> str:
    """A tag as printable text: control characters dropped, at most ``limit`` characters (see ``clean_text``)."""
    return clean_text(value, limit=limit)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _rate(value: Any) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None
