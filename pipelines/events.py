"""Bucket notifications → new masters: MinIO's S3 event JSON, reduced to the uploads that should become jobs.

Only a new object in the masters bucket is a new master: ``s3:ObjectCreated:Put``, ``…:Post``, ``…:Copy``
and ``…:CompleteMultipartUpload``. MinIO also reports tagging, retention and legal-hold changes as
``s3:ObjectCreated:*`` events; those, every other event, and every event of another bucket (our own output
bucket included, so our writes never retrigger work) are ignored. Each new master gets a job id derived from
its bucket, key and version, so a notification delivered twice enqueues the same job twice, which the job
claim then runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
from typing import Any
from urllib.parse import unquote_plus
import uuid

from pipelines.ids import validate_asset_id
from pipelines.storage import InvalidKeyError, ObjectRef, validate_bucket, validate_key

NEW_OBJECT_EVENTS = frozenset({
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
})
_JOB_NAMESPACE = uuid.UUID("0b7d3c3e-6f1e-4d55-9c2e-7c1f3a8e5a10")
MAX_EVENT_BYTES = 1 << 20


class EventError(ValueError):
    """A notification that is not MinIO's S3 event JSON."""


@dataclass(frozen=True)
class NewMaster:
    """An upload that should become a job."""

    ref: ObjectRef
    size: int | None
    version: str | None
    """The object's version id, else its ETag, else the event sequencer: what tells two uploads apart."""
    asset_id: str
    job_id: str


def parse_bucket_event(payload: bytes | str, *, masters_bucket: str) -> tuple[list[NewMaster], list[str]]:
    """The new masters an event announces, and why any other record in it was ignored.

    Raises ``EventError`` when the payload is not JSON with a ``Records`` list.
    """
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError("event larger than 1 MiB")
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"event is not JSON: {exc}") from None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise EventError("event has no Records list")
    masters: list[NewMaster] = []
    ignored: list[str] = []
    for record in records:
        try:
            master = _new_master(record, masters_bucket)
        except _Ignored as why:
            ignored.append(str(why))
            continue
        masters.append(master)
    return masters, ignored


class _Ignored(Exception):
    pass


def _new_master(record: Any, masters_bucket: str) -> NewMaster:
    if not isinstance(record, dict):
        raise _Ignored("record is not an object")
    name = record.get("eventName")
    if name not in NEW_OBJECT_EVENTS:
        raise _Ignored(f"{name}: not a new object")
    s3 = record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    if bucket != masters_bucket:
        raise _Ignored(f"{name} in bucket {bucket!r}: not the masters bucket")
    try:
        ref = ObjectRef(validate_bucket(bucket), validate_key(unquote_plus(str(obj.get("key", "")))))
    except InvalidKeyError as exc:
        raise _Ignored(f"{name}: unusable key ({exc})") from None
    version = obj.get("versionId") or obj.get("eTag") or obj.get("sequencer") or None
    size = obj.get("size")
    identity = f"{ref.uri}@{version or ''}"
    return NewMaster(
        ref=ref,
        size=size if isinstance(size, int) else None,
        version=str(version) if version else None,
        asset_id=_asset_id(obj.get("userMetadata"), ref),
        job_id=str(uuid.uuid5(_JOB_NAMESPACE, identity)),
    )


def _asset_id(metadata: Any, ref: ObjectRef) -> str:
    """The uploader's ``X-Amz-Meta-Asset-Id`` when it is a valid id, else one derived from the object's address."""
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if str(key).lower() in {"x-amz-meta-asset-id", "asset-id"}:
                try:
                    return validate_asset_id(str(value))
                except ValueError:
                    break
    return "key-" + hashlib.sha256(ref.uri.encode()).hexdigest()[:16]
