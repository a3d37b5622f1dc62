"""HLS packaging: measure what the encoder wrote, write the master playlist, and order the publication.

The master playlist is built from measurements of the files on disk — ``BANDWIDTH`` is the peak segment bit
rate, ``AVERAGE-BANDWIDTH`` the mean over the whole rendition, ``CODECS`` and ``RESOLUTION`` come from each
init segment, ``FRAME-RATE`` from the samples counted in the segments — never from the encoder settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import re

from pipelines.errors import PackagingError
from pipelines.media.isobmff import TrackFormat, count_samples, track_format
from pipelines.video.transcode import PLAYLIST_NAME, EncodedRendition

MASTER_NAME = "master.m3u8"
AUDIO_GROUP = "aac"

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
}


class PlaylistError(PackagingError):
    """A media playlist that this project's encoder should never have written, or measurements that would make
    an invalid master playlist."""


@dataclass(frozen=True)
class MediaPlaylist:
    """The parts of an HLS media playlist packaging needs: the init segment and each segment's duration."""

    init_uri: str | None
    segments: tuple[tuple[str, float], ...]
    ended: bool

    @property
    def duration_s(self) -> float:
        return sum(duration for _, duration in self.segments)


@dataclass(frozen=True, kw_only=True)
class MeasuredRendition:
    """One rendition as it exists on disk; bit rates in bit/s, durations in seconds."""

    name: str
    kind: str
    directory: Path
    format: TrackFormat
    duration_s: float
    peak_bps: int
    average_bps: int
    segment_count: int
    frame_rate: float | None
    total_bytes: int

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` in pixels of a video rendition; ``None`` for audio."""
        if self.kind != "video" or self.format.width is None or self.format.height is None:
            return None
        return self.format.width, self.format.height


@dataclass(frozen=True)
class Variant:
    """A rendition as a master playlist lists it: a video variant counts the audio group it plays with
    (``audio``, the group's largest rendition) in its bandwidth and codecs; bit rates in bit/s."""

    rendition: MeasuredRendition
    audio: MeasuredRendition | None = None

    @property
    def bandwidth(self) -> int:
        """``BANDWIDTH``: the peak segment bit rate, the audio group's included."""
        return self.rendition.peak_bps + (self.audio.peak_bps if self.audio is not None else 0)

    @property
    def average_bandwidth(self) -> int:
        """``AVERAGE-BANDWIDTH``: the mean bit rate over the whole rendition, the audio group's included."""
        return self.rendition.average_bps + (self.audio.average_bps if self.audio is not None else 0)

    @property
    def codecs(self) -> str:
        """``CODECS``: the rendition's RFC 6381 codec, then the audio group's."""
        codecs = self.rendition.format.codecs
        return codecs if self.audio is None else f"{codecs},{self.audio.format.codecs}"

    @property
    def resolution(self) -> str | None:
        """``RESOLUTION`` (``960x540``) of a video variant; ``None`` for audio."""
        size = self.rendition.size
        return None if size is None else f"{size[0]}x{size[1]}"

    @property
    def frame_rate(self) -> float | None:
        """Frames per second counted in the segments, to the millisecond as published; ``None`` for audio."""
        rate = self.rendition.frame_rate
        return round(rate, 3) if rate else None

    @property
    def duration_s(self) -> float:
        """Seconds, to the millisecond as published."""
        return round(self.rendition.duration_s, 3)

    def to_document(self, playlist_uri: str) -> dict[str, object]:
        """The entry of ``hls.renditions`` in the job document, ``playlist`` being ``playlist_uri``."""
        rendition = self.rendition
        return {
            "name": rendition.name,
            "kind": rendition.kind,
            "bandwidth": self.bandwidth,
            "average_bandwidth": self.average_bandwidth,
            "codecs": self.codecs,
            "resolution": self.resolution,
            "frame_rate": self.frame_rate,
            "channels": rendition.format.channels,
            "duration_s": self.duration_s,
            "segments": rendition.segment_count,
            "bytes": rendition.total_bytes,
            "playlist": playlist_uri,
        }


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Parse the VOD media playlist ffmpeg's hls muxer writes (``#EXTINF`` durations, ``#EXT-X-MAP``).

    Raises ``PlaylistError`` when it is not an HLS playlist or a segment has no duration.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    init_uri: str | None = None
    segments: list[tuple[str, float]] = []
    pending: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-MAP:"):
            init_uri = _attribute(line, "URI")
        elif line.startswith("#EXTINF:"):
            try:
                pending = float(line[len("#EXTINF:") :].split(",", 1)[0])
            except ValueError:
                raise PlaylistError(f"bad segment duration in {line!r}") from None
        elif not line.startswith("#"):
            if pending is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(init_uri=init_uri, segments=tuple(segments), ended="#EXT-X-ENDLIST" in lines)


def measure_rendition(out_dir: Path, encoded: EncodedRendition) -> MeasuredRendition:
    """Measure one rendition the transcode wrote under ``out_dir``.

    Raises ``PlaylistError`` when the playlist is unfinished, empty, or names a file that is not there.
    """
    directory = out_dir / encoded.directory
    playlist = parse_media_playlist((directory / PLAYLIST_NAME).read_text())
    if not playlist.ended or not playlist.segments:
        raise PlaylistError(f"rendition {encoded.name} has an unfinished or empty playlist")
    if playlist.init_uri is None:
        raise PlaylistError(f"rendition {encoded.name} has no init segment")
    init = _read(directory, playlist.init_uri)
    fmt = track_format(init)
    total_bytes = len(init)
    peak = 0.0
    samples = 0
    for uri, duration in playlist.segments:
        data = _read(directory, uri)
        total_bytes += len(data)
        if encoded.kind == "video":
            samples += count_samples(data)
        if duration > 0:
            peak = max(peak, len(data) * 8 / duration)
    duration = playlist.duration_s
    return MeasuredRendition(
        name=encoded.name,
        kind=encoded.kind,
        directory=encoded.directory,
        format=fmt,
        duration_s=duration,
        peak_bps=round(peak),
        average_bps=round(total_bytes * 8 / duration) if duration > 0 else 0,
        segment_count=len(playlist.segments),
        frame_rate=samples / duration if encoded.kind == "video" and duration > 0 else None,
        total_bytes=total_bytes,
    )


def build_master_playlist(renditions: list[MeasuredRendition]) -> str:
    """The master playlist text for measured renditions.

    With video, each video rendition is a variant that references one AAC group (the audio renditions) and
    carries the group's largest bandwidth in its own; without video, each audio rendition is a variant.
    Variants are listed from the highest bandwidth down. Raises ``PlaylistError`` for measurements that
    would make an invalid playlist (no variant, a name that is not one path segment, a bit rate or a frame
    size that is not positive, codecs that are not an RFC 6381 list).
    """
    _check_variants(renditions)
    video = sorted((r for r in renditions if r.kind == "video"), key=lambda r: r.peak_bps, reverse=True)
    audio = sorted((r for r in renditions if r.kind == "audio"), key=lambda r: r.peak_bps, reverse=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if video:
        loudest = audio[0] if audio else None
        for index, track in enumerate(audio):
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{track.name}",'
                f'DEFAULT={"YES" if index == 0 else "NO"},AUTOSELECT=YES,'
                f'CHANNELS="{track.format.channels or 2}",URI="{track.name}/{PLAYLIST_NAME}"'
            )
        for rendition in video:
            variant = Variant(rendition, loudest)
            attributes = [
                f"BANDWIDTH={variant.bandwidth}",
                f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
                f'CODECS="{variant.codecs}"',
                f"RESOLUTION={variant.resolution}",
            ]
            if rendition.frame_rate and math.isfinite(rendition.frame_rate) and rendition.frame_rate > 0:
                attributes.append(f"FRAME-RATE={rendition.frame_rate:.3f}")
            if loudest is not None:
                attributes.append(f'AUDIO="{AUDIO_GROUP}"')
            lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", f"{rendition.name}/{PLAYLIST_NAME}"]
    else:
        for rendition in audio:
            lines += [
                f'#EXT-X-STREAM-INF:BANDWIDTH={rendition.peak_bps},AVERAGE-BANDWIDTH={rendition.average_bps},'
                f'CODECS="{rendition.format.codecs}"',
                f"{rendition.name}/{PLAYLIST_NAME}",
            ]
    return "\n".join(lines) + "\n"


_SEGMENT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_CODECS = re.compile(r"[A-Za-z0-9]{4}(\.[A-Za-z0-9]+)*(,[A-Za-z0-9]{4}(\.[A-Za-z0-9]+)*)*")


def _check_variants(renditions: list[MeasuredRendition]) -> None:
    """Raise ``PlaylistError`` unless every rendition can be written into a valid master playlist."""
    if not any(r.kind in ("video", "audio") for r in renditions):
        raise PlaylistError("no audio or video rendition to list in the master playlist")
    for rendition in renditions:
        if rendition.kind not in ("video", "audio"):
            raise PlaylistError(f"rendition {rendition.name!r:.80} is neither audio nor video")
        if not _SEGMENT_NAME.fullmatch(rendition.name):
            raise PlaylistError(f"rendition name {rendition.name!r:.80} is not a plain path segment")
        if not _CODECS.fullmatch(rendition.format.codecs):
            raise PlaylistError(f"rendition {rendition.name}: codecs {rendition.format.codecs!r:.80} are not RFC 6381")
        if rendition.peak_bps <= 0 or rendition.average_bps <= 0:
            raise PlaylistError(f"rendition {rendition.name}: its bit rate is not positive")
        width, height = rendition.format.width, rendition.format.height
        if rendition.kind == "video" and not (width and height and width > 0 and height > 0):
            raise PlaylistError(f"rendition {rendition.name}: no frame size")
        if rendition.kind == "audio" and rendition.format.channels is not None and rendition.format.channels <= 0:
            raise PlaylistError(f"rendition {rendition.name}: {rendition.format.channels} channels")


def publication_order(
    out_dir: Path, renditions: list[MeasuredRendition], *, extras: Sequence[tuple[Path, str, str]] = ()
) -> list[tuple[Path, str, str]]:
    """Every file to publish as ``(local path, key relative to the ladder's prefix, content type)``.

    Segments and init segments come first, then ``extras`` (files published beside the ladder, such as the
    cover art), then each rendition's playlist, and the master playlist last, so that a reader who can see a
    playlist can also fetch everything it names.
    """
    media: list[tuple[Path, str, str]] = []
    playlists: list[tuple[Path, str, str]] = []
    for rendition in renditions:
        directory = out_dir / rendition.directory
        segment_type = "video/mp4" if rendition.kind == "video" else "audio/mp4"
        for path in sorted(directory.iterdir()):
            key = f"{rendition.directory.as_posix()}/{path.name}"
            if path.name == PLAYLIST_NAME:
                playlists.append((path, key, CONTENT_TYPES[".m3u8"]))
            else:
                media.append((path, key, CONTENT_TYPES[".m4s"] if path.suffix == ".m4s" else segment_type))
    master = out_dir / MASTER_NAME
    return media + list(extras) + playlists + [(master, MASTER_NAME, CONTENT_TYPES[".m3u8"])]


def _attribute(line: str, name: str) -> str | None:
    for part in line.split(":", 1)[1].split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip().strip('"')
    return None


def _read(directory: Path, uri: str) -> bytes:
    if "/" in uri or uri.startswith("."):
        raise PlaylistError(f"playlist names a file outside its folder: {uri!r}")
    path = directory / uri
    if not path.is_file():
        raise PlaylistError(f"playlist names a missing file: {uri!r}")
    return path.read_bytes()
