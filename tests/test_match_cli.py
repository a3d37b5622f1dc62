"""What the command line answers when it cannot answer the question: a missing clip, a store or a program that
fails, counts and ranges that could only answer "nothing", and identifiers too long to echo whole. Every case
through the real ``mediaworker`` command: a clear message on stderr, the documented exit code, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, CliRunner

LONG_ID = "x" * 10_000
ECHO_BOUND = 800
"""Characters of stderr that a message about a 10,000-character argument may take, usage line included."""


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_a_missing_object_is_source_not_found(cli: CliRunner) -> None:
    """On the embedded default: the object is not in the masters bucket. Final, like a rejected clip: exit 2."""
    result = cli("match", "s3://masters/missing.wav", "--json")
    assert result.returncode == 2, result.stderr
    _no_traceback(result.stderr)
    assert "source_not_found" in result.stderr and "s3://masters/missing.wav" in result.stderr
    assert result.stdout == ""


def test_a_missing_object_on_a_real_s3_server_is_source_not_found(cli: CliRunner, s3_server: Any) -> None:
    result = cli("match", "s3://masters/missing.wav", env=s3_server.env)
    assert result.returncode == 2, result.stderr
    _no_traceback(result.stderr)
    assert "source_not_found" in result.stderr


def test_a_store_that_cannot_be_reached_is_a_storage_error(cli: CliRunner) -> None:
    """Nothing listens on port 9 (discard): the store fails, which a retry may cure — said as such, exit 2."""
    env = {"MEDIAWORKER_S3_ENDPOINT": "127.0.0.1:9", "MEDIAWORKER_S3_ACCESS_KEY": "match-cli-test",
           "MEDIAWORKER_S3_SECRET_KEY": "match-cli-test-secret", "MEDIAWORKER_S3_SECURE": "false"}
    result = cli("match", "s3://masters/clip.wav", env=env)
    assert result.returncode == 2, result.stderr
    _no_traceback(result.stderr)
    assert "storage_error" in result.stderr and "source_not_found" not in result.stderr


def test_an_ffprobe_that_cannot_run_is_a_worker_error(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("match", str(FIXTURES / "music_hyperrogue_20s.ogg"),
                 env={"MEDIAWORKER_FFPROBE": str(tmp_path / "no-such-ffprobe")})
    assert result.returncode == 2, result.stderr
    _no_traceback(result.stderr)
    assert "worker_error" in result.stderr


@pytest.mark.parametrize("top", ["0", "-1", "two"])
def test_top_must_be_a_positive_count(cli: CliRunner, top: str) -> None:
    """``--top 0`` used to answer "no match in the catalog" whatever the clip (the clip here is real music; that
    ``--top 1`` finds it in a catalog is tested in test_match.py)."""
    result = cli("match", str(FIXTURES / "music_hyperrogue_20s.ogg"), "--top", top)
    assert result.returncode == 1, result.stderr
    _no_traceback(result.stderr)
    assert "--top" in result.stderr and "no match" not in result.stdout


@pytest.mark.parametrize("tempo", ["nan", "inf", "-inf", "120-nan", "130-120", "0-10", "400-500", "1e308-1e309",
                                   "120-130-140"])
def test_search_refuses_a_tempo_no_asset_can_have(cli: CliRunner, tempo: str) -> None:
    result = cli("search", f"--tempo={tempo}")
    assert result.returncode == 1, (tempo, result.stdout, result.stderr)
    _no_traceback(result.stderr)
    assert "--tempo" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_search_refuses_a_limit_under_one(cli: CliRunner, limit: str) -> None:
    result = cli("search", "--limit", limit)
    assert result.returncode == 1, result.stderr
    assert "--limit" in result.stderr and result.stdout == ""


def test_search_still_takes_a_tempo_and_a_range(cli: CliRunner) -> None:
    for tempo in ("120", "100-140", "0-60", "200-1000"):
        result = cli("search", "--tempo", tempo, "--limit", "1", "--json")
        assert result.returncode == 0, (tempo, result.stderr)
        assert result.document == {"assets": []}


@pytest.mark.parametrize("args", [
    ("status", LONG_ID),
    ("delete", LONG_ID),
    ("cancel", LONG_ID),
    ("process", str(FIXTURES / "music_hyperrogue_20s.ogg"), "--asset-id", LONG_ID),
    ("submit", str(FIXTURES / "music_hyperrogue_20s.ogg"), "--asset-id", LONG_ID),
    ("search", "--isrc", LONG_ID),
    ("search", "--key", LONG_ID),
    ("match", LONG_ID),
], ids=["status", "delete", "cancel", "process", "submit", "search-isrc", "search-key", "match"])
def test_a_long_id_is_not_echoed_whole(cli: CliRunner, args: tuple[str, ...]) -> None:
    """A 10,000-character id (or address) is a usage error whose message quotes its start and says its length."""
    result = cli(*args)
    assert result.returncode == 1, result.stderr[:500]
    _no_traceback(result.stderr)
    assert LONG_ID not in result.stderr and len(result.stderr) < ECHO_BOUND, result.stderr[:500]
    assert "10000 characters" in result.stderr
