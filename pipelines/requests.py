"""Task messages → typed requests: the door every message passes before it touches the catalog or reads a byte.

Other services send tasks by name with JSON keyword arguments (``INTERFACE.md``), so whatever JSON can hold may
arrive: a number or a list where a string belongs, a 20 MB string, a local path, an argument this worker does not
know, positional arguments, a task id no job row can be keyed by. Celery checks a message's arguments against the
task's signature only where it is sent, and only by a sender that has the task registered — never a client that
sends by name — and a worker hands the task every argument as it came: a task declared with named parameters
dies of a ``TypeError`` before its first line on an unknown one, leaving no job row behind. So each task takes
``*args, **kwargs`` and hands them to a parser here, which returns a typed request, every field checked, or
raises ``InvalidRequest`` with a short message (the refused value is never echoed whole: see
:func:`pipelines.errors.shown`). The task then fails the job once with that code and never retries it.

The parsers are pure — the source rule comes in as an argument — so the HTTP API can parse its JSON bodies with
them and answer a problem document where a task fails its job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import re

from pipelines.errors import InvalidRequest, shown
from pipelines.ids import validate_asset_id
from pipelines.storage import ObjectRef, SourceVersion
from pipelines.storage.events import MAX_EVENT_BYTES
from pipelines.storage.sources import SourceRule, check_source

PROCESS_FIELDS = ("asset_id", "source", "version_id", "etag")
"""The keyword arguments of ``mediaworker.process_asset``; the first two are required."""
CLIP_FIELDS = ("source",)
"""The keyword arguments of ``mediaworker.match_clip``."""
EVENT_FIELDS = ("payload",)
"""The keyword arguments of ``mediaworker.ingest_event``."""

MAX_VERSION_ID_CHARS = 1024
"""As long as the catalog keeps it (``jobs.source_version_id``)."""
MAX_ETAG_CHARS = 128
"""As long as the catalog keeps it (``jobs.source_etag``)."""
MAX_RECORDED_SOURCE_CHARS = 200
"""How much of a refused source its job row keeps."""
REFUSED_ASSET_ID = "(invalid)"
"""The asset id of the job row of a request whose own asset id is missing or invalid. It is no valid asset id
(parentheses), so it can never be taken for a real asset's, nor become part of an object key."""

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")  # a UUID, as Celery and this project make them


@dataclass(frozen=True, kw_only=True)
class ProcessRequest:
    """``mediaworker.process_asset``: the whole job ``job_id`` for the master at ``source``, as asset ``asset_id``,
    at the ``version`` its upload notification announced (both fields ``None`` when none did)."""

    job_id: str
    asset_id: str
    source: ObjectRef
    version: SourceVersion


@dataclass(frozen=True, kw_only=True)
class ClipRequest:
    """``mediaworker.match_clip``: the match document for the clip at ``source``."""

    source: ObjectRef


@dataclass(frozen=True, kw_only=True)
class EventRequest:
    """``mediaworker.ingest_event``: one upload notification, reduced (``minimal_event``), as JSON text."""

    payload: str


@dataclass(frozen=True, kw_only=True)
class RefusedJob:
    """What the job row of a refused ``process_asset`` message records: its job id; its asset id when that is
    valid, else ``REFUSED_ASSET_ID``; and its source as at most ``MAX_RECORDED_SOURCE_CHARS`` printable
    characters (the string itself when it is that short and printable, else :func:`~pipelines.errors.shown`)."""

    job_id: str
    asset_id: str
    source: str


def parse_process_request(
    args: Sequence[object], kwargs: Mapping[str, object], *, job_id: object, sources: SourceRule
) -> ProcessRequest:
    """The request a ``process_asset`` message (its task id, positional and keyword arguments) makes.

    Raises ``InvalidRequest``: positional arguments, an unknown or missing keyword argument, a task id that is not
    a job id, an asset id that breaks the asset-id rule, a source :func:`check_source` refuses, a ``version_id``
    or ``etag`` that is not ``None`` or a printable string short enough for the catalog (an empty one counts as
    ``None``)."""
    checked_job_id = check_job_id(job_id)
    _check_arguments(args, kwargs, PROCESS_FIELDS, required=("asset_id", "source"))
    asset_id = check_asset_id(kwargs["asset_id"])
    source = check_source(kwargs["source"], sources)
    version = SourceVersion(version_id=_optional_text(kwargs.get("version_id"), "version_id", MAX_VERSION_ID_CHARS),
                            etag=_optional_text(kwargs.get("etag"), "etag", MAX_ETAG_CHARS))
    return ProcessRequest(job_id=checked_job_id, asset_id=asset_id, source=source, version=version)


def parse_clip_request(args: Sequence[object], kwargs: Mapping[str, object], *, sources: SourceRule) -> ClipRequest:
    """The request a ``match_clip`` message makes; raises ``InvalidRequest`` as :func:`parse_process_request`."""
    _check_arguments(args, kwargs, CLIP_FIELDS, required=CLIP_FIELDS)
    return ClipRequest(source=check_source(kwargs["source"], sources))


def parse_event_request(args: Sequence[object], kwargs: Mapping[str, object]) -> EventRequest:
    """The request an ``ingest_event`` message makes: a string of at most ``MAX_EVENT_BYTES`` characters (what it
    holds is ``pipelines.storage.events``' to judge). Raises ``InvalidRequest``."""
    _check_arguments(args, kwargs, EVENT_FIELDS, required=EVENT_FIELDS)
    payload = kwargs["payload"]
    if not isinstance(payload, str):
        raise InvalidRequest(f"payload must be a string (S3 event JSON), not {type(payload).__name__}",
                             field="payload")
    if len(payload) > MAX_EVENT_BYTES:
        raise InvalidRequest(f"payload is {len(payload)} characters long: at most {MAX_EVENT_BYTES}", field="payload")
    return EventRequest(payload=payload)


def refused_job(job_id: object, kwargs: Mapping[str, object]) -> RefusedJob | None:
    """The job row under which a refused ``process_asset`` message is recorded (see :class:`RefusedJob`), or
    ``None`` when its task id cannot key a job row (then nothing can record it but the worker's log)."""
    try:
        checked_job_id = check_job_id(job_id)
    except InvalidRequest:
        return None
    try:
        asset_id = check_asset_id(kwargs.get("asset_id"))
    except InvalidRequest:
        asset_id = REFUSED_ASSET_ID
    source = kwargs.get("source")
    if not (isinstance(source, str) and len(source) <= MAX_RECORDED_SOURCE_CHARS and source.isprintable()):
        source = shown(source, limit=MAX_RECORDED_SOURCE_CHARS)
    return RefusedJob(job_id=checked_job_id, asset_id=asset_id, source=source)


def check_job_id(value: object) -> str:
    """``value`` if it can key a job row (1–36 letters, digits, ``.``, ``_`` or ``-``, not first: a UUID fits);
    raises ``InvalidRequest``."""
    if isinstance(value, str) and _JOB_ID.fullmatch(value):
        return value
    raise InvalidRequest(f"the task id {shown(value)} is not a job id: 1-36 letters, digits, '.', '_' or '-'",
                         field="job_id")


def check_asset_id(value: object) -> str:
    """``value`` if it is a valid asset id (``pipelines.ids``); raises ``InvalidRequest``."""
    if not isinstance(value, str):
        raise InvalidRequest(f"asset_id must be a string, not {type(value).__name__}", field="asset_id")
    try:
        return validate_asset_id(value)
    except ValueError:
        raise InvalidRequest(f"asset_id {shown(value)} is not an asset id: 1-128 letters, digits, '.', '_' or '-' "
                             "(not first)", field="asset_id") from None


def _check_arguments(
    args: Sequence[object], kwargs: Mapping[str, object], fields: Sequence[str], *, required: Sequence[str]
) -> None:
    """Keyword arguments only, each one of ``fields``, every one of ``required`` present."""
    takes = ", ".join(fields)
    if args:
        raise InvalidRequest(f"takes keyword arguments only ({takes}), not {len(args)} positional")
    unknown = [name for name in kwargs if name not in fields]
    if unknown:
        # A misspelt or newer option silently ignored would run a job other than the one asked for.
        named = ", ".join(shown(name, limit=40) for name in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InvalidRequest(f"unknown argument {named}{more}: it takes {takes}", field=str(unknown[0])[:40])
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise InvalidRequest(f"missing argument {', '.join(missing)}", field=missing[0])


def _optional_text(value: object, field: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string or null, not {type(value).__name__}", field=field)
    if len(value) > limit or not value.isprintable():
        raise InvalidRequest(f"{field} {shown(value)} is not a version: at most {limit} printable characters",
                             field=field)
    return value
