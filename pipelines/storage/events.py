"""Bucket notifications → new masters: MinIO's S3 event JSON, reduced to the uploads that should become jobs.

Only a new object in the masters bucket is a new master: ``s3:ObjectCreated:Put``, ``…:Post``, ``…:Copy``
and ``…:CompleteMultipartUpload``. MinIO also reports tagging, retention and legal-hold changes as
``s3:ObjectCreated:*`` events; those, every other event, and every event of another bucket (our own output
bucket included, so our writes never retrigger work) are ignored. The buckets that ``MEDIAWORKER_SOURCE_BUCKETS``
adds to the masters bucket are ones a task may *read* (clips to match, say), not ones whose uploads start jobs:
their events are ignored too. The address of a new master passes the same check as a task's source
(:func:`pipelines.storage.sources.check_object`), so a job made from a notification is never refused at the
task's door. Each new master gets a job id derived from
its bucket, key and version, so a notification delivered twice enqueues the same job twice, which the job
claim then runs once.

Notifications also say who uploaded (``userIdentity``, ``principalId``, ``sourceIPAddress``, the client's
host and agent). None of it is kept in clear: :func:`minimal_event` reduces a notification to the fields a job
needs before it travels further (task arguments, logs), with the uploader as a keyed pseudonym
(:func:`pipelines.privacy.pseudonym`) or, without a key, not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
from typing import Any
from urllib.parse import unquote_plus
import uuid

from pipelines.errors import InvalidRequest
from pipelines.ids import validate_asset_id
from pipelines.privacy import is_pseudonym, pseudonym
from pipelines.storage import ObjectRef
from pipelines.storage.sources import SourceRule, check_object

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
    uploader: str | None = None
    """The uploader's pseudonym (``hmac-sha256:…``), or ``None`` without an identity key."""
    version_id: str | None = None
    etag: str | None = None
    """The object's version id (a versioned bucket) and ETag as announced: the version the job must process."""


def parse_bucket_event(
    payload: bytes | str, *, masters_bucket: str, identity_key: bytes | None = None,
) -> tuple[list[NewMaster], list[str]]:
    """The new masters an event announces, and why any other record in it was ignored.

    Raises ``EventError`` when the payload is not JSON with a ``Records`` list, ``ConfigError`` when
    ``masters_bucket`` is not a bucket name.
    """
    uploads = SourceRule(frozenset({masters_bucket}))
    masters: list[NewMaster] = []
    ignored: list[str] = []
    for record in _records(payload):
        try:
            master = _new_master(record, uploads, identity_key)
        except _Ignored as why:
            ignored.append(str(why))
            continue
        masters.append(master)
    return masters, ignored


class _Ignored(Exception):
    pass


def minimal_event(payload: bytes | str, *, identity_key: bytes | None) -> str:
    """The notification as JSON with only what a job needs: each record's event name, bucket name, object
    key, size, version, ETag, sequencer and asset-id metadata, and the uploader's pseudonym when there is an
    identity key. Every identity (principal ids, IP addresses, client host and agent) and all other metadata
    are left out. :func:`parse_bucket_event` finds the same masters in it as in the full notification.

    Raises ``EventError`` as :func:`parse_bucket_event` does.
    """
    return json.dumps({"Records": [_minimal_record(record, identity_key) for record in _records(payload)]})


def _records(payload: bytes | str) -> list[Any]:
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError("event larger than 1 MiB")
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"event is not JSON: {exc}") from None
    except RecursionError:
        raise EventError("event is nested too deeply") from None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise EventError("event has no Records list")
    return records


def _minimal_record(record: Any, identity_key: bytes | None) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        return None
    s3 = _object(record.get("s3"))
    obj = _object(s3.get("object"))
    # Only scalars are kept: a structured value where a name or key belongs could carry anything.
    kept_object: dict[str, Any] = {
        name: obj[name] for name in ("key", "size", "versionId", "eTag", "sequencer") if _is_scalar(obj.get(name))
    }
    metadata = obj.get("userMetadata")
    if isinstance(metadata, dict):
        kept_object["userMetadata"] = {k: v for k, v in metadata.items() if _is_asset_id_key(k) and _is_scalar(v)}
    bucket = _object(s3.get("bucket")).get("name")
    minimal: dict[str, Any] = {
        "eventName": record.get("eventName") if isinstance(record.get("eventName"), str) else None,
        "s3": {"bucket": {"name": bucket if _is_scalar(bucket) else None}, "object": kept_object},
    }
    uploader = _uploader(record, identity_key)
    if uploader is not None:
        minimal["uploader"] = uploader
    return minimal


def _uploader(record: dict[str, Any], identity_key: bytes | None) -> str | None:
    """The pseudonym of the record's principal (kept as it is when the record is already minimal)."""
    if is_pseudonym(record.get("uploader")):
        return str(record["uploader"])
    principal = _object(record.get("userIdentity")).get("principalId")
    return pseudonym(principal, identity_key) if isinstance(principal, (str, int)) else None


def _is_scalar(value: Any) -> bool:
    return value is not None and isinstance(value, (str, int, float, bool))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_asset_id_key(name: Any) -> bool:
    return str(name).lower() in {"x-amz-meta-asset-id", "asset-id"}


def _new_master(record: Any, uploads: SourceRule, identity_key: bytes | None) -> NewMaster:
    if not isinstance(record, dict):
        raise _Ignored("record is not an object")
    name = record.get("eventName")
    if not isinstance(name, str) or name not in NEW_OBJECT_EVENTS:
        raise _Ignored(f"{name!r:.100}: not a new object")
    s3 = _object(record.get("s3"))
    bucket = _object(s3.get("bucket")).get("name")
    obj = _object(s3.get("object"))
    if not isinstance(bucket, str) or not uploads.allows(bucket):
        raise _Ignored(f"{name} in bucket {bucket!r:.100}: not the masters bucket")
    key = obj.get("key")
    if not isinstance(key, str):
        raise _Ignored(f"{name}: the object has no key")
    try:
        ref = check_object(bucket, unquote_plus(key), uploads, field="key")
    except InvalidRequest as exc:
        raise _Ignored(f"{name}: unusable key ({exc.message})") from None
    version = next((obj[n] for n in ("versionId", "eTag", "sequencer") if _is_scalar(obj.get(n)) and obj[n]), None)
    size = obj.get("size")
    identity = f"{ref.uri}@{version or ''}"
    return NewMaster(
        ref=ref,
        size=size if isinstance(size, int) else None,
        version=str(version) if version else None,
        asset_id=_asset_id(obj.get("userMetadata"), ref),
        job_id=str(uuid.uuid5(_JOB_NAMESPACE, identity)),
        uploader=_uploader(record, identity_key),
        version_id=_text(obj.get("versionId")),
        etag=_text(obj.get("eTag")),
    )


def _text(value: Any) -> str | None:
    """A non-empty string field of the event, else ``None`` (a hostile event may put anything there)."""
    return value if isinstance(value, str) and value and len(value) <= 1024 else None


def _asset_id(metadata: Any, ref: ObjectRef) -> str:
    """The uploader's ``X-Amz-Meta-Asset-Id`` when it is a valid id, else one derived from the object's address."""
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if _is_asset_id_key(key):
                try:
                    return validate_asset_id(str(value))
                except ValueError:
                    break
    return "key-" + hashlib.sha256(ref.uri.encode()).hexdigest()[:16]
