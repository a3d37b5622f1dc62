"""Object storage behind one small Protocol: a local folder for the embedded default (:mod:`pipelines.storage.local`),
S3 (MinIO) in production (:mod:`pipelines.storage.s3`).

Object keys are validated before any backend sees them (no ``..`` segment, no absolute path, no control or NUL
character, at most 1,024 bytes) and are never joined onto a local path unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
from pathlib import Path
from typing import Protocol

from pipelines.errors import MediaError, StorageError

MAX_KEY_BYTES = 1024
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_COPY_CHUNK = 1 << 20


class InvalidKeyError(StorageError):
    """An object key (or bucket name) that could escape its bucket or confuse a reader."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> ObjectRef:
    """``s3://bucket/key`` → :class:`ObjectRef`, with the key validated. Raises ``InvalidKeyError``."""
    if not uri.startswith("s3://"):
        raise InvalidKeyError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return ObjectRef(validate_bucket(bucket), validate_key(key))


def validate_bucket(bucket: str) -> str:
    if not (3 <= len(bucket) <= 63) or not all(c in _BUCKET_CHARS for c in bucket):
        raise InvalidKeyError(f"invalid bucket name {bucket!r}")
    return bucket


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key; raise ``InvalidKeyError`` otherwise."""
    if not key:
        raise InvalidKeyError("empty object key")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key longer than {MAX_KEY_BYTES} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidKeyError(f"object key contains a control character: {key!r}")
    if key.startswith("/") or "\\" in key:
        raise InvalidKeyError(f"object key must be relative and use '/': {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"object key has an empty, '.' or '..' segment: {key!r}")
    return key


@dataclass(frozen=True)
class SourceVersion:
    """The version of a master that its upload notification announced: the job processes that one or none.

    ``version_id`` (a versioned bucket) selects it even after a newer upload; ``etag`` alone can only tell that
    the object has been replaced since (the newer upload then has a job of its own)."""

    version_id: str | None = None
    etag: str | None = None


class Storage(Protocol):
    """What the job needs from an object store. Every method raises ``StorageError`` on failure."""

    def fetch(self, ref: ObjectRef, dest: Path, *, version: SourceVersion | None = None) -> str:
        """Copy the object (``version`` of it, if given) to the local file ``dest``; return the SHA-256 of its
        bytes (hex). Raises ``MediaError`` (``source_replaced``) when the object is no longer that version."""
        ...

    def put_file(self, path: Path, ref: ObjectRef, *, content_type: str) -> None: ...

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""
        ...

    def uri(self, ref: ObjectRef) -> str:
        """Where a client finds the object: a local path for the embedded store, ``s3://…`` otherwise."""
        ...


def sha256_of(path: Path) -> str:
    """The SHA-256 (hex) of a local file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_with_digest(source: Path, dest: Path) -> str:
    """Copy ``source`` to ``dest`` in chunks and return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(dest, "wb") as writer:
        while chunk := reader.read(_COPY_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def fetch_source(source: str, dest: Path, storage: Storage, *, version: SourceVersion | None = None) -> str:
    """Copy a master or clip (a local path or ``s3://bucket/key``, at ``version`` if given) to the local file
    ``dest``; return its SHA-256.

    Raises ``MediaError`` (``source_not_found``, ``invalid_source``, ``source_replaced``) for a source that is
    not there, not a valid address or no longer the announced version, ``StorageError`` when the store fails
    or ``dest`` cannot be written (its ``code`` tells a full disk, ``no_space``, from other failures).
    """
    if source.startswith("s3://"):
        try:
            ref = parse_s3_uri(source)
        except InvalidKeyError as exc:
            raise MediaError("invalid_source", f"the source is not a valid object address: {exc}") from exc
        try:
            return storage.fetch(ref, dest, version=version)
        except StorageError as exc:
            if exc.missing:  # permanent: retrying a fetch of an object that is not there cannot help
                raise MediaError("source_not_found", f"no object {ref.uri}") from exc
            raise
    path = Path(source)
    if not path.is_file():
        raise MediaError("source_not_found", f"no such file: {source}")
    try:
        return copy_with_digest(path, dest)
    except OSError as exc:  # the work folder full or read-only, more often than the source unreadable
        raise StorageError(f"cannot copy the source into the work folder: {exc.strerror or exc}") from exc
