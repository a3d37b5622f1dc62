"""Which objects a request from outside may name as its source: one rule, for every way in.

A task message, ``mediaworker submit``, an upload notification and the HTTP API name a master or a clip by an
``s3://bucket/key`` address, and the worker then reads it with its own credentials. So the address is checked
before any byte is read: it must be a string of an object in a bucket the worker is configured to take sources
from — the masters bucket and ``MEDIAWORKER_SOURCE_BUCKETS`` — with a valid key. A local path (``/etc/passwd``,
``/proc/self/environ``), another scheme or another bucket is refused: local paths are for the command line
only, where whoever runs it already has the file.

:func:`check_source` is pure (no store is asked whether the object exists), so every entry point can call it
first and answer with its own kind of error: a failed job, a usage error, a 4xx problem document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.errors import ConfigError, InvalidRequest, shown
from pipelines.storage import InvalidKeyError, ObjectRef, validate_bucket, validate_key

if TYPE_CHECKING:
    from pipelines.config import Settings

SCHEME = "s3://"
MAX_SOURCE_CHARS = 2048
"""Longer than any valid address (``s3://``, a 63-character bucket, ``/``, a key of at most 1,024 bytes): refused
before it is parsed, and never recorded or echoed whole."""


@dataclass(frozen=True)
class SourceRule:
    """The buckets a request from outside may take its source from.

    Raises ``ConfigError`` when ``buckets`` is empty or holds a name that is not a valid bucket name."""

    buckets: frozenset[str]

    def __post_init__(self) -> None:
        if not self.buckets:
            raise ConfigError("no bucket to take sources from")
        for bucket in self.buckets:
            try:
                validate_bucket(bucket)
            except InvalidKeyError:
                raise ConfigError(f"{shown(bucket)} is not a bucket name (MEDIAWORKER_SOURCE_BUCKETS)") from None

    @classmethod
    def of(cls, settings: Settings) -> SourceRule:
        """The masters bucket and ``MEDIAWORKER_SOURCE_BUCKETS``."""
        return cls(frozenset({settings.masters_bucket, *settings.more_source_buckets}))

    def allows(self, bucket: str) -> bool:
        return bucket in self.buckets

    def describe(self) -> str:
        """The allowed buckets, for a message: ``s3://clips/, s3://masters/`` — as many as fit in about 120
        characters, then how many more."""
        names = [f"{SCHEME}{bucket}/" for bucket in sorted(self.buckets)]
        shown_names = names[:1]
        for name in names[1:]:
            if len(", ".join([*shown_names, name])) > 120:
                break
            shown_names.append(name)
        more = len(names) - len(shown_names)
        return ", ".join(shown_names) + (f" and {more} more buckets" if more else "")


def check_source(value: object, rule: SourceRule, *, field: str = "source") -> ObjectRef:
    """The object ``value`` names, if it is an ``s3://bucket/key`` address that ``rule`` allows.

    Raises ``InvalidRequest`` (``invalid_request``) for anything but a string, one longer than
    ``MAX_SOURCE_CHARS``, another scheme or a local path, or a bucket ``rule`` does not list; and
    (``invalid_source``, as the command line reports a malformed address) for an allowed bucket with a key that
    ``validate_key`` refuses. ``field`` names the argument in the message. Reads nothing.
    """
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string ({SCHEME}bucket/key), not {type(value).__name__}",
                             field=field)
    if len(value) > MAX_SOURCE_CHARS:
        raise InvalidRequest(f"{field} is {len(value)} characters long: an object address has at most "
                             f"{MAX_SOURCE_CHARS}", field=field)
    if not value.startswith(SCHEME):
        raise InvalidRequest(f"{field} must be an object in {rule.describe()}, not {shown(value)}: local paths "
                             "and other schemes are for the command line only", field=field)
    bucket, _, key = value[len(SCHEME):].partition("/")
    return check_object(bucket, key, rule, field=field)


def check_object(bucket: str, key: str, rule: SourceRule, *, field: str = "source") -> ObjectRef:
    """``ObjectRef(bucket, key)`` if ``rule`` allows the bucket and the key is valid; raises ``InvalidRequest``
    as :func:`check_source` does (for a caller that has the bucket and key apart, such as a notification)."""
    if not rule.allows(bucket):
        raise InvalidRequest(f"{field} is in bucket {shown(bucket)}, which this worker does not read: use "
                             f"{rule.describe()}", field=field)
    try:
        return ObjectRef(bucket, validate_key(key))
    except InvalidKeyError as exc:
        raise InvalidRequest(f"{field} is not a valid object address: {str(exc)[:200]}", field=field,
                             code="invalid_source") from None
