"""One list of error codes: ``ErrorCode`` holds every code the source uses, and the README's table lists them all,
each with whether it is retried as ``RETRIED_CODES`` says."""

from __future__ import annotations

import re

from pipelines.errors import ERROR_CODES, RETRIED_CODES
from tests.conftest import REPO

# Where the source names a code: MediaError("code", …), JobError("code", …), code="…", *_code="…", a job
# document's {"code": "…"}, and the worker's release for a retry.
_CODE_USES = (
    re.compile(r"\b(?:MediaError|JobError)\(\s*\"([a-z_]+)\""),
    re.compile(r"\b(?:code|timeout_code|failed_code)=\"([a-z_]+)\"(?!, penalty)"),  # not a score's reason
    re.compile(r"\"code\": \"([a-z_]+)\""),
    re.compile(r"\b_release\([^,]+, [^,]+, \"([a-z_]+)\""),
    re.compile(r"JobError\(\"([a-z_]+)\" if"),
    re.compile(r"else \"([a-z_]+)\", str\(exc\)\)"),
    re.compile(r"error_code[^=\n]*= \"failed\", \"([a-z_]+)\""),
    re.compile(r"\bcode: ErrorCode = \"([a-z_]+)\""),
)


def _codes_in_source() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted([*(REPO / "pipelines").rglob("*.py"), *(REPO / "workers").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        for pattern in _CODE_USES:
            for code in pattern.findall(text):
                found.setdefault(code, []).append(str(path.relative_to(REPO)))
    return found


def _readme_table() -> dict[str, str]:
    """code → the ``retried`` cell, from the README's table of error codes."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("| code | meaning | retried |")
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first, *_, retried = (cell.strip() for cell in line.strip("|").split("|"))
        for code in re.findall(r"`([a-z_]+)`", first):
            rows[code] = retried
    return rows


def test_every_code_the_source_uses_is_an_error_code() -> None:
    found = _codes_in_source()
    assert {"no_audio", "no_video", "clip_too_long", "invalid_request", "time_limit", "worker_lost",
            "source_not_found", "storage_error", "worker_error", "internal_error", "catalog_error",
            "resource_limit", "packaging_failed", "decode_failed"} <= set(found)  # the scan sees each way a code is written
    assert {code: where for code, where in found.items() if code not in ERROR_CODES} == {}


def test_the_readme_lists_every_code_and_whether_it_is_retried() -> None:
    table = _readme_table()
    assert set(table) == set(ERROR_CODES)
    assert {code for code, retried in table.items() if retried == "yes"} == set(RETRIED_CODES)
    assert {retried for retried in table.values()} == {"yes", "no"}
    assert RETRIED_CODES <= ERROR_CODES

