"""The door of every task: task arguments → typed requests, and the one rule of what a source may be.

Pure tests of ``pipelines.requests`` and ``pipelines.storage.sources``; ``tests/test_task_door.py`` sends the same
messages to a real worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.errors import ConfigError, InvalidRequest, MediaError, shown
from pipelines.requests import (
    REFUSED_ASSET_ID,
    ClipRequest,
    ProcessRequest,
    parse_clip_request,
    parse_event_request,
    parse_process_request,
    refused_job,
)
from pipelines.storage import ObjectRef, SourceVersion, fetch_source
from pipelines.storage.events import parse_bucket_event
from pipelines.storage.local import LocalStorage
from pipelines.storage.sources import MAX_SOURCE_CHARS, SourceRule, check_source
from tests.test_events import _event

RULE = SourceRule(frozenset({"masters", "clips"}))
JOB = "0b7d3c3e-6f1e-4d55-9c2e-7c1f3a8e5a10"
HUGE = "s3://masters/" + "k" * (20 << 20)
MAX_MESSAGE = 300


def _process(**kwargs: Any) -> ProcessRequest:
    return parse_process_request((), kwargs, job_id=JOB, sources=RULE)


def _refusal(call: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        call()
    refused = info.value
    assert len(refused.message) <= MAX_MESSAGE, refused.message
    return refused


def test_a_valid_message_is_a_typed_request() -> None:
    request = _process(asset_id="track-42", source="s3://masters/uploads/a b.wav", version_id="v1", etag='"abc"')
    assert request == ProcessRequest(job_id=JOB, asset_id="track-42", source=ObjectRef("masters", "uploads/a b.wav"),
                                     version=SourceVersion(version_id="v1", etag='"abc"'))
    # What workers.enqueue sends when no notification announced a version.
    assert _process(asset_id="a", source="s3://masters/x", version_id=None, etag="").version == SourceVersion()
    assert parse_clip_request((), {"source": "s3://clips/c.wav"}, sources=RULE) == ClipRequest(
        source=ObjectRef("clips", "c.wav"))


@pytest.mark.parametrize(("kwargs", "field", "code"), [
    ({"asset_id": "a", "source": "/tmp/some/file.flac"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "/proc/self/environ"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "file:///etc/passwd"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "S3://masters/x.ogg"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "s3://other/x.ogg"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "s3://media-out/hls/a/master.m3u8"}, "source", "invalid_request"),
    ({"asset_id": "a", "source": 123}, "source", "invalid_request"),
    ({"asset_id": "a", "source": ["s3://masters/x.ogg"]}, "source", "invalid_request"),
    ({"asset_id": "a", "source": None}, "source", "invalid_request"),
    ({"asset_id": "a", "source": HUGE}, "source", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/uploads/../../etc/passwd"}, "source", "invalid_source"),
    ({"asset_id": "a", "source": "s3://masters/a\nb.wav"}, "source", "invalid_source"),
    ({"asset_id": "a", "source": "s3://masters/"}, "source", "invalid_source"),
    ({"asset_id": "a", "source": "s3://masters/x", "version_id": {"x": [1]}}, "version_id", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/x", "version_id": "v" * 1025}, "version_id", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/x", "etag": "a\x00b"}, "etag", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/x", "etag": 7}, "etag", "invalid_request"),
    ({"asset_id": "x" * 10_000, "source": "s3://masters/x"}, "asset_id", "invalid_request"),
    ({"asset_id": "../etc", "source": "s3://masters/x"}, "asset_id", "invalid_request"),
    ({"asset_id": 42, "source": "s3://masters/x"}, "asset_id", "invalid_request"),
    ({"asset_id": "a"}, "source", "invalid_request"),
    ({"source": "s3://masters/x"}, "asset_id", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/x", "sorce": "s3://masters/y"}, "sorce", "invalid_request"),
    ({"asset_id": "a", "source": "s3://masters/x", "options": {"protection": "cenc"}}, "options", "invalid_request"),
])
def test_a_message_that_is_not_a_request_is_refused_with_a_short_message(
    kwargs: dict[str, Any], field: str, code: str
) -> None:
    refused = _refusal(lambda: _process(**kwargs))
    assert (refused.field, refused.code) == (field, code), refused.message
    assert "k" * 100 not in refused.message and "x" * 100 not in refused.message  # never echoed whole


def test_the_message_says_what_was_wrong() -> None:
    assert "local paths" in _refusal(lambda: _process(asset_id="a", source="/etc/passwd")).message
    other = _refusal(lambda: _process(asset_id="a", source="s3://other/x.ogg")).message
    assert "'other'" in other and "s3://masters/" in other and "s3://clips/" in other
    assert str(len(HUGE)) in _refusal(lambda: _process(asset_id="a", source=HUGE)).message  # how long, not what
    assert "list" in _refusal(lambda: _process(asset_id="a", source=["s3://masters/x"])).message
    many = {f"extra{n}": n for n in range(1000)}
    assert "and 997 more" in _refusal(lambda: _process(asset_id="a", source="s3://masters/x", **many)).message


def test_only_keyword_arguments_are_taken() -> None:
    refused = _refusal(lambda: parse_process_request(("a", "s3://masters/x"), {}, job_id=JOB, sources=RULE))
    assert "keyword arguments only" in refused.message
    assert _refusal(lambda: parse_clip_request(("s3://masters/x",), {}, sources=RULE)).code == "invalid_request"


@pytest.mark.parametrize("job_id", ["x" * 37, "", None, "a/b", "job\n1", 12])
def test_a_task_id_that_cannot_key_a_job_row_is_refused(job_id: object) -> None:
    refused = _refusal(lambda: parse_process_request((), {"asset_id": "a", "source": "s3://masters/x"},
                                                     job_id=job_id, sources=RULE))
    assert refused.field == "job_id"
    assert refused_job(job_id, {"asset_id": "a"}) is None  # nothing can record it but the log


def test_the_row_of_a_refused_request_is_bounded_and_safe() -> None:
    row = refused_job(JOB, {"asset_id": "x" * 10_000, "source": HUGE})
    assert row is not None and row.job_id == JOB
    assert row.asset_id == REFUSED_ASSET_ID and len(row.source) <= 200
    assert refused_job(JOB, {"source": ["s3://masters/a"]}) == refused_job(JOB, {"asset_id": 1, "source": ["s3://masters/a"]})
    kept = refused_job(JOB, {"asset_id": "track-1", "source": "/proc/self/environ"})
    assert kept is not None and (kept.asset_id, kept.source) == ("track-1", "/proc/self/environ")
    binary = refused_job(JOB, {"asset_id": "track-1", "source": "a\x00\x1b[31m"})
    assert binary is not None and binary.source.isprintable() and "\\x00" in binary.source


def test_clip_and_event_requests() -> None:
    assert _refusal(lambda: parse_clip_request((), {"source": "/etc/passwd"}, sources=RULE)).field == "source"
    assert _refusal(lambda: parse_clip_request((), {"source": "s3://masters/x", "top": 3}, sources=RULE)).field == "top"
    assert parse_event_request((), {"payload": "{}"}).payload == "{}"
    assert _refusal(lambda: parse_event_request((), {"payload": ["x"]})).field == "payload"
    assert _refusal(lambda: parse_event_request((), {"payload": "x" * (2 << 20)})).field == "payload"


def test_the_source_rule_comes_from_the_settings(tmp_path: Path) -> None:
    plain = SourceRule.of(Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path)}))
    assert plain.buckets == {"masters"}
    with pytest.raises(InvalidRequest):
        check_source("s3://clips/c.wav", plain)
    more = Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path), "MEDIAWORKER_SOURCE_BUCKETS": " clips, archive ,"})
    assert SourceRule.of(more).buckets == {"masters", "clips", "archive"}
    assert check_source("s3://archive/a.wav", SourceRule.of(more)) == ObjectRef("archive", "a.wav")
    with pytest.raises(ConfigError, match="output bucket"):
        Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path), "MEDIAWORKER_SOURCE_BUCKETS": "clips,media-out"})
    with pytest.raises(ConfigError, match="not a bucket name"):
        SourceRule.of(Settings.from_env({"MEDIAWORKER_HOME": str(tmp_path), "MEDIAWORKER_SOURCE_BUCKETS": "Bad_Name"}))


def test_a_long_list_of_buckets_keeps_the_message_short() -> None:
    rule = SourceRule(frozenset({"masters", *(f"{'b' * 60}{n:03d}" for n in range(100))}))
    assert len(_refusal(lambda: check_source("/etc/passwd", rule)).message) <= MAX_MESSAGE
    assert len(_refusal(lambda: check_source("s3://other/x", rule)).message) <= MAX_MESSAGE


def test_the_longest_valid_address_is_within_the_length_limit() -> None:
    longest = "s3://" + "b" * 63 + "/" + "k" * 1024
    assert len(longest) < MAX_SOURCE_CHARS
    assert check_source(longest, SourceRule(frozenset({"b" * 63}))) == ObjectRef("b" * 63, "k" * 1024)


@pytest.mark.parametrize("key", ["uploads/a.flac", "uploads/../x.flac", "a%0Ab.flac", "k" * 1025])
def test_notifications_and_tasks_judge_a_masters_key_alike(key: str) -> None:
    """A notification makes a job only from an address the task's door then accepts, never one it refuses."""
    masters, _ = parse_bucket_event(json.dumps(_event(s3__object__key=key)), masters_bucket="masters")
    from urllib.parse import unquote_plus

    try:
        check_source(f"s3://masters/{unquote_plus(key)}", RULE)
        accepted = True
    except InvalidRequest:
        accepted = False
    assert bool(masters) == accepted


def test_uploads_to_a_further_source_bucket_start_no_job() -> None:
    """``MEDIAWORKER_SOURCE_BUCKETS`` lists buckets a task may read, such as clips to match: not new masters."""
    masters, ignored = parse_bucket_event(json.dumps(_event(s3__bucket__name="clips")), masters_bucket="masters")
    assert masters == [] and "not the masters bucket" in ignored[0]
    huge_name = _event(s3__bucket__name="b" * 100_000)
    assert len(parse_bucket_event(json.dumps(huge_name), masters_bucket="masters")[1][0]) < MAX_MESSAGE


def test_a_missing_object_is_source_not_found_not_a_store_failure(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        fetch_source("s3://masters/missing.wav", tmp_path / "clip", LocalStorage(tmp_path / "objects"))
    assert info.value.code == "source_not_found" and "s3://masters/missing.wav" in info.value.message


def test_shown_is_short_printable_and_cheap() -> None:
    assert shown("s3://masters/x.ogg") == "'s3://masters/x.ogg'"
    assert len(shown(HUGE)) <= 60 and shown(HUGE).startswith("'s3://masters/kkk")
    nested: list[Any] = []
    for _ in range(500):
        nested = [nested]
    assert len(shown(nested)) <= 60
    assert shown("\x1b[2J\u202e").isprintable()
