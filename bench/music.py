"""Real music for the match benchmark: Debian game-music packages, cut into catalog pieces and cached.

The packages are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` under ``bench/.cache/music/``
(no installation). Every music file of at least ``MIN_S`` seconds becomes one or more *pieces*, each written
once as a 44.1 kHz stereo FLAC (the "master" that queries are cut from):

* Planet Blupi's ``music000``–``music003`` are one tune looped for 20–29 minutes: only the first loop period
  (``LOOP_S``, measured from the fingerprints' self-similarity) is kept;
* a file longer than ``MAX_PIECE_S`` is cut into equal pieces of about ``PIECE_S`` seconds;
* pieces of one file share a *group*, and so do Drascula's ``track1`` and ``track30``, which share a section.
  The benchmark holds whole groups apart, so no out-of-catalog piece contains catalog music.

Files that ffmpeg 5.1 cannot decode (three HyperRogue tracks with a broken Vorbis header) are skipped.
:func:`variants` makes many distinct "tracks" of realistic audio from one piece, for an index at scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import subprocess
import tempfile

import numpy as np
import numpy.typing as npt

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
PACKAGES = ("hyperrogue-music", "extremetuxracer-data", "frozen-bubble-data", "drascula-music",
            "planetblupi-music-ogg")
MUSIC_DIRS = ("usr/share/hyperrogue/music", "usr/share/games/etr/music", "usr/share/games/frozen-bubble/snd",
              "usr/share/scummvm/drascula/audio", "usr/share/planetblupi/music")
MIN_S = 30.0
MAX_PIECE_S = 240.0
PIECE_S = 200.0
LOOP_S = {"music000": 152.0, "music001": 176.0, "music002": 152.0, "music003": 120.0}
SAME_GROUP = {"drascula-track30": "drascula-track1"}
MASTER_RATE = 44100
CODECS = {"mp3": ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
          "aac": ("-c:a", "aac", "-b:a", "96k", "-f", "adts"),
          "opus": ("-c:a", "libopus", "-b:a", "48k", "-f", "ogg"),
          "mono22k": ("-ac", "1", "-ar", "22050", "-f", "wav")}
"""Encoders of :func:`edit`; ``mono22k`` is PCM: only the downmix and the sample rate change."""
PINK = "anoisesrc=color=pink:amplitude=0.1:seed={seed}:duration=30"


@dataclass(frozen=True)
class Piece:
    name: str
    path: Path
    duration_s: float
    group: str


def ffmpeg(*args: str, stdout: bool = False) -> bytes:
    proc = subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout if stdout else b""


def decode(path: Path, *, rate: int, channels: int = 1, pre: tuple[str, ...] = (),
           filters: str | None = None) -> npt.NDArray[np.float32]:
    """``path`` (after input options ``pre`` and an optional ``-af`` chain) as float32 PCM, ``(n,)`` or ``(n, ch)``."""
    args = [*pre, "-i", str(path), *(["-af", filters] if filters else []),
            "-ac", str(channels), "-ar", str(rate), "-f", "f32le", "pipe:1"]
    samples = np.frombuffer(ffmpeg(*args, stdout=True), dtype="<f4")
    return samples if channels == 1 else samples.reshape(-1, channels)


def duration(path: Path) -> float | None:
    proc = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=False)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        return None


def fetch(cache: Path) -> Path:
    """The folder the packages are unpacked into, downloading and unpacking what is missing."""
    root = cache / "root"
    for package in PACKAGES:
        marker = cache / f"{package}.unpacked"
        if marker.exists():
            continue
        cache.mkdir(parents=True, exist_ok=True)
        print(f"fetching {package} ...", flush=True)
        subprocess.run(["apt-get", "download", "-q", package], cwd=cache, check=True, capture_output=True)
        deb = next(cache.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        deb.unlink()
        marker.touch()
    return root


def pieces(cache: Path) -> list[Piece]:
    """Every catalog piece, cut and cached as FLAC, in a fixed order."""
    root = fetch(cache)
    out_dir = cache / "pieces"
    out_dir.mkdir(parents=True, exist_ok=True)
    found: list[Piece] = []
    for folder in MUSIC_DIRS:
        package = folder.split("/")[-2]
        for source in sorted((root / folder).glob("*.ogg")):
            length = duration(source)
            if length is None or length < MIN_S:
                continue
            length = min(length, LOOP_S.get(source.stem, length))
            count = 1 if length <= MAX_PIECE_S else round(length / PIECE_S)
            group = f"{package}-{source.stem}"
            for i in range(count):
                name = group if count == 1 else f"{group}-{i + 1}"
                start, piece_s = i * length / count, length / count
                path = out_dir / f"{name}.flac"
                if not path.exists():
                    partial = path.with_suffix(".part.flac")
                    ffmpeg("-ss", f"{start:.3f}", "-t", f"{piece_s:.3f}", "-i", str(source), "-map", "0:a:0",
                           "-ac", "2", "-ar", str(MASTER_RATE), "-c:a", "flac", "-map_metadata", "-1", str(partial))
                    partial.rename(path)
                found.append(Piece(name, path, duration(path) or piece_s, SAME_GROUP.get(group, group)))
    return found


def pink_rms(rate: int) -> float:
    """RMS of ``PINK`` made stereo as :func:`edit` mixes it, then decoded to mono at ``rate``."""
    return rms(decode(Path(PINK.format(seed=1) + ",aformat=channel_layouts=stereo"), rate=rate, pre=("-f", "lavfi")))


def edit(master: Path, start_s: float, span_s: float | None, *, rate: int, filters: str | None = None,
         codec: str | None = None, snr_db: float | None = None, noise_rms: float = 1.0) -> npt.NDArray[np.float32]:
    """``span_s`` seconds of ``master`` from ``start_s`` (``None``: all of it) through the ``-af`` chain ``filters``,
    pink noise ``snr_db`` under the excerpt (both measured on the mono decode at ``rate``; ``noise_rms``:
    :func:`pink_rms`) and an encoder of ``CODECS``, then decoded to mono float32 at ``rate``."""
    cut = () if span_s is None else ("-ss", f"{start_s:.3f}", "-t", f"{span_s:.4f}")
    chain = ["-af", filters] if filters else []
    if snr_db is not None:
        gain = rms(decode(master, rate=rate, pre=cut)) / 10 ** (snr_db / 20) / noise_rms
        chain = ["-f", "lavfi", "-i", PINK.format(seed=int(start_s * 1000)), "-filter_complex",
                 f"[0:a]aformat=channel_layouts=stereo[m];[1:a]volume={gain:.6f},aformat=channel_layouts=stereo[n];"
                 "[m][n]amix=inputs=2:duration=first:normalize=0"]
    if codec is None:
        out = ffmpeg(*cut, "-i", str(master), *chain, "-ac", "1", "-ar", str(rate), "-f", "f32le", "-", stdout=True)
        return np.frombuffer(out, dtype="<f4")
    with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
        ffmpeg(*cut, "-i", str(master), *chain, *CODECS[codec], f"{tmp}/clip")
        return decode(Path(f"{tmp}/clip"), rate=rate)


def rms(samples: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def variants(catalog: list[Piece], i: int, count: int, rate: int
             ) -> Iterator[tuple[str, npt.NDArray[np.float32], float]]:
    """``count`` distinct tracks made from piece ``i``, as (name, mono samples at ``rate``, speed factor).

    The samples are one of 4 colourings of the piece: as is; mixed with the next piece at -9 dB; a tilted EQ
    (-3 dB/octave around 1 kHz) mixed with the piece after at -14 dB; a telephone band (300-3000 Hz, -20 dB
    outside). Each starts 0-10 s (any sample) into the piece. The speed factor (pitch and tempo together: the
    samples are meant to be played ``factor`` times faster, e.g. declared at ``rate * factor`` to a resampling
    consumer) walks 0.76-0.93 and 1.07-1.36, each colouring's grid shifted by a quarter step: transpositions of
    1.2 to 5.3 semitones, beyond the +-6 % that a clip search tries, so a clip of a piece at its own speed
    never finds one of its variants.
    """
    rng = np.random.default_rng(i)
    x = decode(catalog[i].path, rate=rate)

    def partner(k: int) -> npt.NDArray[np.float32]:
        y = np.resize(decode(catalog[(i + k) % len(catalog)].path, rate=rate), len(x))
        return (y * (rms(x) / max(1e-9, rms(y)))).astype(np.float32)

    freqs, spectrum = np.fft.rfftfreq(len(x), 1 / rate), np.fft.rfft(x)
    tilt = np.fft.irfft(spectrum * (np.maximum(freqs, 50.0) / 1000.0) ** -0.5, len(x))
    band = np.fft.irfft(spectrum * np.where((freqs > 300) & (freqs < 3000), 1.0, 0.1), len(x))
    colours = [x, x + 0.35 * partner(1), tilt / np.abs(tilt).max() * np.abs(x).max() + 0.2 * partner(2), band]
    step = 0.46 / -(-count // len(colours))
    for j in range(count):
        c, u = j % len(colours), (j // len(colours) + (j % len(colours)) / 4) * step
        factor = 0.76 + u if u < 0.17 else 1.07 + (u - 0.17)
        trim = int(rng.integers(0, 10 * rate))
        yield f"{catalog[i].name}/c{c}/x{factor:.4f}", colours[c][trim:].astype(np.float32), factor
