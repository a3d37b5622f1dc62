"""Just enough of ISO BMFF (MP4) to describe what an encoder actually wrote.

The master playlist's ``CODECS`` and ``RESOLUTION`` must come from the encoded streams, not from the options
we passed: ffmpeg silently picks a 4:4:4 profile (``avc1.f4…``) for some sources, and a player that is told
``avc1.64001f`` for such a stream refuses it. So we read the sample entry of each fMP4 init segment:
``avcC`` gives the H.264 profile, constraint flags and level; ``esds`` gives the AAC object type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import struct

from pipelines.errors import PackagingError

# Boxes that only contain other boxes, on the way from the file to the sample description.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf"}
# Bytes between a sample entry's header and its child boxes (ISO/IEC 14496-12 §12.1.3, §12.2.3).
_VISUAL_ENTRY_FIELDS = 78
_AUDIO_ENTRY_FIELDS = 28


class Mp4FormatError(PackagingError):
    """The bytes are not the fMP4 this project's encoder writes."""


@dataclass(frozen=True)
class TrackFormat:
    """The codec of the first track of an init segment, as an RFC 6381 ``CODECS`` string."""

    codecs: str
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    sample_rate: int | None = None


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_start, payload_end)`` for each box between ``start`` and ``end``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise Mp4FormatError("truncated 64-bit box header")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Mp4FormatError(f"box {kind!r} at {pos} overruns its parent")
        yield kind, pos + header, pos + size
        pos += size


def find_box(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """The payload span of the first box at ``path`` (e.g. ``[b"moov", b"trak"]``), or ``None``."""
    for kind, payload, stop in iter_boxes(data, start, end):
        if kind == path[0]:
            return (payload, stop) if len(path) == 1 else find_box(data, path[1:], payload, stop)
    return None


def track_format(init: bytes) -> TrackFormat:
    """Describe the first track of an fMP4 init segment (H.264 or AAC).

    Raises ``Mp4FormatError`` for a segment without a sample description or with another codec.
    """
    stsd = find_box(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if stsd is None:
        raise Mp4FormatError("no sample description (moov/trak/…/stsd) in the init segment")
    entries_start = stsd[0] + 8  # version, flags, entry_count
    for kind, payload, stop in iter_boxes(init, entries_start, stsd[1]):
        if kind in (b"avc1", b"avc3"):
            width, height = _unpack(">HH", init, payload + 24, stop)
            avcc = find_box(init, [b"avcC"], payload + _VISUAL_ENTRY_FIELDS, stop)
            if avcc is None:
                raise Mp4FormatError("H.264 sample entry without avcC")
            _version, profile, constraints, level = _unpack(">BBBB", init, avcc[0], avcc[1])
            return TrackFormat(f"{kind.decode()}.{profile:02x}{constraints:02x}{level:02x}", width=width, height=height)
        if kind == b"mp4a":
            channels, _bits, _pre, _res, rate = _unpack(">HHHHI", init, payload + 16, stop)
            esds = find_box(init, [b"esds"], payload + _AUDIO_ENTRY_FIELDS, stop)
            if esds is None:
                raise Mp4FormatError("AAC sample entry without esds")
            object_type = _aac_object_type(init[esds[0] + 4 : esds[1]])
            return TrackFormat(f"mp4a.40.{object_type}", channels=channels, sample_rate=rate >> 16)
        raise Mp4FormatError(f"unsupported sample entry {kind!r}")
    raise Mp4FormatError("empty sample description")


def count_samples(segment: bytes) -> int:
    """Number of samples (video frames, audio frames) in a media segment's ``trun`` boxes."""
    total = 0
    for kind, payload, stop in iter_boxes(segment):
        if kind != b"moof":
            continue
        for traf_kind, traf_start, traf_stop in iter_boxes(segment, payload, stop):
            if traf_kind != b"traf":
                continue
            for box, start, box_end in iter_boxes(segment, traf_start, traf_stop):
                if box == b"trun":
                    total += _unpack(">I", segment, start + 4, box_end)[0]
    return total


def _unpack(layout: str, data: bytes, at: int, end: int) -> tuple[int, ...]:
    """``struct.unpack_from(layout, data, at)``, or ``Mp4FormatError`` when the fields run past ``end``."""
    if at < 0 or at + struct.calcsize(layout) > min(end, len(data)):
        raise Mp4FormatError(f"box fields at {at} run past the end of their box")
    return struct.unpack_from(layout, data, at)


def _aac_object_type(descriptors: bytes) -> int:
    """Walk ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo and read the audio object type."""
    pos = 0

    def read_descriptor(at: int) -> tuple[int, int, int]:
        tag = descriptors[at]
        at += 1
        length = 0
        for _ in range(4):
            byte = descriptors[at]
            at += 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        return tag, at, length

    try:
        tag, pos, _ = read_descriptor(pos)
        if tag != 0x03:
            raise Mp4FormatError("esds does not start with an ES_Descriptor")
        flags = descriptors[pos + 2]
        pos += 3
        if flags & 0x80:
            pos += 2
        if flags & 0x40:
            pos += 1 + descriptors[pos]
        if flags & 0x20:
            pos += 2
        tag, pos, _ = read_descriptor(pos)
        if tag != 0x04:
            raise Mp4FormatError("esds without a DecoderConfigDescriptor")
        pos += 13
        tag, pos, _ = read_descriptor(pos)
        if tag != 0x05:
            raise Mp4FormatError("esds without a DecoderSpecificInfo")
        object_type = descriptors[pos] >> 3
        if object_type == 31:
            object_type = 32 + (((descriptors[pos] & 0x07) << 3) | (descriptors[pos + 1] >> 5))
        return object_type
    except IndexError as exc:
        raise Mp4FormatError("truncated esds") from exc
