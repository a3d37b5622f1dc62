"""MinIO bucket notifications: which events become jobs, with which ids."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.storage import ObjectRef
from pipelines.storage.events import EventError, parse_bucket_event

DATA = Path(__file__).parent / "data"


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((DATA / "minio_event_put.json").read_text())
    record = event["Records"][0]
    for path, value in changes.items():
        target = record
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return event


def test_a_put_in_the_masters_bucket_is_a_new_master() -> None:
    (master,), ignored = parse_bucket_event(json.dumps(_event()), masters_bucket="masters")
    assert ignored == []
    assert master.ref == ObjectRef("masters", "uploads/2026/My Song(1).flac")  # the key arrives URL-encoded
    assert master.asset_id == "track-0042"  # the uploader's X-Amz-Meta-Asset-Id
    assert master.size == 1048576 and master.version == "0c4c7bd0e5c7e8c4b6c5f7e3a9d2b1f0"


def test_the_same_upload_always_maps_to_the_same_job_and_a_new_version_to_a_new_one() -> None:
    first = parse_bucket_event(json.dumps(_event()), masters_bucket="masters")[0][0]
    again = parse_bucket_event(json.dumps(_event()), masters_bucket="masters")[0][0]
    replaced = parse_bucket_event(json.dumps(_event(s3__object__eTag="ffff")), masters_bucket="masters")[0][0]
    assert first.job_id == again.job_id != replaced.job_id


def test_without_an_asset_id_one_is_derived_from_the_address() -> None:
    event = _event(s3__object__userMetadata={"content-type": "audio/flac"})
    (master,), _ = parse_bucket_event(json.dumps(event), masters_bucket="masters")
    assert master.asset_id.startswith("key-") and len(master.asset_id) == 20
    bad = _event(s3__object__userMetadata={"X-Amz-Meta-Asset-Id": "../../etc"})
    assert parse_bucket_event(json.dumps(bad), masters_bucket="masters")[0][0].asset_id.startswith("key-")


@pytest.mark.parametrize(
    "changes",
    [
        {"eventName": "s3:ObjectCreated:PutTagging"},
        {"eventName": "s3:ObjectCreated:PutRetention"},
        {"eventName": "s3:ObjectCreated:PutLegalHold"},
        {"eventName": "s3:ObjectRemoved:Delete"},
        {"eventName": "s3:ObjectAccessed:Get"},
        {"s3__bucket__name": "media-out"},  # our own writes never start work
        {"s3__object__key": "..%2F..%2Fetc%2Fpasswd"},
        {"s3__object__key": "bad%00key"},
    ],
)
def test_events_that_are_not_new_masters_are_ignored(changes: dict[str, Any]) -> None:
    masters, ignored = parse_bucket_event(json.dumps(_event(**changes)), masters_bucket="masters")
    assert masters == [] and len(ignored) == 1


def test_one_event_may_carry_several_records() -> None:
    event = _event()
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "uploads%2Fother.wav"
    event["Records"].append(second)
    masters, _ = parse_bucket_event(json.dumps(event).encode(), masters_bucket="masters")
    assert [m.ref.key for m in masters] == ["uploads/2026/My Song(1).flac", "uploads/other.wav"]


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b'{"Records": "x"}', b"\xff\xfe", b"{" * (1 << 21)])
def test_payloads_that_are_not_s3_events_raise(payload: bytes) -> None:
    with pytest.raises(EventError):
        parse_bucket_event(payload, masters_bucket="masters")
