"""The match stages on real music, below the CLI: clips that Chromaprint's items alone would not place (5 dB of
pink noise, 5 s and 3 s excerpts, tempo and pitch edits) are found at the right offset, and music that is not in the
catalog is not, also when the whole speed grid is searched."""

from __future__ import annotations

from pathlib import Path
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.match.fingerprint import FingerprintSink, fingerprint_samples
from pipelines.match.index import FingerprintIndex, Match, MatchPolicy
from pipelines.match.search import MATCH_RATE, find_clip, suppress_noise
from tests.conftest import FIXTURES

DESERT = FIXTURES / "music_hyperrogue_desert_30s.ogg"
CROSSROADS = FIXTURES / "music_hyperrogue_20s.ogg"
JUNGLE = FIXTURES / "music_hyperrogue_jungle_30s.ogg"  # never indexed
SPEECH = FIXTURES / "speech_librivox_16k.flac"


def _decode(source: str | Path, *args: str, rate: int = MATCH_RATE, channels: int = 1,
            pre: tuple[str, ...] = ()) -> npt.NDArray[np.float32]:
    """``source`` through ffmpeg (``args`` after the input) as float32 samples, ``(n,)`` or ``(n, channels)``."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *pre, "-i", str(source), *args, "-ac", str(channels),
                          "-ar", str(rate), "-f", "f32le", "pipe:1"], capture_output=True, check=True,
                         stdin=subprocess.DEVNULL).stdout
    samples = np.frombuffer(out, dtype="<f4")
    return samples if channels == 1 else samples.reshape(-1, channels)


def _rms(samples: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def index() -> FingerprintIndex:
    """``desert`` and ``crossroads`` fingerprinted as a job does: 44.1 kHz stereo blocks into ``FingerprintSink``."""
    entries = []
    for asset_id, master in (("desert", DESERT), ("crossroads", CROSSROADS)):
        sink = FingerprintSink(rate=44100, channels=2)
        stereo = _decode(master, rate=44100, channels=2)
        for at in range(0, len(stereo), 8192):
            sink.feed(stereo[at : at + 8192])
        entries.append((asset_id, sink.finish().items))
    return FingerprintIndex(entries)


def _start_in_asset(match: Match, asset_s_per_clip_s: float = 1.0) -> float:
    return match.asset_offset_s - match.query_offset_s * asset_s_per_clip_s


def test_a_clip_under_pink_noise_at_5_db_snr_is_found(index: FingerprintIndex) -> None:
    clip = _decode(DESERT, pre=("-ss", "12", "-t", "10"))
    noise = _decode("anoisesrc=color=pink:amplitude=0.1:seed=3:duration=10", pre=("-f", "lavfi"))[: len(clip)]
    noisy = clip + noise * np.float32(_rms(clip) / 10 ** (5 / 20) / _rms(noise))
    assert 20 * np.log10(_rms(clip) / _rms(noisy - clip)) == pytest.approx(5.0, abs=0.01)
    (best,) = find_clip(noisy.astype(np.float32), index)
    assert best.asset_id == "desert" and best.speed == 1.0
    assert _start_in_asset(best) == pytest.approx(12.0, abs=0.5)


@pytest.mark.parametrize("start_s", [3.0, 11.5, 20.0])
def test_a_5_s_excerpt_is_found(index: FingerprintIndex, start_s: float) -> None:
    (best,) = find_clip(_decode(DESERT, pre=("-ss", str(start_s), "-t", "5")), index)
    assert best.asset_id == "desert"
    assert _start_in_asset(best) == pytest.approx(start_s, abs=0.5)


@pytest.mark.parametrize("start_s", [5.5, 9.81, 16.05, 24.6])
def test_a_3_s_excerpt_is_found_from_its_few_items(index: FingerprintIndex, start_s: float) -> None:
    """3 s gives Chromaprint 3 items, too few to rescore: the short-clip placement finds it, at the right start."""
    clip = _decode(DESERT, pre=("-ss", str(start_s), "-t", "3"))
    assert len(fingerprint_samples(clip, rate=MATCH_RATE)) < index.policy.smoothing_items
    (best,) = find_clip(clip, index)
    assert best.asset_id == "desert"
    assert _start_in_asset(best) == pytest.approx(start_s, abs=0.5)


def test_the_single_bit_flips_are_what_finds_a_noisy_clip(index: FingerprintIndex) -> None:
    """The same noisy clip, looked up with exact items only, gets no vote at its true alignment worth scoring."""
    clip = _decode(DESERT, pre=("-ss", "12", "-t", "10"))
    noise = _decode("anoisesrc=color=pink:amplitude=0.1:seed=3:duration=10", pre=("-f", "lavfi"))[: len(clip)]
    noisy = (clip + noise * np.float32(_rms(clip) / 10 ** (5 / 20) / _rms(noise))).astype(np.float32)
    items = fingerprint_samples(noisy, rate=MATCH_RATE)
    exact = FingerprintIndex(zip(index.asset_ids, _split(index), strict=True), policy=MatchPolicy(lookup_bit_errors=0))
    tolerant = index.search(items)
    assert tolerant and tolerant[0].asset_id == "desert"
    assert not [m for m in exact.search(items) if m.asset_id == "desert" and abs(_start_in_asset(m) - 12) < 0.5]


@pytest.mark.parametrize("snr_db", [0.0, 5.0])
def test_subtracting_the_noise_floor_brings_a_noisy_clip_nearer_its_clean_self(snr_db: float) -> None:
    """Against the clean excerpt's items at the same place, the noisy clip's items with the floor subtracted have
    fewer bit errors than the noisy clip's own; a clean clip is left nearly as it was."""
    clip = _decode(DESERT, pre=("-ss", "12", "-t", "10"))
    noise = _decode("anoisesrc=color=pink:amplitude=0.1:seed=5:duration=10", pre=("-f", "lavfi"))[: len(clip)]
    noisy = (clip + noise * np.float32(_rms(clip) / 10 ** (snr_db / 20) / _rms(noise))).astype(np.float32)
    clean_items = fingerprint_samples(clip, rate=MATCH_RATE)

    def errors(samples: npt.NDArray[np.float32]) -> float:
        items = fingerprint_samples(samples, rate=MATCH_RATE)
        return float(np.mean([bin(int(a) ^ int(b)).count("1") for a, b in zip(items, clean_items, strict=True)]))

    before, after = errors(noisy), errors(suppress_noise(noisy))
    assert after < 0.8 * before, (before, after)  # bit errors per item (of 32)
    assert errors(suppress_noise(clip)) < 4.0
    assert len(suppress_noise(noisy)) == len(noisy)


def _split(index: FingerprintIndex) -> list[npt.NDArray[np.uint32]]:
    return [index.items[index.starts[i] : index.starts[i + 1]] for i in range(len(index))]


@pytest.mark.parametrize(("edit", "asset_s_per_clip_s"), [
    ("atempo=0.95", 0.95), ("atempo=1.05", 1.05),
    ("asetrate=44100*1.0595,aresample=44100,atempo=0.9439", 1.0),  # pitch +1 semitone, tempo put back
    ("asetrate=44100*0.98,aresample=44100", 0.98),  # slowed down 2 %: pitch and tempo together
])
def test_tempo_pitch_and_speed_edits_are_found(index: FingerprintIndex, edit: str, asset_s_per_clip_s: float) -> None:
    clip = _decode(DESERT, "-af", edit, pre=("-ss", "8", "-t", f"{10 * asset_s_per_clip_s:.3f}"))
    (best,) = find_clip(clip, index)
    assert best.asset_id == "desert"
    assert _start_in_asset(best, asset_s_per_clip_s) == pytest.approx(8.0, abs=0.5)


@pytest.mark.parametrize("length_s", [3.0, 5.0, 10.0])
def test_music_and_speech_not_in_the_catalog_match_nothing(index: FingerprintIndex, length_s: float) -> None:
    """Every window of a track that is not in the catalog, and of speech: no match, speed grid included."""
    for source in (JUNGLE, SPEECH):
        samples = _decode(source)
        for start in np.arange(0.0, len(samples) / MATCH_RATE - length_s, 4.0):
            window = samples[int(start * MATCH_RATE) : int((start + length_s) * MATCH_RATE)]
            assert find_clip(window, index) == [], (source.name, start)


@pytest.mark.parametrize("flipped_bits", [1, 2])
def test_lookup_finds_items_within_its_bit_errors(flipped_bits: int) -> None:
    """A stretch whose every item has ``flipped_bits`` random bits flipped is found by a lookup that tolerates that
    many, at its offset, and by none that tolerates fewer."""
    rng = np.random.default_rng(11)
    tracks = {f"t{i}": rng.integers(0, 2**32, size=3000, dtype=np.uint32) for i in range(30)}
    index = FingerprintIndex(tracks.items())
    stretch = tracks["t21"][1200:1280].copy()
    for n in range(len(stretch)):
        for bit in rng.choice(32, size=flipped_bits, replace=False):
            stretch[n] ^= np.uint32(1 << int(bit))
    for tolerated in range(3):
        found = index.search(stretch, bit_errors=tolerated)
        if tolerated < flipped_bits:
            assert found == []
        else:
            assert found[0].asset_id == "t21" and found[0].asset_offset_s == pytest.approx(1200 * 1365 / 11025)
            assert found[0].bit_error_rate == pytest.approx(flipped_bits / 32)
