"""Identifiers that cross boundaries: asset ids become parts of object keys and catalog keys."""

from __future__ import annotations

import re

_ASSET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ECHO_CHARS = 64
"""At most this many characters of an identifier given by a user are echoed back in a message."""


def validate_asset_id(asset_id: str) -> str:
    """Return ``asset_id`` if it is 1–128 letters, digits, ``.``, ``_`` or ``-`` (not first); else ``ValueError``."""
    if not _ASSET_ID.fullmatch(asset_id):
        raise ValueError(f"invalid asset id {echo(asset_id)}: use 1-128 letters, digits, '.', '_' or '-'")
    return asset_id


def echo(text: str, *, limit: int = ECHO_CHARS) -> str:
    """``text`` quoted for a message, cut to its first ``limit`` characters with its length when longer: an id
    (or an address) that someone got wrong may be 10,000 characters, and a message must stay readable."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
