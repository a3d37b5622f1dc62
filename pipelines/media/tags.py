"""The master's tags as catalog fields: one normalised record, whatever container or tagger wrote them.

ffmpeg already maps most native tag names to its generic ones (ID3v2 ``TIT2``, MP4 ``©nam``, RIFF ``INAM`` and
Vorbis ``TITLE`` all become ``title``); the names it passes through unchanged (ID3v2 ``TSRC`` and ``TDOR``,
Vorbis ``ORGANIZATION``, Matroska ``DATE_RELEASED``, iTunes free-form ``ISRC`` …) are the aliases in
:data:`FIELD_ALIASES`. Keys are compared case-insensitively. Values are validated where a format exists (ISRC,
ISO 639 language, ISO 8601 date, positive numbers); a value that fails is left out of its field and named in
``invalid``, never guessed at.

Everything that reaches this module is untrusted text: :func:`clean_text` is the one sanitiser, used by the
probe parser too, so that bytes that are not UTF-8, NUL and control characters, and megabyte-long values never
reach the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
import itertools
import re
from typing import Any, TypeVar

import pycountry

MAX_TEXT_CHARS = 1024
"""Longest value kept, in characters; a longer one is cut and ends in an ellipsis."""
MAX_TAGS = 64
"""Most tags read from one master; the rest are ignored."""
MAX_CHAPTERS = 500
MAX_CHAPTER_TITLE_CHARS = 200
ELLIPSIS = "…"
_T = TypeVar("_T")

# Field → tag names (lower-case) that carry it, best first. The first name with a valid value wins.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "tit2", "inam"),
    "artist": ("artist", "tpe1", "iart", "album_artist", "albumartist", "album artist", "tpe2", "performer",
               "author"),
    "album": ("album", "talb", "iprd"),
    "album_artist": ("album_artist", "albumartist", "album artist", "tpe2"),
    "isrc": ("isrc", "tsrc"),
    "language": ("language", "tlan", "ilng", "lang"),
    "release_date": ("date", "release_date", "releasedate", "date_released", "year", "tdrc", "tdrl", "tyer",
                     "tdor", "originaldate", "original_date", "originalyear", "date_recorded", "icrd",
                     "creation_time"),
    "genre": ("genre", "tcon", "ignr"),
    "track": ("track", "tracknumber", "trck", "iprt", "trkn"),
    "track_total": ("tracktotal", "totaltracks", "track_total"),
    "disc": ("disc", "discnumber", "tpos", "disk"),
    "disc_total": ("disctotal", "totaldiscs", "disc_total"),
    "composer": ("composer", "tcom", "writer"),
    "publisher": ("publisher", "label", "organization", "tpub"),
    "copyright": ("copyright", "tcop", "icop", "cprt"),
    "comment": ("comment", "description", "comm", "icmt", "synopsis"),
}

_ISRC = re.compile(r"[A-Z]{2}[A-Z0-9]{3}[0-9]{7}")
_DATE = re.compile(r"(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?(?=$|[T\s])")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(?=$|[T\s])")
_NUMBER_PAIR = re.compile(r"\s*(\d{1,6})\s*(?:(?:/|of)\s*(\d{1,6}))?")
_NO_LANGUAGE = frozenset({"und", "zxx", "mis", "xxx"})
# Years outside this span are typos or hostile values; the first sound recordings date from 1860.
_FIRST_YEAR, _LAST_YEAR = 1860, 2999
# A muxer that was given no time writes its epoch (MP4 1904, Unix 1970) as ``creation_time``: not a date.
_EPOCHS = ("1904-01-01", "1970-01-01")


def clean_text(value: object, *, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` as printable text of at most ``limit`` characters.

    Bytes are decoded as UTF-8 with invalid sequences replaced (U+FFFD); NUL, control and format characters
    and lone surrogates are dropped; any run of whitespace becomes one space. A value cut at ``limit`` ends in
    an ellipsis. The scan stops as soon as ``limit`` characters are kept, so a megabyte-long value costs no
    more than a short one.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
    kept: list[str] = []
    space = False
    for ch in text:
        if ch.isspace():
            space = bool(kept)
            continue
        if not ch.isprintable():
            continue
        if space:
            kept.append(" ")
            space = False
        kept.append(ch)
        if len(kept) > limit:
            return "".join(kept[: limit - 1]).rstrip() + ELLIPSIS
    return "".join(kept)


def normalise_isrc(value: str) -> str | None:
    """``CC-XXX-YY-NNNNN`` (any case, hyphens, spaces or an ``ISRC`` prefix) as the 12-character code, or None."""
    for candidate in re.split(r"[;,/|]", value.upper()):
        code = re.sub(r"[\s\-.]", "", candidate).removeprefix("ISRC:").removeprefix("ISRC")
        if _ISRC.fullmatch(code):
            return code
    return None


def normalise_language(value: str) -> str | None:
    """An ISO 639 code or English name as its three-letter ISO 639-3 code (``en``, ``eng``, ``English`` →
    ``eng``; the bibliographic ``fre`` → ``fra``); None for undetermined, no linguistic content or unknown."""
    first = re.split(r"[,;/|]", value.strip())[0].strip()
    base = re.split(r"[-_]", first)[0].strip().lower() if len(first) <= 16 else first.lower()
    language: Any = None
    if len(base) == 2 and base.isalpha():
        language = pycountry.languages.get(alpha_2=base)
    elif len(base) == 3 and base.isalpha():
        language = pycountry.languages.get(alpha_3=base) or pycountry.languages.get(bibliographic=base)
    elif 3 < len(first) <= 64:
        language = pycountry.languages.get(name=first.title())
    code = getattr(language, "alpha_3", None)
    return None if code is None or code in _NO_LANGUAGE else str(code)


def normalise_date(value: str) -> str | None:
    """A release date as ISO 8601 as precise as the tag: ``2019``, ``2019-05`` or ``2019-05-17``.

    Reads ``2019``, ``2019-05-17``, ``2019/05/17``, ``20190517``, and timestamps such as
    ``2019-05-17T10:00:00.000000Z`` (an MP4 ``creation_time``). Returns None for anything else, an impossible
    day or month, or a year outside 1860–2999.
    """
    text = value.strip()
    match = _COMPACT_DATE.match(text) or _DATE.match(text)
    if match is None:
        return None
    year = int(match.group(1))
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        return None
    month, day = (int(part) if part else None for part in match.group(2, 3))
    if month is None:
        return f"{year:04d}"
    try:
        date(year, month, day or 1)
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}" if day is None else f"{year:04d}-{month:02d}-{day:02d}"


def parse_number_pair(value: str) -> tuple[int | None, int | None]:
    """``"3"``, ``"3/12"`` or ``"3 of 12"`` as (number, total); zero or unreadable parts are None."""
    match = _NUMBER_PAIR.match(value)
    if match is None:
        return None, None
    number, total = (int(part) if part else 0 for part in match.group(1, 2))
    return number or None, total or None


@dataclass(frozen=True, kw_only=True)
class Chapter:
    """A chapter of an audiobook or podcast, times in seconds from the start of the master."""

    index: int
    start_s: float
    end_s: float
    title: str | None

    def to_document(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "title": self.title}


def parse_chapters(raw: Iterable[Any], *, duration_s: float | None = None) -> tuple[Chapter, ...]:
    """Chapters from ffprobe's ``-show_chapters`` JSON: sorted by start, at most :data:`MAX_CHAPTERS`, ends
    clamped to ``duration_s``; a chapter without a readable start, or that ends before it starts, is dropped."""
    chapters: list[tuple[float, float, str | None]] = []
    for entry in raw:
        if len(chapters) >= MAX_CHAPTERS:
            break
        if not isinstance(entry, dict):
            continue
        start, end = _seconds(entry.get("start_time")), _seconds(entry.get("end_time"))
        if start is None or start < 0:
            continue
        if duration_s:
            start = min(start, duration_s)
            end = min(end, duration_s) if end is not None else duration_s
        if end is None or end < start:
            continue
        tags = entry.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        title = next((v for k, v in tags.items() if str(k).lower() == "title"), None)
        cleaned = clean_text(title, limit=MAX_CHAPTER_TITLE_CHARS) if title is not None else ""
        chapters.append((start, end, cleaned or None))
    chapters.sort(key=lambda c: (c[0], c[1]))
    return tuple(Chapter(index=i, start_s=s, end_s=e, title=t) for i, (s, e, t) in enumerate(chapters))


@dataclass(frozen=True, kw_only=True)
class Metadata:
    """What the master's tags say about it, normalised; every field None when the tags do not say it."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    album_artist: str | None = None
    isrc: str | None = None
    """The 12-character ISRC without hyphens, e.g. ``USS1Z9900001``."""
    language: str | None = None
    """ISO 639-3 code (``eng``)."""
    release_date: str | None = None
    """ISO 8601: ``2019``, ``2019-05`` or ``2019-05-17``."""
    genre: str | None = None
    track_number: int | None = None
    track_total: int | None = None
    disc_number: int | None = None
    disc_total: int | None = None
    composer: str | None = None
    publisher: str | None = None
    copyright: str | None = None
    comment: str | None = None
    chapters: tuple[Chapter, ...] = ()
    invalid: dict[str, str] = field(default_factory=dict)
    """Field → the tag value that was present but not valid for it (an ISRC of the wrong shape …)."""

    def to_document(self, *, cover_art: str | None = None) -> dict[str, Any]:
        """The ``metadata`` part of the job document; ``cover_art`` is the published image's URI."""
        return {
            "title": self.title,
            "artist": self.artist,
            "album": self.album,
            "album_artist": self.album_artist,
            "isrc": self.isrc,
            "language": self.language,
            "release_date": self.release_date,
            "genre": self.genre,
            "track_number": self.track_number,
            "track_total": self.track_total,
            "disc_number": self.disc_number,
            "disc_total": self.disc_total,
            "composer": self.composer,
            "publisher": self.publisher,
            "copyright": self.copyright,
            "comment": self.comment,
            "chapters": [chapter.to_document() for chapter in self.chapters],
            "cover_art": cover_art,
            "invalid": dict(self.invalid),
        }


def normalise_tags(
    tags: Mapping[str, Any], *, chapters: tuple[Chapter, ...] = (), stream_language: str | None = None
) -> Metadata:
    """Map a master's tags (container and stream tags, any case, any container's names) to :class:`Metadata`.

    ``stream_language`` (the audio stream's language) is used when no tag names one. Never raises for any
    content of ``tags``.
    """
    lowered: dict[str, str] = {}
    for key, value in itertools.islice(tags.items(), MAX_TAGS):
        name = clean_text(key, limit=64).lower()
        cleaned = clean_text(value)
        if name == "creation_time" and cleaned.startswith(_EPOCHS):
            continue
        if name and cleaned and name not in lowered:
            lowered[name] = cleaned
    invalid: dict[str, str] = {}

    def first(name: str) -> str | None:
        return next((lowered[alias] for alias in FIELD_ALIASES[name] if alias in lowered), None)

    def validated(name: str, parse: Callable[[str], _T | None]) -> _T | None:
        seen = [lowered[alias] for alias in FIELD_ALIASES[name] if alias in lowered]
        for value in seen:
            parsed = parse(value)
            if parsed is not None:
                return parsed
        if seen:
            invalid[name] = clean_text(seen[0], limit=64)
        return None

    track: tuple[int, int | None] | None = validated("track", _numbered)
    disc: tuple[int, int | None] | None = validated("disc", _numbered)
    language = validated("language", normalise_language)
    if language is None and stream_language:
        language = normalise_language(stream_language)
    return Metadata(
        title=first("title"),
        artist=first("artist"),
        album=first("album"),
        album_artist=first("album_artist"),
        isrc=validated("isrc", normalise_isrc),
        language=language,
        release_date=validated("release_date", normalise_date),
        genre=first("genre"),
        track_number=track[0] if track else None,
        track_total=(track[1] if track else None) or validated("track_total", _positive),
        disc_number=disc[0] if disc else None,
        disc_total=(disc[1] if disc else None) or validated("disc_total", _positive),
        composer=first("composer"),
        publisher=first("publisher"),
        copyright=first("copyright"),
        comment=first("comment"),
        chapters=chapters,
        invalid=invalid,
    )


def _numbered(value: str) -> tuple[int, int | None] | None:
    number, total = parse_number_pair(value)
    return None if number is None else (number, total)


def _positive(value: str) -> int | None:
    return parse_number_pair(value)[0]


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None
