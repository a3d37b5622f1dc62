"""Tags, chapters and cover art: normalised from every container ffmpeg writes, hostile values sanitised, the
fields stored in the catalog and found again by ``mediaworker search``."""

from __future__ import annotations

import json
from pathlib import Path
import time
from typing import Any

import pytest

from pipelines.catalog import AssetRecord, Catalog
from pipelines.config import Limits
from pipelines.document import JobDocument, PublishedMetadata
from pipelines.errors import MediaError
from pipelines.media.confined import hardened_argv
from pipelines.media.cover_art import (
    MAX_COVER_BYTES,
    CoverResult,
    build_cover_cmd,
    check_cover,
    extract_cover_art,
    image_size,
)
from pipelines.media.probe import parse_probe, probe_file
from pipelines.media.tags import (
    ELLIPSIS,
    MAX_CHAPTERS,
    MAX_TEXT_CHARS,
    Chapter,
    clean_text,
    normalise_date,
    normalise_isrc,
    normalise_language,
    normalise_tags,
    parse_chapters,
    parse_number_pair,
)
from tests.conftest import CliRunner, make_media

LIMITS = Limits()
TAGS = {"title": "Song", "artist": "Band", "album": "Record", "ISRC": "GB-AAA-19-00042", "language": "fre",
        "date": "2019-05-17", "genre": "Jazz", "track": "3/12", "composer": "Writer", "copyright": "(C) Label"}
CHAPTERS = """;FFMETADATA1
title=Book
[CHAPTER]
TIMEBASE=1/1000
START=0
END=2500
title=Opening credits
[CHAPTER]
TIMEBASE=1/1000
START=2500
END=6000
title=Chapter one
"""


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    return {
        "jpg": make_media(folder / "cover.jpg", "-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1"),
        "png": make_media(folder / "cover.png", "-f", "lavfi", "-i", "testsrc2=size=200x200", "-frames:v", "1"),
        "tiny": make_media(folder / "tiny.png", "-f", "lavfi", "-i", "testsrc2=size=8x8", "-frames:v", "1"),
    }


def _metadata_args(tags: dict[str, str]) -> list[str]:
    return [arg for key, value in tags.items() for arg in ("-metadata", f"{key}={value}")]


# Sanitising ---------------------------------------------------------------------------------------------------


def test_clean_text_decodes_invalid_utf8_and_drops_control_characters() -> None:
    assert clean_text(b"Beyonc\xe9 \xc3\x28 live") == "Beyonc\ufffd \ufffd( live"
    assert clean_text("bad\x00name\x1b[31m\u200b") == "badname[31m"
    assert clean_text("  two\n\tlines \r\n here  ") == "two lines here"
    assert clean_text("lone \ud800 surrogate") == "lone surrogate"


def test_a_megabyte_tag_is_cut_with_an_ellipsis_without_scanning_it_all() -> None:
    huge = "x" * 1_000_000
    started = time.process_time()
    cleaned = clean_text(huge)
    assert len(cleaned) == MAX_TEXT_CHARS and cleaned.endswith(ELLIPSIS)
    assert clean_text("\x00" * 100_000 + "after") == "after"
    assert clean_text("short", limit=5) == "short" and clean_text("longer", limit=5) == f"long{ELLIPSIS}"
    assert time.process_time() - started < 5  # a guard against a quadratic scan, far above the real cost


# Field formats ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "isrc"),
    [
        ("GB-AAA-19-00042", "GBAAA1900042"),
        ("us-s1z-99-00001", "USS1Z9900001"),
        ("ISRC: USRC1 1600 001", "USRC11600001"),
        ("not an isrc; FR-Z03-14-00001", "FRZ031400001"),
        ("GB-AAA-19-0004", None),  # 11 characters
        ("12AAA1900042", None),  # the country code is two letters
        ("John Smith", None),  # RIFF INFO's ISRC chunk means "source", a person
    ],
)
def test_isrc(raw: str, isrc: str | None) -> None:
    assert normalise_isrc(raw) == isrc


@pytest.mark.parametrize(
    ("raw", "code"),
    [("eng", "eng"), ("en", "eng"), ("EN-us", "eng"), ("fre", "fra"), ("ger", "deu"), ("English", "eng"),
     ("eng/fra", "eng"), ("und", None), ("zxx", None), ("xx", None), ("Klingonese", None), ("", None)],
)
def test_language_is_an_iso_639_3_code(raw: str, code: str | None) -> None:
    assert normalise_language(raw) == code


@pytest.mark.parametrize(
    ("raw", "iso"),
    [("2019", "2019"), ("2019-05", "2019-05"), ("2019-5-7", "2019-05-07"), ("2019/05/17", "2019-05-17"),
     ("20190517", "2019-05-17"), ("2019-05-17T10:00:00.000000Z", "2019-05-17"), ("2019-05-17 10:00", "2019-05-17"),
     ("2019-02-30", None), ("2019-13", None), ("0000", None), ("19", None), ("May 2019", None), ("9999", None)],
)
def test_release_date_is_iso_8601_as_precise_as_the_tag(raw: str, iso: str | None) -> None:
    assert normalise_date(raw) == iso


def test_track_and_disc_numbers() -> None:
    assert parse_number_pair("3/12") == (3, 12)
    assert parse_number_pair("3 of 12") == (3, 12)
    assert parse_number_pair("07") == (7, None)
    assert parse_number_pair("0/0") == (None, None)
    assert parse_number_pair("side A") == (None, None)


# Aliases of each container -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags",
    [
        # ID3v2 frames ffmpeg leaves under their own names; the picture's tags never reach here
        {"TIT2": "T", "TPE1": "A", "TALB": "Al", "TSRC": "GB-AAA-19-00042", "TLAN": "eng", "TDOR": "2001"},
        # Vorbis comments, any case
        {"Title": "T", "ARTIST": "A", "album": "Al", "isrc": "gbaaa1900042", "LANGUAGE": "en", "DATE": "2001"},
        # RIFF INFO
        {"INAM": "T", "IART": "A", "IPRD": "Al", "TSRC": "GBAAA1900042", "ILNG": "English", "ICRD": "2001-01-01"},
        # Matroska
        {"TITLE": "T", "ARTIST": "A", "ALBUM": "Al", "ISRC": "GBAAA1900042", "LANGUAGE": "eng",
         "DATE_RELEASED": "2001"},
        # MP4: the album artist stands in for a missing artist; a creation time stands in for a missing date
        {"title": "T", "album_artist": "A", "album": "Al", "isrc": "GB-AAA-19-00042", "language": "eng",
         "creation_time": "2001-03-04T05:06:07.000000Z"},
    ],
)
def test_each_containers_names_map_to_the_same_fields(tags: dict[str, str]) -> None:
    metadata = normalise_tags(tags)
    assert (metadata.title, metadata.artist, metadata.album) == ("T", "A", "Al")
    assert metadata.isrc == "GBAAA1900042" and metadata.language == "eng"
    assert metadata.release_date is not None and metadata.release_date.startswith("2001")


def test_invalid_values_are_left_out_and_named() -> None:
    metadata = normalise_tags({"isrc": "John Smith", "date": "yesterday", "year": "1999", "track": "A1",
                               "creation_time": "1970-01-01T00:00:00.000000Z"})
    assert metadata.isrc is None and metadata.track_number is None
    assert metadata.release_date == "1999"  # the first valid alias wins
    assert metadata.invalid == {"isrc": "John Smith", "track": "A1"}
    assert normalise_tags({"creation_time": "1904-01-01T00:00:00Z"}).release_date is None  # a muxer's epoch


def test_the_audio_streams_language_is_the_fallback() -> None:
    assert normalise_tags({}, stream_language="ger").language == "deu"
    assert normalise_tags({"language": "eng"}, stream_language="ger").language == "eng"
    assert normalise_tags({}, stream_language="und").language is None


def test_hostile_tag_sets_never_raise_and_stay_small() -> None:
    tags: dict[str, Any] = {f"k{i}": "v" for i in range(10_000)}
    tags |= {"TITLE": "x" * 1_000_000, "artist": b"\xff\xfe\x00A", "\x00album\x1b": "NUL\x00laden", "date": None}
    metadata = normalise_tags(tags)
    document = metadata.to_document()
    assert len(json.dumps(document)) < 4 * MAX_TEXT_CHARS
    assert normalise_tags({"title": "x" * 1_000_000}).title == "x" * (MAX_TEXT_CHARS - 1) + ELLIPSIS
    assert normalise_tags({"artist": b"\xff\xfe\x00A", "\x00album\x1b": "NUL\x00laden"}).to_document()["album"] \
        == "NULladen"


# Chapters -----------------------------------------------------------------------------------------------------


def test_chapters_are_sorted_clamped_and_capped() -> None:
    raw: list[Any] = [
        {"id": 1, "start_time": "5.0", "end_time": "99.0", "tags": {"TITLE": "Two\x00"}},
        {"id": 0, "start_time": "0.000000", "end_time": "5.000000", "tags": {"title": "One"}},
        {"id": 2, "start_time": "N/A", "end_time": "1"},  # no start: dropped
        {"id": 3, "start_time": "4", "end_time": "2"},  # ends before it starts: dropped
        "not a chapter",
    ]
    assert parse_chapters(raw, duration_s=60.0) == (
        Chapter(index=0, start_s=0.0, end_s=5.0, title="One"),
        Chapter(index=1, start_s=5.0, end_s=60.0, title="Two"),
    )
    many = [{"start_time": str(i), "end_time": str(i + 1)} for i in range(10_000)]
    assert len(parse_chapters(many)) == MAX_CHAPTERS


def test_chapters_from_an_ffmetadata_file(tmp_path: Path) -> None:
    (tmp_path / "chapters.txt").write_text(CHAPTERS)
    book = make_media(tmp_path / "book.m4a", "-f", "lavfi", "-i", "sine=frequency=300:duration=6",
                      "-i", str(tmp_path / "chapters.txt"), "-map", "0", "-map_metadata", "1", "-map_chapters", "1",
                      "-c:a", "aac")
    probe = probe_file(book, ffprobe="ffprobe", limits=LIMITS)
    document = normalise_tags(probe.tags, chapters=probe.chapters).to_document()
    assert document["title"] == "Book"
    assert document["chapters"] == [
        {"index": 0, "start_s": 0.0, "end_s": 2.5, "title": "Opening credits"},
        {"index": 1, "start_s": 2.5, "end_s": pytest.approx(6.0, abs=0.05), "title": "Chapter one"},
    ]


# Real files from ffmpeg ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["mp3", "flac", "ogg", "opus", "m4a", "wav", "mka"])
def test_tags_written_by_ffmpeg_in_each_container(extension: str, tmp_path: Path) -> None:
    master = make_media(tmp_path / f"tagged.{extension}", "-f", "lavfi", "-i", "sine=duration=1",
                        *_metadata_args(TAGS), "-movflags", "use_metadata_tags")
    probe = probe_file(master, ffprobe="ffprobe", limits=LIMITS)
    metadata = normalise_tags(probe.tags, stream_language=probe.audio.language if probe.audio else None)
    assert (metadata.title, metadata.artist, metadata.album) == ("Song", "Band", "Record")
    assert (metadata.isrc, metadata.language, metadata.release_date) == ("GBAAA1900042", "fra", "2019-05-17")
    assert (metadata.genre, metadata.track_number, metadata.track_total) == ("Jazz", 3, 12)


def test_an_id3v2_tsrc_frame_is_the_isrc(tmp_path: Path) -> None:
    master = make_media(tmp_path / "tsrc.mp3", "-f", "lavfi", "-i", "sine=duration=1", "-id3v2_version", "3",
                        "-metadata", "TSRC=us-s1z-99-00001", "-metadata", "TLAN=eng")
    probe = probe_file(master, ffprobe="ffprobe", limits=LIMITS)
    assert "tsrc" in probe.tags
    metadata = normalise_tags(probe.tags)
    assert (metadata.isrc, metadata.language) == ("USS1Z9900001", "eng")


def _syncsafe(n: int) -> bytes:
    return bytes((n >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _id3_frame(frame_id: str, payload: bytes) -> bytes:
    return frame_id.encode() + _syncsafe(len(payload)) + b"\x00\x00" + payload


HOSTILE_FRAMES = b"".join([
    _id3_frame("TIT2", b"\x03Bad \xc3\x28 title \xff\xfe end"),  # declared UTF-8, is not
    _id3_frame("TPE1", b"\x00Beyonc\xe9"),  # Latin-1
    _id3_frame("TALB", b"\x03Live\x00\x00\x00At Home"),  # NUL-laden
    _id3_frame("TCON", b"\x03Ro\x01\x02ck\x1b[31m"),  # control characters
    _id3_frame("COMM", b"\x03eng\x00" + b"x" * 1_000_000),  # a megabyte comment
])


def _with_hostile_frames(mp3: Path) -> Path:
    """Put hand-built ID3v2.4 frames that ffmpeg would never write in front of the frames it wrote."""
    data = mp3.read_bytes()
    assert data[:4] == b"ID3\x04" and data[5] == 0, "ffmpeg wrote an ID3v2.4 tag without flags"
    size = sum(b << shift for b, shift in zip(data[6:10], (21, 14, 7, 0), strict=True))
    frames = HOSTILE_FRAMES + data[10 : 10 + size]
    mp3.write_bytes(b"ID3\x04\x00\x00" + _syncsafe(len(frames)) + frames + data[10 + size :])
    return mp3


@pytest.fixture(scope="session")
def audiobook(tmp_path_factory: pytest.TempPathFactory, pictures: dict[str, Path]) -> Path:
    """An MP3 with an ID3v2.4 tag: ISRC, date and language, an APIC cover, CHAP chapters, and hostile frames."""
    folder = tmp_path_factory.mktemp("audiobook")
    (folder / "chapters.txt").write_text(CHAPTERS.replace("title=Book\n", ""))  # the title is a hostile frame
    mp3 = make_media(
        folder / "book.mp3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=6",
        "-i", str(pictures["jpg"]), "-i", str(folder / "chapters.txt"),
        "-map", "0", "-map", "1", "-map_metadata", "2", "-map_chapters", "2",
        "-c:a", "libmp3lame", "-c:v", "copy", "-disposition:v", "attached_pic",
        "-metadata", "TSRC=GB-AAA-19-00042", "-metadata", "date=2019-05", "-metadata", "language=eng",
        "-metadata:s:v", "title=Album cover", "-metadata:s:v", "comment=Cover (front)",
    )
    return _with_hostile_frames(mp3)


def test_hostile_id3_frames_are_sanitised_by_the_real_probe(audiobook: Path) -> None:
    probe = probe_file(audiobook, ffprobe="ffprobe", limits=LIMITS)
    assert probe.kind == "audio" and probe.video is None  # the cover is not the master's video
    assert all(len(value) <= 1000 for value in probe.tags.values())
    metadata = normalise_tags(probe.tags, chapters=probe.chapters)
    assert metadata.title == "Bad \ufffd( title \ufffd\ufffd end"
    assert metadata.artist == "Beyoncé" and metadata.album == "Live" and metadata.genre == "Rock[31m"
    assert metadata.comment is not None and len(metadata.comment) <= MAX_TEXT_CHARS
    assert metadata.comment.endswith(ELLIPSIS)
    assert (metadata.isrc, metadata.release_date, metadata.language) == ("GBAAA1900042", "2019-05", "eng")
    assert [c.title for c in metadata.chapters] == ["Opening credits", "Chapter one"]


def test_the_probe_reads_output_that_is_not_utf8(tmp_path: Path) -> None:
    """ffprobe replaces invalid UTF-8 itself; a build told not to (``string_validation=ignore``) passes raw
    bytes, which the probe decodes with U+FFFD rather than failing. A script stands in for such a build."""
    fake = tmp_path / "ffprobe"
    fake.write_bytes(b'#!/bin/sh\nprintf \'{"format": {"format_name": "mp3", "duration": "1", "tags": '
                     b'{"title": "A\\377B\\300", "TSRC": "GB-AAA-19-00042"}}, '
                     b'"streams": [{"index": 0, "codec_type": "audio", "codec_name": "mp3"}]}\'\n')
    fake.chmod(0o755)
    master = tmp_path / "master"
    master.write_bytes(b"anything")
    probe = probe_file(master, ffprobe=str(fake), limits=LIMITS)
    assert probe.tags["title"] == "A\ufffdB\ufffd" and normalise_tags(probe.tags).isrc == "GBAAA1900042"


def test_a_description_past_the_cap_rejects_the_master_before_it_is_held(audiobook: Path) -> None:
    """Tags of hundreds of megabytes would be held whole by the worker: past the cap the master is rejected. The
    cap here is 512 KiB so that the audiobook's 1 MB comment passes it; the default is 64 MiB."""
    with pytest.raises(MediaError) as info:
        probe_file(audiobook, ffprobe="ffprobe", limits=LIMITS, max_output_bytes=512 << 10)
    assert info.value.code == "tags_too_large"


def test_a_cover_stream_is_not_video_and_its_tags_are_not_the_masters() -> None:
    text = json.dumps({
        "format": {"format_name": "mp3", "duration": "10", "tags": {}},
        "streams": [
            {"index": 0, "codec_type": "audio", "codec_name": "mp3", "tags": {}},
            {"index": 1, "codec_type": "video", "codec_name": "mjpeg", "width": 500, "height": 500,
             "disposition": {"attached_pic": 1}, "tags": {"title": "Album cover", "comment": "Cover (front)"}},
        ],
        "chapters": [{"id": 0, "start_time": "0", "end_time": "10", "tags": {"title": "All"}}],
    })
    probe = parse_probe(text, size_bytes=1)
    assert probe.kind == "audio" and probe.tags == {}
    assert probe.chapters == (Chapter(index=0, start_s=0.0, end_s=10.0, title="All"),)


# Cover art ----------------------------------------------------------------------------------------------------


def test_cover_command_copies_one_stream_unchanged() -> None:
    call = build_cover_cmd(Path("/w/master"), 2, Path("/w/cover/cover.png"), ffmpeg="ffmpeg")
    assert hardened_argv(call, LIMITS)[12:] == [
        "-i", "/w/master", "-map", "0:2", "-map_metadata", "-1", "-c", "copy", "-frames:v", "1",
        "-f", "image2", "-update", "1", "-y", "/w/cover/cover.png",
    ]
    # a picture's time; it writes the cover folder only, no file past the cap
    assert (call.kind, call.writes, call.max_file_bytes) == ("picture", (Path("/w/cover"),), MAX_COVER_BYTES + 1)


@pytest.mark.parametrize(
    ("extension", "picture", "codec", "size"),
    [("mp3", "jpg", "libmp3lame", (320, 240)), ("flac", "png", "flac", (200, 200)), ("m4a", "jpg", "aac", (320, 240))],
)
def test_cover_art_is_copied_out_of_each_container(
    extension: str, picture: str, codec: str, size: tuple[int, int], pictures: dict[str, Path], tmp_path: Path
) -> None:
    master = make_media(tmp_path / f"song.{extension}", "-f", "lavfi", "-i", "sine=duration=2",
                        "-i", str(pictures[picture]), "-map", "0", "-map", "1", "-c:a", codec, "-c:v", "copy",
                        "-disposition:v", "attached_pic")
    probe = probe_file(master, ffprobe="ffprobe", limits=LIMITS)
    assert probe.kind == "audio" and probe.video is None
    result = extract_cover_art(master, probe, tmp_path / "out", ffmpeg="ffmpeg", limits=LIMITS)
    assert result.reason is None and result.cover is not None
    assert result.cover.name == f"cover.{picture}" and (result.cover.width, result.cover.height) == size
    assert result.cover.path.read_bytes() == pictures[picture].read_bytes()  # copied, never re-encoded


def test_a_master_without_a_picture_has_no_cover(tmp_path: Path) -> None:
    master = make_media(tmp_path / "plain.flac", "-f", "lavfi", "-i", "sine=duration=1")
    result = extract_cover_art(master, probe_file(master, ffprobe="ffprobe", limits=LIMITS), tmp_path / "out",
                               ffmpeg="ffmpeg", limits=LIMITS)
    assert (result.cover, result.reason) == (None, None)


def test_image_headers(pictures: dict[str, Path]) -> None:
    assert image_size(pictures["jpg"].read_bytes()) == ("mjpeg", 320, 240)
    assert image_size(pictures["png"].read_bytes()) == ("png", 200, 200)
    assert image_size(b"GIF89a" + bytes(100)) is None
    assert image_size(b"\xff\xd8\xff\xda" + bytes(100)) is None  # scan data before any frame header
    assert image_size(b"\xff\xd8\xff") is None


def test_covers_that_fail_their_checks(pictures: dict[str, Path], tmp_path: Path) -> None:
    assert check_cover(pictures["png"], codec="png").cover is not None
    assert "8x8" in str(check_cover(pictures["tiny"], codec="png").reason)
    assert "not a readable image/jpeg" in str(check_cover(pictures["png"], codec="mjpeg").reason)
    banner = tmp_path / "banner.png"
    header = bytearray(pictures["png"].read_bytes())
    header[16:24] = (4000).to_bytes(4, "big") + (20).to_bytes(4, "big")
    banner.write_bytes(bytes(header))
    assert "4000x20" in str(check_cover(banner, codec="png").reason)
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(pictures["jpg"].read_bytes() + bytes(MAX_COVER_BYTES))
    assert "more than" in str(check_cover(huge, codec="mjpeg").reason)


# The job and the catalog --------------------------------------------------------------------------------------


def test_a_job_records_metadata_chapters_and_publishes_the_cover(
    audiobook: Path, pictures: dict[str, Path], cli: CliRunner
) -> None:
    result = cli("process", str(audiobook), "--asset-id", "book-1", "--json")
    assert result.returncode == 0, result.stderr
    doc = result.document
    assert doc["probe"]["kind"] == "audio" and all(r["kind"] == "audio" for r in doc["hls"]["renditions"])
    metadata = doc["metadata"]
    assert metadata["artist"] == "Beyoncé" and metadata["isrc"] == "GBAAA1900042"
    assert (metadata["language"], metadata["release_date"]) == ("eng", "2019-05")
    assert [(c["start_s"], c["title"]) for c in metadata["chapters"]] == [(0.0, "Opening credits"),
                                                                          (2.5, "Chapter one")]
    assert len(json.dumps(metadata)) < 8 * MAX_TEXT_CHARS
    cover = Path(metadata["cover_art"])
    assert cover.name == "cover.jpg" and cover.parent == Path(doc["hls"]["master"]).parent
    assert cover.read_bytes() == pictures["jpg"].read_bytes()
    assert metadata["cover_art_image"] == {"content_type": "image/jpeg", "width": 320, "height": 240,
                                           "bytes": pictures["jpg"].stat().st_size}

    features = doc["features"]

    def search(*args: str) -> list[str]:
        found = cli("search", *args, "--json")
        assert found.returncode == 0, found.stderr
        return [asset["asset_id"] for asset in found.document["assets"]]

    assert search("--isrc", "GB-AAA-19-00042") == ["book-1"]
    assert search("--isrc", "GBAAA1900043") == []
    assert search("--artist", "BEYONC") == ["book-1"]
    assert search("--language", "en", "--kind", "audio") == ["book-1"]
    assert search("--class", features["content_class"]) == ["book-1"]
    if features["key"] is not None and features["key"] >= 0:
        assert search("--key", str(features["key"]), "--mode", str(features["mode"])) == ["book-1"]
        assert search("--key", str((features["key"] + 6) % 12)) == []
    human = cli("search", "--artist", "beyonc")
    assert human.returncode == 0 and "book-1" in human.stdout and "GBAAA1900042" in human.stdout
    assert cli("search", "--isrc", "nonsense").returncode == 1


def _add(catalog: Catalog, asset_id: str, **fields: Any) -> None:
    job_id = catalog.create_job(asset_id=asset_id, source_uri=f"/masters/{asset_id}")
    asset = AssetRecord(source_uri=f"/masters/{asset_id}", content_sha256="0" * 64, kind="audio", duration_s=60.0,
                        container="flac", hls_master="m", probe={}, **fields)
    catalog.complete_job(job_id, asset=asset, renditions=[],
                         document=JobDocument(asset_id=asset_id, job_id=job_id, status="succeeded"))


def test_find_assets_by_field(catalog: Catalog) -> None:
    _add(catalog, "a", tempo=124.5, key=9, mode=0, content_class="music", artist="The Band", isrc="GBAAA1900042",
         language="eng", release_date="2019-05", loudness_lufs=-9.1, quality_score=95.0)
    _add(catalog, "b", tempo=128.0, key=9, mode=1, content_class="music", artist="Other 100%_ Band")
    _add(catalog, "c", tempo=None, key=None, mode=None, content_class="speech", artist=None, language="fra")
    _add(catalog, "d", tempo=131.0, key=2, mode=1, content_class="mixed", artist="the band")

    def ids(**query: Any) -> list[str]:
        return [asset.id for asset in catalog.find_assets(**query)]

    assert ids(tempo=(120, 130)) == ["a", "b"]
    assert ids(tempo=(130, 120), key=9, mode=0) == ["a"]
    assert ids(content_class="speech") == ["c"] and ids(language="fra") == ["c"]
    assert ids(isrc="GBAAA1900042") == ["a"]
    assert ids(artist="THE BAND") == ["a", "d"]
    assert ids(artist="100%_") == ["b"] and ids(artist="%") == ["b"]  # LIKE wildcards are matched literally
    assert ids(limit=2) == ["a", "b"] and ids() == ["a", "b", "c", "d"]
    found = catalog.find_assets(isrc="GBAAA1900042")[0]
    assert (found.release_date, found.loudness_lufs, found.quality_score) == ("2019-05", -9.1, 95.0)


def test_sanitised_hostile_tags_are_stored_and_found_on_both_databases(catalog: Catalog) -> None:
    metadata = normalise_tags({"title": "x" * 1_000_000, "artist": b"Beyonc\xe9\x00\x01", "isrc": "gb-aaa-19-00042",
                               "comment": "\x00" * 1000 + "\ud800 tail", "language": "English"})
    job_id = catalog.create_job(asset_id="hostile", source_uri="/masters/hostile.mp3")
    document = JobDocument(asset_id="hostile", job_id=job_id, status="succeeded",
                           metadata=PublishedMetadata(tags=metadata, cover=CoverResult(cover=None)))
    asset = AssetRecord(source_uri="/masters/hostile.mp3", content_sha256="0" * 64, kind="audio", duration_s=6.0,
                        container="mp3", hls_master="m", probe={}, title=metadata.title, artist=metadata.artist,
                        isrc=metadata.isrc, language=metadata.language)
    catalog.complete_job(job_id, asset=asset, renditions=[], document=document)
    [found] = catalog.find_assets(isrc="GBAAA1900042", language="eng")
    assert found.artist == "Beyonc\ufffd" and found.title is not None and len(found.title) == MAX_TEXT_CHARS
    job = catalog.get_job(job_id)
    assert job is not None and job.document is not None and job.document["metadata"]["comment"] == "tail"
