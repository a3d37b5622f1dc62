"""The embedded default's object store: buckets as folders under one root, for ``make demo`` and tests.

It implements :class:`~pipelines.storage.Storage` with the same meaning as the S3 backend: keys validated before
they touch a path, writes atomic (a temporary file, then a rename), every failure a ``StorageError``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
import shutil
import tempfile

from pipelines.errors import StorageError
from pipelines.storage import ObjectRef, SourceVersion, copy_with_digest, validate_bucket, validate_key


class LocalStorage:
    """Buckets as folders under ``root``; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, ref: ObjectRef) -> Path:
        return self.root / validate_bucket(ref.bucket) / validate_key(ref.key)

    def fetch(self, ref: ObjectRef, dest: Path, *, version: SourceVersion | None = None) -> str:
        """As :meth:`Storage.fetch`; the embedded store keeps one version of each object and no ETag, so
        ``version`` is not checked (no notification announces its objects)."""
        source = self._path(ref)
        try:
            return copy_with_digest(source, dest)
        except FileNotFoundError:
            raise StorageError(f"no object {ref.uri}", missing=True) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # a valid key no file system here can hold: no such object
                raise StorageError(f"no object {ref.uri}", missing=True) from None
            raise StorageError(f"cannot read {ref.uri}: {exc}") from exc

    def put_file(self, path: Path, ref: ObjectRef, *, content_type: str) -> None:
        target = self._path(ref)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"cannot write {ref.uri}: {exc}") from exc

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """As :meth:`Storage.delete_prefix`: the objects under the folder ``prefix``, as on S3 (an object named
        ``prefix`` itself is not under it). A prefix no file system here can hold has none.

        Raises ``StorageError`` (the file system's reason in the message) when the folder cannot be read or
        removed; some of its objects may be gone then."""
        base = self.root / validate_bucket(bucket) / validate_key(prefix.rstrip("/"))
        try:
            if not base.is_dir():
                return 0
            count = sum(1 for p in base.rglob("*") if p.is_file())
            shutil.rmtree(base)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # as in fetch: no such folder can exist here
                return 0
            raise StorageError(f"cannot delete under s3://{bucket}/{prefix.rstrip('/')}/: {exc}") from exc
        return count

    def uri(self, ref: ObjectRef) -> str:
        return str(self._path(ref))
