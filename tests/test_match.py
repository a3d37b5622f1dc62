"""The rights team's match service on real music: clips found at the right place, even re-encoded, noisy or
sped up; music that is not in the catalog and speech found nowhere; ingest reports re-uploads; deletion."""

from __future__ import annotations

import os
from pathlib import Path
import sqlite3
import subprocess
from typing import Any

import numpy as np
import pytest

from pipelines.match.fingerprint import fingerprint_samples
from pipelines.match.index import FingerprintIndex, score
from pipelines.match.search import SpeedSearch, resample
from tests.conftest import FIXTURES, MEDIAWORKER, CliResult, make_media

DESERT = FIXTURES / "music_hyperrogue_desert_30s.ogg"
CROSSROADS = FIXTURES / "music_hyperrogue_20s.ogg"
JUNGLE = FIXTURES / "music_hyperrogue_jungle_30s.ogg"  # never indexed
SPEECH = FIXTURES / "speech_librivox_16k.flac"
CLIP_START_S = 12.0


def _cli(home: Path, *args: str) -> CliResult:
    proc = subprocess.run([MEDIAWORKER, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MEDIAWORKER_HOME": str(home)})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def catalog_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of two processed tracks: ``desert`` and ``crossroads``."""
    home = tmp_path_factory.mktemp("match-home")
    for asset_id, master in (("desert", DESERT), ("crossroads", CROSSROADS)):
        result = _cli(home, "process", str(master), "--asset-id", asset_id, "--json")
        assert result.returncode == 0, result.stderr
        assert result.document["fingerprint"]["items"] > 100
    return home


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 s from 12 s into the desert track, as it is and as the rights team meets it in the wild."""
    folder = tmp_path_factory.mktemp("clips")
    cut = ["-ss", str(CLIP_START_S), "-t", "8", "-i", str(DESERT)]
    return {
        "clean": make_media(folder / "clean.wav", *cut),
        "mp3_64k": make_media(folder / "low.mp3", *cut, "-ac", "1", "-b:a", "64k"),
        "noisy": make_media(
            folder / "noisy.wav", *cut, "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.08:duration=8",
            "-filter_complex", "[0:a]aformat=channel_layouts=stereo[m];[1:a]aformat=channel_layouts=stereo[n];"
            "[m][n]amix=inputs=2:duration=first:normalize=0",
        ),
        "sped_up_3pct": make_media(folder / "fast.wav", *cut, "-af", "asetrate=44100*1.03,aresample=44100"),
        "in_a_podcast": make_media(  # the excerpt after 4 s of speech
            folder / "podcast.wav", "-i", str(SPEECH), "-ss", str(CLIP_START_S), "-t", "8", "-i", str(DESERT),
            "-filter_complex", "[0:a]atrim=0:4,aresample=44100,aformat=channel_layouts=stereo[s];"
            "[1:a]aformat=channel_layouts=stereo[m];[s][m]concat=n=2:v=0:a=1",
        ),
    }


@pytest.mark.parametrize("variant", ["clean", "mp3_64k", "noisy", "sped_up_3pct", "in_a_podcast"])
def test_a_clip_is_found_at_the_right_place(variant: str, catalog_home: Path, clips: dict[str, Path]) -> None:
    result = _cli(catalog_home, "match", str(clips[variant]), "--json")
    assert result.returncode == 0, result.stderr
    matches: list[dict[str, Any]] = result.document["matches"]
    assert matches, f"{variant}: no match"
    best = matches[0]
    assert best["asset_id"] == "desert" and 0 < best["score"] <= 1
    assert [m["asset_id"] for m in matches] == ["desert"]  # crossroads is not reported
    # Where in the asset the clip's matched region starts, ± 0.5 s.
    query_start = best["query_offset_s"] * (1.03 if variant == "sped_up_3pct" else 1.0)
    clip_start_in_asset = CLIP_START_S - (4.0 if variant == "in_a_podcast" else 0.0)
    assert best["asset_offset_s"] - query_start == pytest.approx(clip_start_in_asset, abs=0.5), best
    if variant == "sped_up_3pct":
        assert best["speed"] == pytest.approx(1.03, abs=0.005)


def test_top_counts_matches_and_must_be_at_least_one(catalog_home: Path, clips: dict[str, Path]) -> None:
    """``--top 1`` answers the one best match; ``--top 0`` and ``--top -1`` used to answer "no match in the
    catalog" for this same clip, and are usage errors now (exit 1)."""
    result = _cli(catalog_home, "match", str(clips["clean"]), "--top", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert [m["asset_id"] for m in result.document["matches"]] == ["desert"]
    for top in ("0", "-1"):
        refused = _cli(catalog_home, "match", str(clips["clean"]), "--top", top)
        assert refused.returncode == 1, refused.stdout
        assert "--top" in refused.stderr and "no match" not in refused.stdout


@pytest.mark.parametrize("clip", [JUNGLE, SPEECH], ids=["music-not-in-catalog", "speech"])
def test_what_is_not_in_the_catalog_matches_nothing(clip: Path, catalog_home: Path) -> None:
    result = _cli(catalog_home, "match", str(clip), "--json")
    assert result.returncode == 0, result.stderr
    assert result.document == {"matches": []}
    human = _cli(catalog_home, "match", str(clip))
    assert "no match in the catalog" in human.stdout


def test_a_re_upload_is_reported_at_ingest(catalog_home: Path, tmp_path: Path) -> None:
    """A master that repeats a catalog track gets ``matches`` in its document and a row in the catalog."""
    reupload = make_media(tmp_path / "reupload.mp3", "-i", str(DESERT), "-b:a", "128k")
    result = _cli(catalog_home, "process", str(reupload), "--asset-id", "desert-copy", "--json")
    assert result.returncode == 0, result.stderr
    (match,) = result.document["matches"]
    assert match["asset_id"] == "desert" and match["score"] > 0.5
    assert match["asset_offset_s"] == pytest.approx(match["query_offset_s"], abs=0.5)
    with sqlite3.connect(catalog_home / "catalog.sqlite3") as db:
        rows = db.execute("SELECT matched_asset_id FROM asset_matches WHERE asset_id = 'desert-copy'").fetchall()
    assert rows == [("desert",)]
    assert _cli(catalog_home, "delete", "desert-copy").returncode == 0


def test_deleting_an_asset_removes_it_from_results(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli(home, "process", str(CROSSROADS), "--asset-id", "doomed").returncode == 0
    clip = make_media(tmp_path / "clip.wav", "-ss", "5", "-t", "8", "-i", str(CROSSROADS))
    assert _cli(home, "match", str(clip), "--json").document["matches"][0]["asset_id"] == "doomed"
    deleted = _cli(home, "delete", "doomed")
    assert deleted.returncode == 0 and "published objects removed" in deleted.stdout
    assert _cli(home, "match", str(clip), "--json").document == {"matches": []}
    assert not any((home / "objects").rglob("*.m3u8"))
    assert _cli(home, "delete", "doomed").returncode == 1


def test_index_search_on_synthetic_items() -> None:
    """The index's own arithmetic: a copied stretch of items is found at its offset with a perfect score."""
    rng = np.random.default_rng(7)
    tracks = {f"t{i}": rng.integers(0, 2**32, size=2000, dtype=np.uint32) for i in range(20)}
    index = FingerprintIndex(tracks.items())
    (best, *_) = index.search(tracks["t13"][500:580])
    assert (best.asset_id, best.bit_error_rate, best.score) == ("t13", 0.0, pytest.approx(score(0.0, best.matched_s)))
    assert best.asset_offset_s == pytest.approx(500 * 1365 / 11025) and best.query_offset_s == 0
    assert index.search(rng.integers(0, 2**32, size=80, dtype=np.uint32)) == []
    assert index.nbytes / index.indexed_s * 3600 < 0.5e6  # under 0.5 MB per hour of audio


def test_a_clip_that_agrees_only_on_average_is_scored_over_its_whole_overlap() -> None:
    """Every third item exact, the others 12 bits off: no stretch of 8 items agrees (under 8 bits on average), so
    the longest agreeing run is a single item; the whole overlap (a bit error rate of 0.25) scores higher."""
    rng = np.random.default_rng(11)
    tracks = {f"t{i}": rng.integers(0, 2**32, size=2000, dtype=np.uint32) for i in range(5)}
    index = FingerprintIndex(tracks.items())
    query = tracks["t2"][700:780].copy()
    for i in range(len(query)):
        if i % 3:
            for bit in rng.choice(32, size=12, replace=False):
                query[i] ^= np.uint32(1 << int(bit))
    (best,) = index.search(query)
    assert best.asset_id == "t2" and best.asset_offset_s == pytest.approx(700 * 1365 / 11025)
    assert best.bit_error_rate == pytest.approx((12 * 53) / (32 * 80))  # 53 of the 80 items carry 12 errors each
    assert best.matched_s == pytest.approx(80 * 1365 / 11025)
    assert best.score == pytest.approx(score(best.bit_error_rate, best.matched_s))


def test_speed_search_grid_and_resampling() -> None:
    search = SpeedSearch(max_change=0.01, speed_step=0.005, tempo_step=0.01)
    assert search.speed_factors() == [1.005, 0.995, 1.01, 0.99]
    assert search.tempo_ratios() == [1.0, 1.01, 0.99]
    tone = np.sin(2 * np.pi * 440 * np.arange(11025) / 11025).astype(np.float32)
    slower = resample(tone, 1.5)
    assert len(slower) == 16537  # 1.5 times longer, and 1.5 times lower: 440 Hz → 293 Hz
    assert np.argmax(np.abs(np.fft.rfft(slower))) * 11025 / len(slower) == pytest.approx(293.3, abs=1)
    assert len(fingerprint_samples(tone, rate=11025)) == 0  # one second is too short for Chromaprint
