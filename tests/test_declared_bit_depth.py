"""The probe reads the bit depth a master declares; the job's QC compares it with the depth its samples use.

Masters are made with ffmpeg: pink noise quantised to 16 bits and stored in a 24-bit FLAC (padded), true
24-bit FLAC and WAV, a float WAV and an MP3 (no declared depth). The job is the installed ``mediaworker``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from pipelines.audio.qc import AudioQC
from pipelines.config import Limits
from pipelines.media.decode import analysis_format, decode_audio
from pipelines.media.probe import probe_file
from tests.conftest import make_media

MEDIAWORKER = str(Path(sys.executable).with_name("mediaworker"))
NOISE = "anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:seed=5:duration=5"


@pytest.fixture(scope="module")
def depths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("depths")
    stereo = ("-f", "lavfi", "-i", NOISE, "-af", "aformat=channel_layouts=stereo")
    return {
        # 16-bit samples (the last filter quantises; s16 → s32 is an exact shift) in a 24-bit FLAC
        "padded_24": make_media(folder / "padded.flac", "-f", "lavfi", "-i", NOISE, "-af",
                                "aformat=channel_layouts=stereo,aformat=sample_fmts=s16",
                                "-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"),
        "flac_24": make_media(folder / "true24.flac", *stereo, "-c:a", "flac", "-sample_fmt", "s32",
                              "-bits_per_raw_sample", "24"),
        "flac_16": make_media(folder / "true16.flac", *stereo, "-c:a", "flac", "-sample_fmt", "s16"),
        "wav_24": make_media(folder / "true24.wav", *stereo, "-c:a", "pcm_s24le"),
        "wav_float": make_media(folder / "float.wav", *stereo, "-c:a", "pcm_f32le"),
        "mp3": make_media(folder / "lossy.mp3", *stereo, "-c:a", "libmp3lame", "-b:a", "128k"),
    }


@pytest.mark.parametrize(("name", "declared", "integer_bits"), [
    ("padded_24", 24, 24), ("flac_24", 24, 24), ("flac_16", 16, 16), ("wav_24", 24, 24),
    ("wav_float", 32, None), ("mp3", None, None),
])
def test_probe_reads_the_declared_bit_depth(depths: dict[str, Path], name: str, declared: int | None,
                                            integer_bits: int | None) -> None:
    probe = probe_file(depths[name], ffprobe="ffprobe", limits=Limits())
    assert probe.audio is not None
    assert probe.audio.bits_per_sample == declared
    assert probe.audio.declared_integer_bits == integer_bits
    stream = probe.to_document()["streams"][0]
    assert stream.get("bits_per_sample") == declared


def effective_depth(path: Path) -> tuple[str, int | None, int | None]:
    """(verdict, declared, effective) of the QC fed as the job feeds it: declared depth from the probe."""
    probe = probe_file(path, ffprobe="ffprobe", limits=Limits())
    assert probe.audio is not None
    fmt = analysis_format(probe)
    qc = AudioQC(rate=fmt.rate, channels=fmt.channels, declared_rate=probe.audio.sample_rate,
                 declared_bits=probe.audio.declared_integer_bits)
    decode_audio(path, probe, [qc], ffmpeg="ffmpeg", limits=Limits(), fmt=fmt)
    depth = qc.finish().bit_depth
    return depth.verdict, depth.declared_bits, depth.effective_bits


def test_depths_against_the_declared_ones(depths: dict[str, Path]) -> None:
    assert effective_depth(depths["padded_24"]) == ("fewer_bits_than_declared", 24, 16)
    assert effective_depth(depths["flac_24"]) == ("as_declared", 24, 24)
    assert effective_depth(depths["wav_24"]) == ("as_declared", 24, 24)
    assert effective_depth(depths["flac_16"]) == ("as_declared", 16, 16)
    assert effective_depth(depths["wav_float"])[0:2] == ("not_integer_pcm", None)  # 32-bit float is no depth


def test_job_flags_a_16_bit_master_padded_to_24_bits(depths: dict[str, Path], tmp_path: Path) -> None:
    proc = subprocess.run([MEDIAWORKER, "process", str(depths["padded_24"]), "--json"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MEDIAWORKER_HOME": str(tmp_path / "home")},
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    document = json.loads(proc.stdout)
    quality = document["quality"]
    assert quality["audio_qc"]["bit_depth"]["declared_bits"] == 24
    assert quality["audio_qc"]["bit_depth"]["effective_bits"] == 16
    assert quality["audio_qc"]["bit_depth"]["verdict"] == "fewer_bits_than_declared"
    assert "padded_bit_depth" in {r["code"] for r in quality["delivery"]["reasons"]}
    page = Path(quality["report"]).read_text(encoding="utf-8")
    assert '<tr class="bad" id="check-bit_depth">' in page and "16 bits used of 24 declared" in page
