"""The S3 (MinIO) backend of :class:`~pipelines.storage.Storage`, on the ``minio`` client.

Keys are validated before any request; masters are streamed to disk in 1 MiB chunks and hashed on the way;
uploads go through ``fput_object`` (multipart above one part). Every client or transport failure becomes a
``StorageError`` whose message names the object but never the credentials. With ``S3Settings.sse`` every
write asks for server-side encryption (SSE-S3 or SSE-KMS); ``ca_bundle`` names the authorities that the
server's TLS certificate is verified against (``secure=True``; the certificate is always verified).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import hashlib
from pathlib import Path
import re
from typing import TypeVar

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error
from minio.sse import Sse, SseKMS, SseS3
import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util import Retry, Timeout

from pipelines.config import S3Settings
from pipelines.errors import ConfigError, MediaError, StorageError
from pipelines.privacy import redact
from pipelines.storage import ObjectRef, SourceVersion, validate_bucket, validate_key

PART_SIZE = 16 << 20
_CHUNK = 1 << 20
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket"})
_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_FAILURES = (MinioException, HTTPError, OSError, ValueError)
T = TypeVar("T")


@dataclass(frozen=True)
class ObjectStat:
    """What a HEAD request tells about an object (``version_id`` is ``None`` on an unversioned bucket)."""

    size: int
    etag: str | None
    version_id: str | None
    content_type: str | None


class S3Storage:
    """Objects on an S3 API server. Output buckets are created on first write (checked once per instance)."""

    def __init__(
        self, settings: S3Settings, *, timeout: float = 60.0, retries: int = 3,
        http_client: urllib3.PoolManager | None = None,
    ) -> None:
        """``timeout`` bounds each connect and each socket read (not a whole transfer); ``retries`` counts
        connection failures and 5xx answers retried by urllib3. ``http_client`` replaces both. Raises
        ``ConfigError`` for an endpoint that is not ``host[:port]``."""
        self._endpoint = settings.endpoint
        self._secure = settings.secure
        self._secrets = (settings.secret_key,)
        self._buckets: set[str] = set()
        self._sse = server_side_encryption(settings)
        http = http_client or urllib3.PoolManager(
            timeout=Timeout(connect=timeout, read=timeout), maxsize=10, cert_reqs="CERT_REQUIRED",
            ca_certs=settings.ca_bundle,
            retries=Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        try:
            self._client = Minio(
                settings.endpoint, access_key=settings.access_key, secret_key=settings.secret_key,
                secure=settings.secure, region=settings.region, http_client=http,
            )
        except ValueError as exc:  # e.g. "http://host:9000": minio wants host[:port] and the ``secure`` flag
            raise ConfigError(f"S3 endpoint {settings.endpoint!r} is not host[:port]: {exc}") from None

    def __repr__(self) -> str:
        return f"S3Storage(endpoint={self._endpoint!r}, secure={self._secure})"

    def fetch(self, ref: ObjectRef, dest: Path, *, version: SourceVersion | None = None) -> str:
        """Stream the object into ``dest`` in 1 MiB chunks; return the SHA-256 of its bytes (hex).

        With ``version``: its ``version_id`` is the one fetched, and its ``etag`` must be the ETag of what the
        server sent — the bytes of one GET, so the check and the copy are of the same version. Raises
        ``MediaError`` (``source_replaced``) when it is not."""
        bucket, key = _checked(ref)
        version = version or SourceVersion()

        def download() -> str:
            digest = hashlib.sha256()
            response = self._client.get_object(bucket, key, version_id=version.version_id)
            try:
                sent = _bare_etag(response.headers.get("ETag"))
                if version.etag and sent and sent != _bare_etag(version.etag):
                    raise MediaError(
                        "source_replaced",
                        f"{ref.uri} was replaced after its upload was announced (ETag {sent}, announced "
                        f"{_bare_etag(version.etag)}); the newer upload is processed by its own job",
                    )
                with open(dest, "wb") as writer:
                    for chunk in response.stream(_CHUNK):
                        digest.update(chunk)
                        writer.write(chunk)
            except BaseException:
                dest.unlink(missing_ok=True)  # no partial master left behind
                raise
            finally:
                response.close()
                response.release_conn()
            return digest.hexdigest()

        return self._call(f"read {ref.uri}", download)

    def put_file(self, path: Path, ref: ObjectRef, *, content_type: str) -> None:
        """Upload the local file ``path`` as ``ref`` with ``content_type``, creating the bucket if missing."""
        bucket, key = _checked(ref)
        self.ensure_bucket(bucket)
        self._call(f"write {ref.uri}", lambda: self._client.fput_object(
            bucket, key, str(path), content_type=content_type, part_size=PART_SIZE, sse=self._sse))

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under the folder ``prefix``; return how many were deleted (0 if no bucket)."""
        folder = validate_key(prefix.rstrip("/")) + "/"
        validate_bucket(bucket)

        def delete() -> int:
            names = [o.object_name for o in self._client.list_objects(bucket, prefix=folder, recursive=True)]
            errors = list(self._client.remove_objects(bucket, [DeleteObject(n) for n in names if n]))
            if errors:
                raise StorageError(f"could not delete {len(errors)} objects under s3://{bucket}/{folder}")
            return len(names)

        try:
            return self._call(f"delete s3://{bucket}/{folder}", delete)
        except StorageError as exc:
            if exc.missing:
                return 0
            raise

    def uri(self, ref: ObjectRef) -> str:
        """``s3://bucket/key``."""
        _checked(ref)
        return ref.uri

    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` unless it exists (another writer creating it at the same time is fine)."""
        if validate_bucket(bucket) in self._buckets:
            return

        def create() -> None:
            try:
                if self._client.bucket_exists(bucket):
                    return
            except InvalidResponseError as exc:  # a server answering errors as text/xml (rclone)
                if _code(exc) != "NoSuchBucket":
                    raise
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code not in _EXISTS:
                    raise

        self._call(f"create bucket {bucket}", create)
        self._buckets.add(bucket)

    def stat(self, ref: ObjectRef) -> ObjectStat:
        """Size, ETag, version and content type of the object (one HEAD request)."""
        bucket, key = _checked(ref)
        info = self._call(f"stat {ref.uri}", lambda: self._client.stat_object(bucket, key))
        return ObjectStat(info.size or 0, info.etag, info.version_id, info.content_type)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; translate client and transport failures into ``StorageError``."""
        try:
            return action()
        except _FAILURES as exc:
            code = _code(exc)
            if isinstance(exc, S3Error):
                detail = f"{code}: {exc.message}"
            elif isinstance(exc, InvalidResponseError):  # the body is kept out: only its code and status
                status = re.search(r"Response code: (\d+)", str(exc))
                detail = f"{code or 'unreadable answer'} (HTTP {status.group(1) if status else '?'})"
            else:
                detail = f"{type(exc).__name__}: {exc}"
            detail = redact(detail, self._secrets)
            raise StorageError(f"cannot {what}: {detail}", missing=code in _MISSING) from exc


def server_side_encryption(settings: S3Settings) -> Sse | None:
    """The encryption every write asks the server for: SSE-S3 (``AES256``), SSE-KMS with the key id, or none."""
    if settings.sse == "AES256":
        return SseS3()
    if settings.sse == "aws:kms":
        if not settings.sse_kms_key_id:
            raise ConfigError("SSE-KMS needs a key id (MEDIAWORKER_S3_SSE_KMS_KEY_ID)")
        return SseKMS(settings.sse_kms_key_id, {})
    if settings.sse is not None:
        raise ConfigError(f"unknown server-side encryption {settings.sse!r}: AES256 or aws:kms")
    return None


def _bare_etag(etag: str | None) -> str | None:
    """An ETag without its quotes, lower-cased: as headers send it and as notifications write it."""
    return etag.strip().strip('"').lower() or None if etag else None


def _checked(ref: ObjectRef) -> tuple[str, str]:
    """``(bucket, key)`` once both are validated; raises ``InvalidKeyError``."""
    return validate_bucket(ref.bucket), validate_key(ref.key)


def _code(exc: BaseException) -> str | None:
    """The S3 error code: from ``S3Error``, or parsed from the body minio could not read as XML."""
    if isinstance(exc, S3Error):
        return exc.code
    if isinstance(exc, InvalidResponseError):
        found = re.search(r"<Code>([^<]+)</Code>", str(exc))
        return found.group(1) if found else ("NoSuchKey" if "Response code: 404," in str(exc) else None)
    return None
