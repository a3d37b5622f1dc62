"""A match-index snapshot that cannot be loaded is replaced, not kept: otherwise every new worker process
would find it, fail to load it, and read every fingerprint of the catalog again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipelines.catalog import AssetRecord, Catalog, FingerprintRecord
from pipelines.clip_job import CatalogIndex
from pipelines.document import JobDocument


def _catalog_with_fingerprints(folder: Path) -> Catalog:
    catalog = Catalog.open(f"sqlite:///{folder / 'catalog.sqlite3'}")
    rng = np.random.default_rng(7)
    for n in range(3):
        asset_id = f"track-{n}"
        job_id = catalog.create_job(asset_id=asset_id, source_uri=f"/masters/{asset_id}.wav")
        catalog.start_job(job_id)
        items = rng.integers(0, 2**32, size=400, dtype=np.uint32)
        catalog.complete_job(
            job_id, renditions=[], document=JobDocument(asset_id=asset_id, job_id=job_id, status="succeeded"),
            asset=AssetRecord(source_uri=f"/masters/{asset_id}.wav", content_sha256="0" * 64, kind="audio",
                              duration_s=50.0, container="wav", hls_master="", probe={}),
            fingerprint=FingerprintRecord(items=items.astype("<u4").tobytes(), duration_s=50.0, item_count=400),
        )
    return catalog


def _truncate_an_array(snapshot: Path) -> None:
    array = sorted(snapshot.glob("*.npy"))[0]
    array.write_bytes(array.read_bytes()[: 100])


def _garble_the_ids(snapshot: Path) -> None:
    (snapshot / "asset_ids.json").write_text('["track-0", "tra')


def _empty_an_array(snapshot: Path) -> None:
    sorted(snapshot.glob("*.npy"))[-1].write_bytes(b"")


def _remove_an_array(snapshot: Path) -> None:
    sorted(snapshot.glob("*.npy"))[0].unlink()


@pytest.mark.parametrize("damage", [_truncate_an_array, _garble_the_ids, _empty_an_array, _remove_an_array])
def test_a_snapshot_that_cannot_be_loaded_is_replaced(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    catalog = _catalog_with_fingerprints(tmp_path)
    snapshots = tmp_path / "match-index"
    try:
        first = CatalogIndex(catalog, snapshots=snapshots)
        expected = sorted(first.current().base.asset_ids)
        assert (first.full_builds, first.snapshot_loads) == (1, 0)
        [saved] = snapshots.glob("index-*")
        damage(saved)

        second = CatalogIndex(catalog, snapshots=snapshots)  # a new worker process
        assert sorted(second.current().base.asset_ids) == expected
        assert (second.full_builds, second.snapshot_loads) == (1, 0)
        assert [p.name for p in snapshots.glob("index-*")] == [saved.name], "replaced under the same state"

        third = CatalogIndex(catalog, snapshots=snapshots)  # the next one maps the good snapshot
        assert sorted(third.current().base.asset_ids) == expected
        assert (third.full_builds, third.snapshot_loads) == (0, 1)
    finally:
        catalog.dispose()
