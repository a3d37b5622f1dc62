"""One asset, one ladder: jobs of the same asset that finish together each remove exactly the ladder they
replace, ``delete`` removes every ladder under the asset's prefix, and no job document points at a removed one.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import threading
from typing import Any

from pipelines.catalog import AssetRecord, Catalog
from pipelines.document import Hls, JobDocument
from tests.conftest import CliRunner, files_under
from tests.lifecycle import Background


def _ladders(home: Path, asset_id: str) -> list[str]:
    """The ladder folders published under the asset's prefix."""
    folder = home / "objects" / "media-out" / "hls" / asset_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _strings(document: Any) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [s for value in document.values() for s in _strings(value)]
    if isinstance(document, list):
        return [s for value in document for s in _strings(value)]
    return []


def test_three_jobs_of_one_asset_at_once_leave_one_ladder_and_delete_removes_it(
    masters: dict[str, Path], home: Path, tmp_path: Path, cli: CliRunner
) -> None:
    jobs = [Background(home, "process", str(masters["audio"]), "--asset-id", "race", "--json", out=tmp_path / str(n))
            for n in range(3)]
    for job in jobs:
        assert job.wait() == 0, job.stderr
    current = cli("status", "race", "--json").document  # the job whose ladder the asset has now
    assert current["status"] == "succeeded" and "withdrawn" not in current
    assert _ladders(home, "race") == [current["hls"]["prefix"].rsplit("/", 1)[-1]]

    # The two jobs that were replaced no longer point at the ladders they published.
    documents = [json.loads(job.stdout) for job in jobs]
    replaced = [d["job_id"] for d in documents if d["job_id"] != current["job_id"]]
    assert len(replaced) == 2
    for job_id in replaced:
        shown = cli("status", job_id, "--json").document
        assert shown["hls"] is None and shown["withdrawn"].startswith("replaced by job"), shown
        assert not [s for s in _strings(shown) if "/hls/race/" in s]

    deleted = cli("delete", "race")
    assert deleted.returncode == 0, deleted.stderr
    assert _ladders(home, "race") == []


def test_delete_removes_a_ladder_no_job_names_and_status_no_longer_points_at_it(
    masters: dict[str, Path], home: Path, cli: CliRunner
) -> None:
    done = cli("process", str(masters["audio"]), "--asset-id", "gone", "--json")
    assert done.returncode == 0, done.stderr
    published = Path(done.document["hls"]["master"]).parent
    # A ladder nobody points to, as a job killed while it published would leave.
    shutil.copytree(published, published.with_name("0123456789ab-01234567-deadbeef"))
    assert len(_ladders(home, "gone")) == 2

    deleted = cli("delete", "gone")
    assert deleted.returncode == 0, deleted.stderr
    assert _ladders(home, "gone") == []
    assert files_under(home / "objects" / "media-out") == []

    shown = cli("status", "gone", "--json")
    assert shown.returncode == 0, shown.stderr
    document = shown.document
    assert (document["status"], document["hls"], document["withdrawn"]) == ("succeeded", None, "the asset was deleted")
    assert not [s for s in _strings(document) if "/hls/gone/" in s], "no URI of a removed output is left"
    assert document["probe"] == done.document["probe"], "what the job measured stays"
    assert "outputs removed: the asset was deleted" in cli("status", "gone").stdout

    again = cli("delete", "gone")
    assert again.returncode == 1 and "no asset 'gone'" in again.stderr


def test_jobs_of_one_asset_completing_together_each_replace_the_one_before(catalog: Catalog) -> None:
    """At the catalog: every completion returns the ladder it replaced, read under the asset's lock — the
    ladders form one chain, each replaced once, so the caller that removes them leaves exactly the last one."""
    count = 6
    job_ids = []
    for _ in range(count):
        job_id = catalog.create_job(asset_id="race", source_uri="/masters/race.wav")
        catalog.start_job(job_id)
        job_ids.append(job_id)
    start = threading.Barrier(count)
    replaced: dict[str, str | None] = {}

    def complete(job_id: str) -> None:
        prefix = f"hls/race/{job_id}"
        asset = AssetRecord(source_uri="/masters/race.wav", content_sha256="0" * 64, kind="audio", duration_s=1.0,
                            container="wav", hls_master=f"{prefix}/master.m3u8", probe={})
        document = JobDocument(asset_id="race", job_id=job_id, status="succeeded",
                               hls=Hls(master=f"/store/{prefix}/master.m3u8", prefix=prefix, renditions=()))
        start.wait()
        replaced[job_id] = catalog.complete_job(job_id, asset=asset, renditions=[], document=document)

    threads = [threading.Thread(target=complete, args=(job_id,)) for job_id in job_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    asset = catalog.get_asset("race")
    assert asset is not None and asset.latest_job_id is not None
    prefixes = {f"hls/race/{job_id}" for job_id in job_ids}
    returned = [prefix for prefix in replaced.values() if prefix is not None]
    assert len(replaced) == count and len(returned) == count - 1, replaced  # the first replaced nothing
    assert len(set(returned)) == len(returned), "each ladder is replaced once"
    assert set(returned) | {f"hls/race/{asset.latest_job_id}"} == prefixes

    for job_id in job_ids:
        job = catalog.get_job(job_id)
        assert job is not None and job.document is not None and job.status == "succeeded"
        if job_id == asset.latest_job_id:
            assert job.document["hls"]["prefix"] == f"hls/race/{job_id}" and "withdrawn" not in job.document
        else:
            assert job.document["hls"] is None and job.document["withdrawn"].startswith("replaced by job ")
