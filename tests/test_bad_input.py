"""Masters that must be rejected: each gets its own error code, exit code 2, a failed job in the catalog, and
nothing in the output store."""

from __future__ import annotations

import os
from pathlib import Path
import sqlite3

import pytest

from tests.conftest import CliRunner, files_under, make_media


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _subtitles_only(folder: Path) -> Path:
    srt = _write(folder / "subs.srt", b"1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    return make_media(folder / "subs-only.mkv", "-i", str(srt), "-c:s", "srt")


CASES = {
    "empty": (lambda d: _write(d / "empty.mp4", b""), "empty_file"),
    "text": (lambda d: _write(d / "notes.mp4", b"this is not a video\n" * 50), "not_media"),
    "random": (lambda d: _write(d / "noise.wav", os.urandom(64 * 1024)), "not_media"),
    # A playlist disguised as a video would make an unconfined ffmpeg read a local file.
    "playlist": (lambda d: _write(d / "clip.mp4", b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"), "not_media"),
    "concat": (lambda d: _write(d / "clip.mov", b"ffconcat version 1.0\nfile /etc/passwd\n"), "not_media"),
    "no_streams": (_subtitles_only, "no_media_streams"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rejected_master(case: str, tmp_path: Path, home: Path, cli: CliRunner) -> None:
    make, code = CASES[case]
    source = make(tmp_path)
    result = cli("process", str(source), "--json", "--asset-id", f"bad-{case.replace('_', '-')}")
    assert result.returncode == 2, result.stderr
    doc = result.document
    assert doc["status"] == "failed" and doc["error"]["code"] == code, doc["error"]
    assert doc["error"]["message"]
    assert doc["hls"] is None
    assert files_under(home / "objects") == []
    assert list((home / "work").iterdir()) == []  # the job's scratch folder is gone too
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        assert db.execute("SELECT status, error_code FROM jobs").fetchall() == [("failed", code)]
        assert db.execute("SELECT count(*) FROM assets").fetchone() == (0,)


def test_limits_are_configurable(masters: dict[str, Path], home: Path, cli: CliRunner) -> None:
    too_long = cli("process", str(masters["audio"]), "--json", env={"MEDIAWORKER_MAX_DURATION_S": "5"})
    assert too_long.returncode == 2 and too_long.document["error"]["code"] == "duration_too_long"
    too_wide = cli("process", str(masters["video"]), "--json", env={"MEDIAWORKER_MAX_WIDTH": "640"})
    assert too_wide.returncode == 2 and too_wide.document["error"]["code"] == "resolution_too_large"
    assert "960x540" in too_wide.document["error"]["message"]
    assert files_under(home / "objects") == []


@pytest.mark.parametrize(("faststart", "code"), [(False, "not_media"), (True, "truncated_master")])
def test_truncated_master_fails_its_job_with_a_reason(
    faststart: bool, code: str, masters: dict[str, Path], tmp_path: Path, home: Path, cli: CliRunner
) -> None:
    """An MP4 cut to a third fails cleanly: without its index (``moov`` at the end) it is not media; with the
    index at the front ffmpeg decodes what is there and stops, and the job sees the missing two thirds."""
    whole = masters["video"]
    if faststart:
        whole = make_media(tmp_path / "faststart.mp4", "-i", str(masters["video"]), "-c", "copy", "-movflags", "+faststart")
    data = whole.read_bytes()
    source = _write(tmp_path / "truncated.mp4", data[: len(data) // 3])
    result = cli("process", str(source), "--json")
    assert result.returncode == 2
    assert result.document["error"]["code"] == code, result.document["error"]
    assert str(home) not in result.document["error"]["message"]  # no worker paths in what users see
    assert files_under(home / "objects") == []


def test_usage_errors_exit_1(cli: CliRunner, tmp_path: Path) -> None:
    missing = cli("process", str(tmp_path / "missing.wav"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    bad_id = cli("process", str(tmp_path / "x.wav"), "--asset-id", "../etc")
    assert bad_id.returncode == 1 and "invalid asset id" in bad_id.stderr
    assert cli("status", "no-such-job").returncode == 1
    assert cli("frobnicate").returncode == 1


def test_a_decoder_past_its_memory_limit_fails_the_job_not_the_worker(
    masters: dict[str, Path], home: Path, cli: CliRunner
) -> None:
    result = cli("process", str(masters["video"]), "--json", env={"MEDIAWORKER_PROCESS_MEMORY_MB": "60"})
    assert result.returncode == 2
    assert result.document["error"]["code"] == "resource_limit"
    assert "60 MiB" in result.document["error"]["message"]
    assert files_under(home / "objects") == []
