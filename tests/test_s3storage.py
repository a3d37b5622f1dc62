"""The S3 backend against a real S3 API server (``rclone serve s3``), and the CLI publishing to it."""

from __future__ import annotations

from collections.abc import Callable
import hashlib
import json
import os
from pathlib import Path
import socket
import subprocess
import time
from typing import Any

import pytest
import urllib3

from pipelines.config import S3Settings
from pipelines.errors import ConfigError, StorageError
from pipelines.storage import InvalidKeyError, ObjectRef
from pipelines.storage.s3 import PART_SIZE, S3Storage
from tests.conftest import MEDIAWORKER, make_media


def settings_for(server: Any, **overrides: Any) -> S3Settings:
    fields = {"endpoint": server.endpoint, "access_key": server.access_key, "secret_key": server.secret_key,
              "secure": False, **overrides}
    return S3Settings(**fields)


class _Recording(urllib3.PoolManager):
    """Keeps the method and URL of every request (to see that a large upload went multipart)."""

    def __init__(self) -> None:
        super().__init__(timeout=urllib3.Timeout(connect=5, read=60), retries=urllib3.Retry(total=2))
        self.requests: list[tuple[str, str]] = []

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        self.requests.append((method, url))
        return super().urlopen(method, url, redirect=redirect, **kw)


@pytest.fixture
def store(s3_server: Any) -> S3Storage:
    return S3Storage(settings_for(s3_server))


def test_round_trip_small(store: S3Storage, s3_server: Any, tmp_path: Path) -> None:
    source = tmp_path / "in.m3u8"
    source.write_bytes(b"#EXTM3U\n" * 100)
    ref = ObjectRef("media-out", "small/a/index.m3u8")
    store.put_file(source, ref, content_type="application/vnd.apple.mpegurl")
    assert store.fetch(ref, tmp_path / "out") == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (tmp_path / "out").read_bytes() == source.read_bytes()
    assert store.uri(ref) == "s3://media-out/small/a/index.m3u8"
    info = store.stat(ref)
    assert info.size == source.stat().st_size
    assert info.etag == hashlib.md5(source.read_bytes()).hexdigest()  # rclone's ETag: MD5 of the body
    assert info.content_type == "application/vnd.apple.mpegurl"


def test_round_trip_multipart(s3_server: Any, tmp_path: Path) -> None:
    recorder = _Recording()
    store = S3Storage(settings_for(s3_server), http_client=recorder)
    source = tmp_path / "big.mp4"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(40):  # 40 MiB: three 16 MiB parts
            block = os.urandom(1 << 20)
            digest.update(block)
            out.write(block)
    assert source.stat().st_size > 2 * PART_SIZE
    ref = ObjectRef("masters", "uploads/2026/big master (final).mp4")
    store.put_file(source, ref, content_type="video/mp4")
    stat = s3_server.client().stat_object("masters", ref.key)
    assert stat.size == source.stat().st_size
    assert stat.content_type == "video/mp4"
    parts = [url for method, url in recorder.requests if method == "PUT" and "partNumber=" in url]
    assert len(parts) == 3, recorder.requests  # 16 + 16 + 8 MiB
    # rclone stores one file and reports its plain MD5; S3 and MinIO report "<md5 of part md5s>-3"
    assert stat.etag.endswith("-3") or len(stat.etag) == 32
    assert store.fetch(ref, tmp_path / "back.mp4") == digest.hexdigest()
    assert (s3_server.root / "masters" / "uploads" / "2026" / "big master (final).mp4").stat().st_size == 40 << 20


def test_missing_object_and_bucket(store: S3Storage, tmp_path: Path) -> None:
    for ref in (ObjectRef("masters", "no/such/key.wav"), ObjectRef("no-such-bucket", "key.wav")):
        with pytest.raises(StorageError) as info:
            store.fetch(ref, tmp_path / "dest")
        assert info.value.missing, info.value
        assert not (tmp_path / "dest").exists()
        with pytest.raises(StorageError) as info:
            store.stat(ref)
        assert info.value.missing
    assert store.delete_prefix("no-such-bucket", "x") == 0


def test_delete_prefix_removes_exactly_that_folder(store: S3Storage, s3_server: Any, tmp_path: Path) -> None:
    source = tmp_path / "seg.ts"
    source.write_bytes(b"\x47" * 188)
    keep = ["del/a-sibling/x.ts", "del/ab/y.ts", "del/a.ts", "other/a/z.ts"]
    gone = ["del/a/master.m3u8", "del/a/v0/seg1.ts", "del/a/v0/deep/seg2.ts"]
    for key in keep + gone:
        store.put_file(source, ObjectRef("media-out", key), content_type="video/mp2t")
    assert store.delete_prefix("media-out", "del/a/") == 3
    left = {o.object_name for o in s3_server.client().list_objects("media-out", prefix="del/", recursive=True)}
    assert left == {k for k in keep if k.startswith("del/")}
    assert s3_server.client().stat_object("media-out", "other/a/z.ts").size == 188
    assert store.delete_prefix("media-out", "del/a") == 0


class _NoRequests(urllib3.PoolManager):
    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        raise AssertionError(f"a request was sent: {method} {url}")


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "nul\x00", "new\nline", "x" * 1025])
def test_hostile_keys_are_refused_before_any_request(key: str, tmp_path: Path) -> None:
    store = S3Storage(S3Settings(endpoint="127.0.0.1:9", access_key="a", secret_key="s"), http_client=_NoRequests())
    source = tmp_path / "f"
    source.write_bytes(b"x")
    ref = ObjectRef("media-out", key)
    calls: list[Callable[[], object]] = [lambda: store.fetch(ref, tmp_path / "d"), lambda: store.put_file(source, ref, content_type="x/y"),
             lambda: store.stat(ref), lambda: store.uri(ref), lambda: store.delete_prefix("media-out", key)]
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    for bucket in ("Upper", "a", "../up", "with/slash"):
        with pytest.raises(InvalidKeyError):
            store.put_file(source, ObjectRef(bucket, "k"), content_type="x/y")
        with pytest.raises(InvalidKeyError):
            store.ensure_bucket(bucket)


def test_endpoint_with_a_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="host\\[:port\\]"):
        S3Storage(S3Settings(endpoint="http://127.0.0.1:9000", access_key="a", secret_key="s", secure=False))


def _fails_promptly(endpoint: str, tmp_path: Path, limit_s: float) -> None:
    secret = "unreachable-secret-0123456789"
    store = S3Storage(S3Settings(endpoint=endpoint, access_key="AKIDUNREACH", secret_key=secret, secure=False),
                      timeout=1, retries=1)
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for call in (lambda: store.fetch(ObjectRef("masters", "a.wav"), tmp_path / "a"),
                 lambda: store.put_file(source, ObjectRef("media-out", "x"), content_type="x/y")):
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            call()
        assert time.monotonic() - started < limit_s  # a hang caught, not a speed measured
        assert not info.value.missing
        assert secret not in str(info.value)


def test_closed_port_fails_promptly(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _fails_promptly(f"127.0.0.1:{port}", tmp_path, limit_s=30)


def test_silent_server_times_out_promptly(tmp_path: Path) -> None:
    with socket.socket() as sock:  # accepts connections (the kernel's backlog) but never answers: read timeouts
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        # 1 s timeouts, one retry: a few seconds, against the 4 x 60 s the default timeouts and retries would take
        _fails_promptly(f"127.0.0.1:{sock.getsockname()[1]}", tmp_path, limit_s=30)


def test_secrets_stay_out_of_errors_and_reprs(s3_server: Any, tmp_path: Path) -> None:
    real = S3Storage(settings_for(s3_server))
    wrong = S3Storage(settings_for(s3_server, secret_key="wrong-secret-abcdef0123456789"))
    for store, secret in ((real, s3_server.secret_key), (wrong, "wrong-secret-abcdef0123456789")):
        assert secret not in repr(store) and s3_server.access_key not in repr(store)
        assert secret not in repr(settings_for(s3_server, secret_key=secret))
    with pytest.raises(StorageError) as info:
        wrong.fetch(ObjectRef("masters", "any.wav"), tmp_path / "x")
    assert not info.value.missing
    assert "AccessDenied" in str(info.value) or "SignatureDoesNotMatch" in str(info.value)
    message = f"{info.value} {info.value!r} {info.value.__cause__!r}"
    assert "wrong-secret" not in message and s3_server.secret_key not in message
    with pytest.raises(StorageError) as info:
        real.fetch(ObjectRef("masters", "nothing-here.wav"), tmp_path / "x")
    assert s3_server.secret_key not in f"{info.value} {info.value.__cause__!r}"


def test_cli_processes_an_s3_master_and_publishes_to_s3(s3_server: Any, tmp_path: Path) -> None:
    """The real CLI: fetch the master from ``masters``, publish the HLS ladder to ``media-out`` (created lazily
    by the storage if missing), master playlist last."""
    master = make_media(tmp_path / "tone.flac", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4")
    client = s3_server.client()
    client.fput_object("masters", "e2e/tone.flac", str(master), content_type="audio/flac")
    env = {**os.environ, "MEDIAWORKER_HOME": str(tmp_path / "home"), **s3_server.env}
    proc = subprocess.run(
        [MEDIAWORKER, "process", "s3://masters/e2e/tone.flac", "--json", "--asset-id", "s3-test"],
        capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["hls"]["master"].startswith("s3://media-out/hls/s3-test/"), doc["hls"]
    master_key = doc["hls"]["master"].removeprefix("s3://media-out/")
    assert master_key.endswith("master.m3u8")
    prefix = master_key.rsplit("/", 1)[0] + "/"
    objects = {o.object_name: o for o in client.list_objects("media-out", prefix=prefix, recursive=True)}
    assert master_key in objects and len(objects) >= 3, sorted(objects)
    newest_other = max(o.last_modified for k, o in objects.items() if k != master_key)
    assert objects[master_key].last_modified >= newest_other
    assert client.stat_object("media-out", master_key).content_type == "application/vnd.apple.mpegurl"
    assert not (tmp_path / "home" / "objects").exists()  # nothing went to the embedded store
