"""Identifiers that cross boundaries: asset ids become parts of object keys and catalog keys."""

from __future__ import annotations

import re

_ASSET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_asset_id(asset_id: str) -> str:
    """Return ``asset_id`` if it is 1–128 letters, digits, ``.``, ``_`` or ``-`` (not first); else ``ValueError``."""
    if not _ASSET_ID.fullmatch(asset_id):
        raise ValueError(f"invalid asset id {asset_id!r}: use 1-128 letters, digits, '.', '_' or '-'")
    return asset_id
