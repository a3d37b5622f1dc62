"""A full disk or an unwritable work folder fails the job with a code, never with a traceback.

The home (catalog, store and work folder on one disk, as on the embedded default) is a small tmpfs: too small
for the master, or with room for the master but not for its ladder, so the transcode fills it. A read-only
tmpfs over the work folder stands for a folder the worker may not write (as root, permissions alone would not
stop a write). Each job ends ``failed`` with ``no_space`` or ``storage_error``, its document printed, exit 2, its
scratch removed and the catalog consistent: the row ``failed``, nothing published.

Where this machine refuses to mount (not root), the master's copy is limited instead with a file-size rlimit
(``RLIMIT_FSIZE``, SIGXFSZ ignored: the write fails with EFBIG); the other cases need a real file system and are
skipped, saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import resource
import signal
import subprocess

import pytest

from tests.conftest import MEDIAWORKER, CliResult, CliRunner, files_under
from tests.lifecycle import job_row, tmpfs

MiB = 1 << 20


def _process_in(home: Path, master: Path, asset_id: str, *extra: str,
                fsize_limit: int | None = None) -> CliResult:
    def limited() -> None:
        if fsize_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    proc = subprocess.run([MEDIAWORKER, "process", str(master), "--asset-id", asset_id, "--json", *extra],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
                          env={**os.environ, "MEDIAWORKER_HOME": str(home)}, preexec_fn=limited)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _assert_failed_cleanly(home: Path, result: CliResult, asset_id: str, code: str) -> dict[str, object]:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    document = result.document
    assert (document["status"], document["error"]["code"], document["hls"]) == ("failed", code, None), document
    row = job_row(home, asset_id)
    assert row is not None and (row["status"], row["error_code"]) == ("failed", code)
    assert row["id"] == document["job_id"]
    assert json.loads(str(row["document"]))["error"]["code"] == code
    assert files_under(home / "objects" / "media-out") == [], "nothing published"
    assert list((home / "work").glob("job-*")) == [], "the job's scratch is removed"
    return document


def test_no_room_for_the_master(long_master: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    size = long_master.stat().st_size // 2
    with tmpfs(home, size_bytes=size) as mounted:
        if mounted:
            result = _process_in(home, long_master, "no-room")
        else:  # not root: the same failure from a file-size limit on the copy (EFBIG rather than ENOSPC)
            result = _process_in(home, long_master, "no-room", fsize_limit=size)
        _assert_failed_cleanly(home, result, "no-room", "no_space")


def test_the_transcode_filling_the_disk(long_master: Path, tmp_path: Path) -> None:
    """The catalog is on the full disk too: the job's scratch is freed before the failure is recorded."""
    home = tmp_path / "home"
    # Room for the master and the catalog, and a few MiB more: less than the ladder needs.
    with tmpfs(home, size_bytes=long_master.stat().st_size + 5 * MiB) as mounted:
        if not mounted:
            pytest.skip("mount is refused here (not root): a full file system cannot be made for the transcode")
        result = _process_in(home, long_master, "fills")
        document = _assert_failed_cleanly(home, result, "fills", "no_space")
        assert "[ 18.0%] transcode" in result.stderr, "the master was copied and the transcode started"
        assert document["probe"] is not None


def test_a_read_only_work_folder(masters: dict[str, Path], home: Path, cli: CliRunner) -> None:
    with tmpfs(home / "work", size_bytes=MiB, read_only=True) as mounted:
        if not mounted:
            pytest.skip("mount is refused here (not root): a read-only folder cannot be made (root writes anyway)")
        result = cli("process", str(masters["audio"]), "--asset-id", "read-only", "--json")
        document = _assert_failed_cleanly(home, result, "read-only", "storage_error")
        assert "Read-only file system" in str(document["error"])

        clip = cli("match", str(masters["audio"]), "--json")
        assert clip.returncode == 2, clip.stderr
        assert "Traceback" not in clip.stderr, clip.stderr
        assert clip.document["matches"] == [] and clip.document["error"]["code"] == "storage_error"


def test_each_layer_says_no_space_its_own_way_and_each_is_no_space(tmp_path: Path) -> None:
    """Real failures of each layer on a full device: ffmpeg writing to ``/dev/full``, Python writing to it, and
    SQLite past its page limit (SQLITE_FULL) under SQLAlchemy, as the catalog raises it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from pipelines.errors import CatalogError, FFmpegError, StorageError, blame_master, disk_error_code, out_of_space

    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=20", "-c:a", "aac",
           "-f", "mp4", "/dev/full"]
    ran = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0 and "No space left on device" in ran.stderr
    ffmpeg = FFmpegError(cmd, ran.returncode, ran.stderr)
    blamed = blame_master(ffmpeg, doing="the transcode", timeout_code="transcode_timeout",
                          failed_code="decode_failed", memory_mb=8192)
    assert blamed is ffmpeg, "a full disk is not the master's fault"
    assert disk_error_code(ffmpeg) == "no_space"

    with pytest.raises(OSError) as written, open("/dev/full", "wb", buffering=0) as device:
        device.write(b"x")
    assert disk_error_code(written.value) == "no_space"
    try:
        raise StorageError("cannot copy the source into the work folder") from written.value
    except StorageError as exc:
        assert exc.code == "no_space"

    engine = create_engine(f"sqlite:///{tmp_path / 'small.sqlite3'}")
    with pytest.raises(OperationalError) as full, engine.begin() as connection:
        connection.execute(text("PRAGMA max_page_count = 8"))
        connection.execute(text("CREATE TABLE t (x BLOB)"))
        for _ in range(100):
            connection.execute(text("INSERT INTO t VALUES (zeroblob(4096))"))
    engine.dispose()
    try:
        raise CatalogError("catalog write failed") from full.value
    except CatalogError as exc:
        assert out_of_space(exc) and disk_error_code(exc) == "no_space"

    unrelated = CatalogError("catalog write failed")
    assert not out_of_space(unrelated) and disk_error_code(OSError("boom")) is None
