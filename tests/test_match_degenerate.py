"""Steady sounds carry no fingerprint: test tones, silence, mains hum and DTMF-like tone pairs give Chromaprint
one item over and over, nearly the same item for all of them, so a clip of one agreed with any other as well at
every place (a 1 kHz tone matched a 440 Hz tone asset with a score of 0.90). Such stretches match nothing now,
neither as clips nor as catalog assets nor at ingest, while real music cut from a fixture track still does.

Two steady sounds of the same kind (a 440 Hz clip against a 440 Hz asset) match nothing either: nothing in
their items tells one recording of a tone from another, nor where in it a clip lies."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.match.fingerprint import ITEM_S, fingerprint_samples
from pipelines.match.index import (
    CHANCE_LAG,
    UNRELATED_BER,
    FingerprintIndex,
    MatchPolicy,
    chance_bit_error_rate,
    chance_level,
    score,
)
from pipelines.match.landmarks import catalog_landmarks, clip_landmarks
from pipelines.match.search import MATCH_RATE, find_clip
from tests.conftest import FIXTURES, MEDIAWORKER, CliResult, make_media

MUSIC = FIXTURES / "music_hyperrogue_desert_30s.ogg"
POLICY = MatchPolicy()


def _seconds(duration_s: float) -> npt.NDArray[np.float64]:
    return np.arange(round(duration_s * MATCH_RATE)) / MATCH_RATE


def _tone(hz: float, duration_s: float) -> npt.NDArray[np.float32]:
    return (0.5 * np.sin(2 * np.pi * hz * _seconds(duration_s))).astype(np.float32)


def _hum(duration_s: float) -> npt.NDArray[np.float32]:
    """Mains hum: 50 Hz and its harmonics up to 350 Hz, falling off as 1/k."""
    t = _seconds(duration_s)
    return sum(0.3 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8)).astype(np.float32)


def _pair(low_hz: float, high_hz: float, duration_s: float) -> npt.NDArray[np.float32]:
    """A DTMF-like tone pair, held."""
    return (0.5 * _tone(low_hz, duration_s) + 0.5 * _tone(high_hz, duration_s)).astype(np.float32)


STEADY = {
    "tone-440": lambda s: _tone(440, s), "tone-660": lambda s: _tone(660, s), "tone-1000": lambda s: _tone(1000, s),
    "silence": lambda s: np.zeros(round(s * MATCH_RATE), dtype=np.float32), "hum-50": _hum,
    "dtmf-1": lambda s: _pair(697, 1209, s), "dtmf-9": lambda s: _pair(852, 1477, s),
}


def _decode(path: Path) -> npt.NDArray[np.float32]:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(MATCH_RATE),
                          "-f", "f32le", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<f4")


@pytest.fixture(scope="module")
def index() -> FingerprintIndex:
    """30 s of every steady sound and a real music track, indexed as ingest indexes them (items and landmarks)."""
    catalog = {name: make(30.0) for name, make in STEADY.items()} | {"desert": _decode(MUSIC)}
    return FingerprintIndex(((name, fingerprint_samples(x, rate=MATCH_RATE)) for name, x in catalog.items()),
                            landmarks={name: catalog_landmarks(x) for name, x in catalog.items()})


@pytest.mark.parametrize("duration_s", [10.0, 5.0, 3.0])
@pytest.mark.parametrize("clip", sorted(STEADY))
def test_a_steady_clip_matches_no_asset(index: FingerprintIndex, clip: str, duration_s: float) -> None:
    """Not at the acceptance score, by any of the lookups (plain, two-bit, landmarks, speed grid, short clip)."""
    samples = STEADY[clip](duration_s)[MATCH_RATE // 7 :]  # not in phase with the catalog's copy
    assert find_clip(samples, index) == []
    items = fingerprint_samples(samples, rate=MATCH_RATE)
    if len(items) >= POLICY.smoothing_items:
        for found in (*index.search(items, bit_errors=2), *index.search_landmarks(clip_landmarks(samples), items)):
            assert found.score < POLICY.accept_score, found


def test_a_steady_master_matches_no_steady_asset_at_ingest(index: FingerprintIndex) -> None:
    """Ingest searches the catalog with the master's whole fingerprint (``index.search``)."""
    for name, make in STEADY.items():
        found = [m for m in index.search(fingerprint_samples(make(40.0), rate=MATCH_RATE)) if m.asset_id != name]
        assert all(m.score < POLICY.accept_score for m in found), (name, found)


def test_real_music_still_matches_beside_steady_assets(index: FingerprintIndex) -> None:
    music = _decode(MUSIC)
    for start_s, duration_s in ((12.0, 10.0), (3.0, 5.0), (20.0, 3.0)):
        clip = music[round(start_s * MATCH_RATE) : round((start_s + duration_s) * MATCH_RATE)]
        (best,) = find_clip(clip, index, top=1)
        assert best.asset_id == "desert" and best.score >= POLICY.accept_score
        assert best.asset_offset_s - best.query_offset_s == pytest.approx(start_s, abs=0.5)


def test_chance_bit_error_rate_counts_pairs_a_second_or_more_apart() -> None:
    """Against the definition, pair by pair: random items, and stretches too short for pairs a second apart."""
    rng = np.random.default_rng(5)
    for n in (2, 3, CHANCE_LAG, CHANCE_LAG + 1, 30):
        query = rng.integers(0, 2**32, n, dtype=np.uint32) & rng.integers(0, 2**32, n, dtype=np.uint32)
        reference = query ^ (rng.integers(0, 2**32, n, dtype=np.uint32) & rng.integers(0, 2**32, n, dtype=np.uint32))
        apart = CHANCE_LAG if n > CHANCE_LAG else 1
        pairs = [(i, j) for i, j in itertools.product(range(n), repeat=2) if abs(i - j) >= apart]
        expected = sum(bin(int(query[i]) ^ int(reference[j])).count("1") for i, j in pairs) / (32 * len(pairs))
        assert chance_bit_error_rate(query, reference) == pytest.approx(expected), n


def test_steady_items_score_nothing_and_music_scores_as_before() -> None:
    steady = np.full(59, 0x214DF977, dtype=np.uint32)
    assert chance_bit_error_rate(steady, steady) == 0.0
    assert score(0.0, 59 * ITEM_S, chance_ber=chance_level(steady, steady)) == 0.0
    # A beep every half second: a few items a bit or two apart, which agree better at one alignment than at others.
    flicker = steady.copy()
    flicker[::4] ^= np.uint32(1 << 9)
    assert chance_bit_error_rate(flicker, steady) > 0.0 and chance_level(flicker, steady) == 0.0
    music = fingerprint_samples(_decode(MUSIC)[: 10 * MATCH_RATE], rate=MATCH_RATE)
    chance = chance_level(music, music)
    assert chance > UNRELATED_BER  # unrelated places of real music differ more than an alignment may
    assert score(0.05, 10.0, chance_ber=chance) == score(0.05, 10.0)


# --- through the real command: a catalog of steady masters and a music track, clips of steady sounds ----------

def _cli(home: Path, *args: str) -> CliResult:
    proc = subprocess.run([MEDIAWORKER, *args], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MEDIAWORKER_HOME": str(home)})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _lavfi(path: Path, source: str, duration_s: float) -> Path:
    return make_media(path, "-f", "lavfi", "-i", f"{source}:sample_rate=44100:duration={duration_s}", "-ac", "2")


def _sources(duration_s: float) -> dict[str, str]:
    hum = "+".join(f"{0.3 / k:.4f}*sin(2*PI*{50 * k}*t)" for k in range(1, 8))
    return {
        "tone-440": "sine=frequency=440", "tone-660": "sine=frequency=660", "tone-1000": "sine=frequency=1000",
        "silence": "anullsrc=channel_layout=stereo", "hum-50": f"aevalsrc={hum}",
        "dtmf-1": "aevalsrc=0.4*sin(2*PI*697*t)+0.4*sin(2*PI*1209*t)",
        "dtmf-9": "aevalsrc=0.4*sin(2*PI*852*t)+0.4*sin(2*PI*1477*t)",
    }


@pytest.fixture(scope="module")
def steady_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, object]]]]:
    """A catalog of steady masters processed one after another, then the music track; each master's ``matches``
    (what ingest found of it in the catalog so far)."""
    home = tmp_path_factory.mktemp("steady-home")
    folder = tmp_path_factory.mktemp("steady-masters")
    masters = {name: _lavfi(folder / f"{name}.flac", _sources(20.0)[name], 20.0)
               for name in ("tone-440", "tone-660", "hum-50", "dtmf-1")}
    masters["tone-440-again"] = _lavfi(folder / "tone-440-again.flac", "sine=frequency=440", 25.0)
    ingest: dict[str, list[dict[str, object]]] = {}
    for asset_id, master in [*masters.items(), ("crossroads", FIXTURES / "music_hyperrogue_20s.ogg")]:
        result = _cli(home, "process", str(master), "--asset-id", asset_id, "--json")
        assert result.returncode == 0, result.stderr
        ingest[asset_id] = result.document["matches"]
    return home, ingest


def test_steady_masters_match_nothing_at_ingest(steady_home: tuple[Path, dict[str, list[dict[str, object]]]]) -> None:
    """A second 440 Hz master used to match the first with a score of 0.997."""
    _, ingest = steady_home
    assert ingest == {name: [] for name in ingest}


@pytest.mark.parametrize("clip", sorted(_sources(10.0)))
@pytest.mark.parametrize("duration_s", [10.0, 3.0])
def test_steady_clips_match_nothing_in_the_catalog(
    steady_home: tuple[Path, dict[str, list[dict[str, object]]]], tmp_path: Path, clip: str, duration_s: float
) -> None:
    home, _ = steady_home
    path = _lavfi(tmp_path / f"{clip}.wav", _sources(duration_s)[clip], duration_s)
    result = _cli(home, "match", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert result.document == {"matches": []}


def test_a_music_clip_still_matches_beside_steady_assets(
    steady_home: tuple[Path, dict[str, list[dict[str, object]]]], tmp_path: Path
) -> None:
    home, _ = steady_home
    clip = make_media(tmp_path / "clip.wav", "-ss", "5", "-t", "8", "-i", str(FIXTURES / "music_hyperrogue_20s.ogg"))
    result = _cli(home, "match", str(clip), "--json")
    assert result.returncode == 0, result.stderr
    (best,) = result.document["matches"]
    assert best["asset_id"] == "crossroads" and best["score"] >= POLICY.accept_score
    assert best["asset_offset_s"] - best["query_offset_s"] == pytest.approx(5.0, abs=0.5)
