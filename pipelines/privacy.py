"""Identities and secrets: what the worker may keep of them, and what it must never show.

*Identities* (who uploaded a master, from where) arrive in MinIO's bucket notifications. The worker keeps at
most a **pseudonym**: the HMAC-SHA256 of the identity under a key that only the deployment holds
(``MEDIAWORKER_IDENTITY_KEY``), so the same uploader always gets the same pseudonym — a link the rights team
can follow by asking whoever holds the key — while nobody who reads the catalog, the logs or the broker
learns who it is. Without a key, identities are dropped entirely: no pseudonym is better than an unkeyed hash,
which anyone could reverse by hashing candidate names.

*Secrets* (the S3 secret key, passwords in broker and database URLs, the identity key) come from the environment and
must appear in no log, task argument, error message or catalog row: :func:`redact` masks them in any text,
and :class:`RedactingFilter` applies it to every log record a handler emits.
"""

from __future__ import annotations

from collections.abc import Iterable
import hashlib
import hmac
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pipelines.config import Settings

PSEUDONYM_PREFIX = "hmac-sha256:"
MASK = "***"
_MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words; no real key or password is that short

# ``scheme://user:password@host`` (any scheme; a password holding ``@`` or ``/`` must be percent-encoded anyway).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s]*:)(?P<secret>[^@\s/]+)(?=@)")
# ``password=…`` in libpq connection strings and URL queries; S3 signatures and credentials in presigned URLs.
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|secret_key|access_key|sslpassword|X-Amz-Signature|X-Amz-Credential"
    r"|X-Amz-Security-Token)\s*[=:]\s*['\"]?)(?P<secret>[^'\"\s&;,]+)",
    re.IGNORECASE,
)


def pseudonym(identity: object, key: bytes | None) -> str | None:
    """``hmac-sha256:<64 hex digits>`` of ``identity`` under ``key``; ``None`` when there is no key or no identity.

    The same identity under the same key always gives the same pseudonym; without the key it cannot be
    reversed, nor linked to another deployment's pseudonyms.
    """
    if key is None or identity is None:
        return None
    text = str(identity).strip()
    if not text:
        return None
    return PSEUDONYM_PREFIX + hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def is_pseudonym(value: object) -> bool:
    """True for a value :func:`pseudonym` made."""
    return isinstance(value, str) and re.fullmatch(re.escape(PSEUDONYM_PREFIX) + "[0-9a-f]{64}", value) is not None


def url_secrets(url: str | None) -> tuple[str, ...]:
    """The password of a ``scheme://user:password@host/…`` URL (broker, result backend, catalog), if any."""
    if not url:
        return ()
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    return (password,) if password else ()


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret the settings hold: the S3 secret key, URL passwords, the identity key — what :func:`redact`
    masks."""
    found: list[str] = []
    if settings.s3 is not None:
        # Not the access key: it names the worker's user (``mediaworker`` in docker/compose.yaml), and
        # masking it would mask every logger and task name that contains the word.
        found.append(settings.s3.secret_key)
    for url in (settings.broker_url, settings.catalog_url, settings.worker.result_backend):
        found += url_secrets(url)
    if settings.identity_key is not None:
        found.append(settings.identity_key.decode("utf-8", "replace"))
    return tuple(found)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, every URL password and every ``password=…`` value replaced by ``***``.

    ``secrets`` are the deployment's own values (see :func:`settings_secrets`): masked wherever they appear,
    whatever the format of the message around them.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's message through :func:`redact` before it is formatted.

    The message is rendered once (``msg % args``) so that a secret passed as an argument is masked too; the
    exception text, when there is one, is rendered and masked as well.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still logged, as its raw template
            message = str(record.msg)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def install_redaction(logger: logging.Logger, secrets: Iterable[str]) -> RedactingFilter:
    """Add one :class:`RedactingFilter` to every handler of ``logger`` (the root logger, usually)."""
    found = RedactingFilter(secrets)
    for handler in logger.handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]
        handler.addFilter(found)
    return found
