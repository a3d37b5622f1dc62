"""Hostile masters, generated: each a few lines of code rather than a committed binary.

Every builder writes one file into a folder and returns its path. Some start from a small master that ffmpeg
makes (``make_media``) and then lie in its headers; the others are written byte by byte.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import struct
import zlib

from tests.conftest import make_media


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def png(width: int, height: int, rows: int) -> bytes:
    """An RGB PNG whose header claims ``width``×``height`` but whose data holds ``rows`` black rows of at most
    64 pixels: the header is what a decoder allocates for."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\0" + b"\0" * (3 * min(width, 64)) for _ in range(rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def image_bomb_avi(path: Path, *, width: int, height: int, container_too: bool) -> Path:
    """An AVI of PNG frames (ffmpeg's ``png`` in ``MPNG``) whose every frame header claims ``width``×``height``;
    with ``container_too`` the AVI headers claim it as well, otherwise they keep saying 320×240 (so only a
    decoder meets the lie)."""
    small = make_media(path.with_suffix(".small.avi"), "-f", "lavfi", "-i", "color=black:size=320x240:rate=5:duration=2",
                       "-c:v", "png")
    data = small.read_bytes()
    small.unlink()
    data = data.replace(b"IHDR" + struct.pack(">II", 320, 240), b"IHDR" + struct.pack(">II", width, height))
    if container_too:
        # avih: dwWidth, dwHeight; strf (BITMAPINFOHEADER): biSize 40, biWidth, biHeight.
        data = data.replace(struct.pack("<II", 320, 240), struct.pack("<II", width, height))
        data = data.replace(struct.pack("<Iii", 40, 320, 240), struct.pack("<Iii", 40, width, height))
    return write(path, data)


def lying_wav(path: Path, *, claimed_bytes: int = 0x7FFF_FFC0, real_bytes: int = 1024) -> Path:
    """A 16-bit stereo 44.1 kHz WAV whose RIFF and data sizes claim ~2 GB, followed by ``real_bytes`` of noise."""
    fmt = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    header = (b"RIFF" + struct.pack("<I", claimed_bytes + 36) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
              + b"data" + struct.pack("<I", claimed_bytes))
    return write(path, header + os.urandom(real_bytes))


def silent_flac(path: Path, *, seconds: int, rate: int = 8000) -> Path:
    """A real mono 16-bit FLAC of ``seconds`` of digital silence, written frame by frame: every frame one
    CONSTANT subframe of the largest block size, so ten hours take ~60 KB and a moment to write."""
    block = 65535
    total = seconds * rate
    streaminfo = (struct.pack(">HH", block, block) + b"\0\0\0" + b"\0\0\0"
                  + ((rate << 44) | (0 << 41) | (15 << 36) | total).to_bytes(8, "big") + bytes(16))
    out = bytearray(b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo)
    for number, start in enumerate(range(0, total, block)):
        size = min(block, total - start)
        header = bytearray(b"\xff\xf8" + bytes([0x70, 0x08]) + chr(number).encode("utf-8") + struct.pack(">H", size - 1))
        header.append(_crc8(header))
        frame = header + b"\x00" + b"\x00\x00"  # CONSTANT subframe, value 0
        out += frame + struct.pack(">H", _crc16(frame))
    return write(path, bytes(out))


def _crc8(data: bytes | bytearray) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes | bytearray) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def many_audio_streams(path: Path, *, count: int) -> Path:
    """A Matroska file with ``count`` one-second audio streams."""
    split = f"asplit={count}" + "".join(f"[a{i}]" for i in range(count))
    maps = [arg for i in range(count) for arg in ("-map", f"[a{i}]")]
    return make_media(path, "-f", "lavfi", "-i", "sine=duration=1:sample_rate=8000", "-filter_complex", split, *maps,
                      "-c:a", "pcm_s16le")


def flac_with_hostile_tags(path: Path) -> Path:
    """Two seconds of tone in a FLAC whose Vorbis comment holds a non-UTF-8 title, an artist full of NULs, a
    one-megabyte comment and a nameless field: the comment block is rewritten by hand (ffmpeg writes C strings)."""
    tone = make_media(path.with_suffix(".plain.flac"), "-f", "lavfi", "-i", "sine=frequency=500:duration=2",
                      "-metadata", "title=x")
    data = tone.read_bytes()
    tone.unlink()
    comments = [b"TITLE=\xff\xfe\xc3(caf\xe9 \x80\x81", b"ARTIST=a\x00b\x00\x00c", b"COMMENT=" + b"m" * (1 << 20),
                b"=no name", b"\x00\x01=control", b"GENRE=" + "ok ünïcode".encode()]
    vendor = b"hostile"
    body = (struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
            + b"".join(struct.pack("<I", len(c)) + c for c in comments))
    blocks, position = [], 4
    while True:
        last, kind = data[position] & 0x80, data[position] & 0x7F
        length = int.from_bytes(data[position + 1:position + 4], "big")
        if kind != 4:  # drop ffmpeg's own comment block
            blocks.append((kind, data[position + 4:position + 4 + length]))
        position += 4 + length
        if last:
            break
    blocks.insert(1, (4, body))
    out = bytearray(b"fLaC")
    for index, (kind, payload) in enumerate(blocks):
        out.append(kind | (0x80 if index == len(blocks) - 1 else 0))
        out += len(payload).to_bytes(3, "big") + payload
    return write(path, bytes(out + data[position:]))


def hls_playlist(path: Path, target: Path) -> Path:
    return write(path, f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n".encode())


def ffconcat_script(path: Path, target: Path) -> Path:
    return write(path, f"ffconcat version 1.0\nfile '{target}'\n".encode())


def truncated_mp4(path: Path, whole: Path) -> Path:
    """The first third of an MP4 whose index (``moov``) is at the end: no index at all."""
    data = whole.read_bytes()
    assert data.find(b"moov") > len(data) // 3, "the source must keep its moov at the end"
    return write(path, data[: len(data) // 3])


def moov_position(path: Path) -> float:
    """Where the ``moov`` box starts, as a fraction of the file."""
    data = path.read_bytes()
    found = re.search(rb"moov", data)
    return (found.start() if found else -1) / len(data)
