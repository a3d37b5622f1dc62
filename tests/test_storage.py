"""Object keys are validated before any backend sees them; the local store writes atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelines.errors import StorageError
from pipelines.storage import InvalidKeyError, ObjectRef, parse_s3_uri, validate_key
from pipelines.storage.local import LocalStorage


@pytest.mark.parametrize(
    "key",
    ["", "../etc/passwd", "a/../../b", "/abs/path", "a//b", "./a", "nul\x00byte", "new\nline", "back\\slash",
     "x" * 1025, "é" * 513],
)
def test_hostile_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_ordinary_keys_pass() -> None:
    assert validate_key("uploads/2026/Ünïcode name (final).wav") == "uploads/2026/Ünïcode name (final).wav"
    assert validate_key("k" * 1024)


def test_s3_uris() -> None:
    assert parse_s3_uri("s3://masters/a/b.wav") == ObjectRef("masters", "a/b.wav")
    for bad in ("masters/a.wav", "s3://Masters/a.wav", "s3://masters/../a", "s3://masters/"):
        with pytest.raises(InvalidKeyError):
            parse_s3_uri(bad)


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "objects")
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload" * 1000)
    ref = ObjectRef("media-out", "hls/a/master.m3u8")
    store.put_file(source, ref, content_type="application/vnd.apple.mpegurl")
    assert Path(store.uri(ref)).read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "objects" / "media-out" / "hls" / "a").iterdir()] == ["master.m3u8"]
    digest = store.fetch(ref, tmp_path / "out.bin")
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.delete_prefix("media-out", "hls/a") == 1
    with pytest.raises(StorageError) as info:
        store.fetch(ref, tmp_path / "again.bin")
    assert info.value.missing


def test_local_delete_prefix_deletes_a_folder_as_on_s3(tmp_path: Path) -> None:
    """Only the objects under the folder ``prefix/``: an object named like the prefix is not under it (S3 lists
    ``prefix/``), and a prefix no file system here can hold has nothing under it. Neither is an error."""
    store = LocalStorage(tmp_path / "objects")
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload")
    for key in ("hls/a", "hls/ab/one", "hls/ab/two/three"):
        store.put_file(source, ObjectRef("media-out", key), content_type="application/octet-stream")
    assert store.delete_prefix("media-out", "hls/a") == 0
    assert store.delete_prefix("media-out", "x" * 300) == 0  # a valid key; no file name here is that long
    assert store.delete_prefix("media-out", "hls/ab/") == 2
    assert Path(store.uri(ObjectRef("media-out", "hls/a"))).read_bytes() == b"payload"


def test_local_delete_prefix_fails_with_a_storage_error(tmp_path: Path) -> None:
    """A file system failure is a ``StorageError``, as the ``Storage`` protocol promises (a caller such as the
    job's cleanup catches that, not ``OSError``). Here the prefix is a symbolic link, which the store never
    makes and ``rmtree`` refuses whoever runs the test; nothing outside the store is touched."""
    store = LocalStorage(tmp_path / "objects")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    (tmp_path / "objects" / "media-out" / "hls").mkdir(parents=True)
    (tmp_path / "objects" / "media-out" / "hls" / "a").symlink_to(elsewhere)
    with pytest.raises(StorageError) as info:
        store.delete_prefix("media-out", "hls/a")
    assert "s3://media-out/hls/a/" in str(info.value) and "symbolic link" in str(info.value)
    assert (elsewhere / "keep.txt").read_text() == "kept"
