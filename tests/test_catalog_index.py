"""The match index a worker keeps: built whole once, then brought up to date with only what the catalog changed.

Real fingerprints (the fixture tracks through Chromaprint) in a real catalog on SQLite and PostgreSQL. After each
change the kept index must answer exactly as an index loaded afresh from the catalog would.
"""

from __future__ import annotations

from pathlib import Path
import subprocess

import numpy as np
import pytest

from pipelines.catalog import AssetRecord, Catalog, FingerprintRecord
from pipelines.clip_job import CatalogIndex, load_index
from pipelines.document import JobDocument
from pipelines.match.fingerprint import Items, fingerprint_samples
from pipelines.match.index import Match
from pipelines.match.search import MATCH_RATE, find_clip
from tests.conftest import FIXTURES

TRACKS = {"desert": "music_hyperrogue_desert_30s.ogg", "crossroads": "music_hyperrogue_20s.ogg",
          "jungle": "music_hyperrogue_jungle_30s.ogg"}


def _samples(name: str) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(FIXTURES / TRACKS[name]), "-ac", "1", "-ar",
                          str(MATCH_RATE), "-f", "f32le", "-"], capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(out, dtype="<f4")


@pytest.fixture(scope="module")
def audio() -> dict[str, np.ndarray]:
    return {name: _samples(name) for name in TRACKS}


def _clip(audio: dict[str, np.ndarray], name: str) -> np.ndarray:
    return audio[name][5 * MATCH_RATE : 13 * MATCH_RATE]  # 8 s from 5 s in


def _record(catalog: Catalog, asset_id: str, items: Items) -> None:
    job_id = catalog.create_job(asset_id=asset_id, source_uri=f"s3://masters/{asset_id}.ogg")
    catalog.start_job(job_id)
    asset = AssetRecord(source_uri=f"s3://masters/{asset_id}.ogg", content_sha256="0" * 64, kind="audio",
                        duration_s=30.0, container="ogg", hls_master=f"{asset_id}/master.m3u8", probe={})
    catalog.complete_job(job_id, asset=asset, renditions=[],
                         document=JobDocument(asset_id=asset_id, job_id=job_id, status="succeeded"),
                         fingerprint=FingerprintRecord(items=items.astype("<u4").tobytes(), duration_s=30.0,
                                                       item_count=len(items)))


def _found(matches: list[Match]) -> list[tuple[str, float]]:
    return [(m.asset_id, round(m.asset_offset_s - m.query_offset_s, 1)) for m in matches]


def test_the_kept_index_follows_additions_replacements_and_deletions(
    catalog: Catalog, audio: dict[str, np.ndarray]
) -> None:
    items = {name: fingerprint_samples(samples, rate=MATCH_RATE) for name, samples in audio.items()}
    clips = {name: _clip(audio, name) for name in TRACKS}
    for asset_id in ("desert", "crossroads"):
        _record(catalog, asset_id, items[asset_id])
    kept = CatalogIndex(catalog, compact_fraction=1.0)  # changes up to the size of the large index stay beside it

    def answers() -> dict[str, list[tuple[str, float]]]:
        """What the kept index finds for each clip, checked against an index loaded afresh from the catalog."""
        current, fresh = kept.current(), load_index(catalog)
        found = {name: _found(find_clip(clip, current)) for name, clip in clips.items()}
        assert found == {name: _found(find_clip(clip, fresh)) for name, clip in clips.items()}
        return found

    assert answers() == {"desert": [("desert", 5.0)], "crossroads": [("crossroads", 5.0)], "jungle": []}
    assert kept.full_builds == 1
    assert kept.current() is kept.current()  # nothing changed: not even the small index is rebuilt

    _record(catalog, "jungle", items["jungle"])  # a new asset
    assert answers()["jungle"] == [("jungle", 5.0)]
    _record(catalog, "desert", items["crossroads"])  # an asset processed again, and its audio is now another's
    assert answers() == {"desert": [], "crossroads": [("crossroads", 5.0), ("desert", 5.0)],
                         "jungle": [("jungle", 5.0)]}
    assert catalog.delete_asset("crossroads") is not None  # deleted
    assert answers()["crossroads"] == [("desert", 5.0)]
    assert kept.full_builds == 1  # all of it without reading the large index again
    layered = kept.current()
    assert set(layered.base.asset_ids) == {"desert", "crossroads"} and layered.hidden == {"desert", "crossroads"}
    assert set(layered.recent.asset_ids) == {"jungle", "desert"} and len(layered) == 2


def test_the_kept_index_is_built_again_when_the_changes_outgrow_it(
    catalog: Catalog, audio: dict[str, np.ndarray]
) -> None:
    items = {name: fingerprint_samples(samples, rate=MATCH_RATE) for name, samples in audio.items()}
    _record(catalog, "desert", items["desert"])
    kept = CatalogIndex(catalog, compact_fraction=1.0)
    assert len(kept.current()) == 1 and kept.full_builds == 1
    _record(catalog, "jungle", items["jungle"])  # one change beside one asset: within the fraction
    assert kept.full_builds == 1 and len(kept.current().recent) == 1
    _record(catalog, "crossroads", items["crossroads"])  # two changes beside one asset: past it
    current = kept.current()
    assert kept.full_builds == 2
    assert set(current.base.asset_ids) == {"desert", "jungle", "crossroads"} and len(current.recent) == 0
    assert _found(find_clip(_clip(audio, "crossroads"), current)) == [("crossroads", 5.0)]


def test_an_empty_catalog_gives_an_empty_index(catalog: Catalog, tmp_path: Path) -> None:
    kept = CatalogIndex(catalog)
    assert len(kept.current()) == 0
    assert find_clip(np.zeros(8 * MATCH_RATE, dtype=np.float32), kept.current()) == []


def test_processes_share_one_snapshot_of_the_large_index(
    catalog: Catalog, audio: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The first process builds the large index and saves it; another, at the same catalog state, maps that
    snapshot read-only instead of reading every fingerprint, and answers alike. A rebuild after many changes
    saves a new snapshot, and only the newest few are kept."""
    items = {name: fingerprint_samples(samples, rate=MATCH_RATE) for name, samples in audio.items()}
    for asset_id in ("desert", "crossroads"):
        _record(catalog, asset_id, items[asset_id])
    folder = tmp_path / "match-index"
    first, second = CatalogIndex(catalog, snapshots=folder), CatalogIndex(catalog, snapshots=folder)
    answers = [_found(find_clip(_clip(audio, "desert"), index.current())) for index in (first, second)]
    assert answers == [[("desert", 5.0)], [("desert", 5.0)]]
    assert (first.full_builds, first.snapshot_loads, second.full_builds, second.snapshot_loads) == (1, 0, 0, 1)
    assert all(isinstance(array, np.memmap) for array in (second.current().base.items, second.current().base.keys))
    assert len(list(folder.glob("index-*"))) == 1 and not list(folder.glob(".*partial"))

    for n in range(CatalogIndex.KEEP_SNAPSHOTS + 1):  # each change passes an eighth of two assets: a rebuild
        _record(catalog, f"copy-{n}", items["jungle"])
        current = first.current()
        assert len(current.recent) == 0 and f"copy-{n}" in current.base.asset_ids
    assert first.full_builds == 1 + CatalogIndex.KEEP_SNAPSHOTS + 1
    assert len(list(folder.glob("index-*"))) == CatalogIndex.KEEP_SNAPSHOTS
    assert _found(find_clip(_clip(audio, "jungle"), second.current()))[0][1] == 5.0  # the older process catches up


def test_snapshots_that_cannot_be_written_leave_the_index_in_memory(
    catalog: Catalog, audio: dict[str, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _record(catalog, "desert", fingerprint_samples(audio["desert"], rate=MATCH_RATE))
    (tmp_path / "a-file").write_text("not a folder")
    kept = CatalogIndex(catalog, snapshots=tmp_path / "a-file" / "match-index")
    assert _found(find_clip(_clip(audio, "desert"), kept.current())) == [("desert", 5.0)]
    assert (kept.full_builds, kept.snapshot_loads) == (1, 0)
    assert "building the index in memory" in caplog.text
