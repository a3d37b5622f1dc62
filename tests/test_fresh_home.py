"""Commands started together on a home (or a database) that does not exist yet all work: creating and
migrating the catalog is done by one of them while the others wait, never side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.catalog import Catalog
from tests.lifecycle import Background

TRIALS = 6


def _together(homes: list[Path], *args: str, out: Path, env: dict[str, str] | None = None) -> list[Background]:
    started = [Background(home, *args, out=out / str(n), env=env) for n, home in enumerate(homes)]
    for command in started:
        command.wait()
    return started


@pytest.mark.parametrize("trial", range(TRIALS))
def test_four_status_commands_on_a_fresh_home(tmp_path: Path, trial: int) -> None:
    home = tmp_path / "fresh-home"
    for command in _together([home] * 4, "status", "x", out=tmp_path / "out"):
        assert command.proc.returncode == 1, command.stderr
        assert command.stderr.strip() == "mediaworker: no job or asset 'x' in the catalog", command.stderr


@pytest.mark.parametrize("trial", range(2))
def test_two_jobs_on_a_fresh_home_are_both_recorded(masters: dict[str, Path], tmp_path: Path, trial: int) -> None:
    home = tmp_path / "fresh-home"
    jobs = [Background(home, "process", str(masters["audio"]), "--asset-id", f"first-use-{n}", "--json",
                       out=tmp_path / f"out-{n}") for n in range(2)]
    for started in jobs:
        assert started.wait() == 0, started.stderr
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        for n in range(2):
            job = catalog.latest_job_for_asset(f"first-use-{n}")
            assert job is not None and job.status == "succeeded"
    finally:
        catalog.dispose()
    assert sorted(p.name for p in (home / "objects" / "media-out" / "hls").iterdir()) == ["first-use-0", "first-use-1"]


def test_four_commands_migrate_a_fresh_postgresql_database_once(tmp_path: Path) -> None:
    """PostgreSQL's side of the same rule: the migration runs under an advisory lock."""
    import os

    from tests.pgserver import throwaway_database

    admin_url = os.environ.get("MEDIAWORKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with throwaway_database(admin_url, f"mediaworker_fresh_{os.getpid()}") as url:
        commands = _together([tmp_path / "home"] * 4, "status", "x", out=tmp_path / "out",
                             env={"MEDIAWORKER_CATALOG_URL": url})
        for command in commands:
            assert command.proc.returncode == 1, command.stderr
            assert command.stderr.strip() == "mediaworker: no job or asset 'x' in the catalog", command.stderr
