"""The scan after the suite: no secret and no clear-text uploader identity in what the tests left behind.

Tests register what must never be written down (``register``): the S3 servers' secret keys, the identity key
the suite runs with, and the clear-text uploader identity that the event tests inject. At the end of the
session, ``tests/conftest.py`` scans every log and catalog the suite produced — worker and command logs and
SQLite catalogs under the session's temporary folder, the suite's own log, and the PostgreSQL catalog before
it is dropped — and fails the session on any finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# What the event fixture (tests/data/minio_event_put.json) says about its uploader: its principal id and IP.
UPLOADER_IDENTITIES = ("uploader-7f3a", "10.0.0.5")
# The RabbitMQ test broker's credentials as they would appear in a URL that was not masked.
BROKER_CREDENTIALS = "guest:guest@"
# Files worth reading: logs, text, JSON, playlists and SQLite catalogs (with their journals), up to 64 MiB.
SCANNED_SUFFIXES = frozenset({".log", ".txt", ".json", ".m3u8", ".sqlite3", ".sqlite", ".db", ".sqlite3-wal",
                              ".sqlite3-journal", ".out", ".err"})
MAX_SCANNED_BYTES = 64 << 20

_needles: dict[str, str] = {}
_findings: list[Finding] = []


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.what} found in {self.where}"


def register(value: str, what: str) -> None:
    """Something no log or catalog may contain (at least 4 characters, so that it cannot match by chance)."""
    if len(value) >= 4:
        _needles[value] = what


def needles() -> dict[str, str]:
    """Everything registered so far, with the clear-text identities and broker credentials: value → label."""
    found = {identity: "clear-text uploader identity" for identity in UPLOADER_IDENTITIES}
    found[BROKER_CREDENTIALS] = "unmasked broker credentials"
    return {**found, **_needles}


def scan_files(paths: Iterable[Path], looking_for: dict[str, str]) -> list[Finding]:
    """Every occurrence of a value of ``looking_for`` in the files under ``paths`` that may hold logs or
    catalogs, read as bytes (so a value in a SQLite page or a binary log is found too)."""
    found: list[Finding] = []
    encoded = {value.encode(): label for value, label in looking_for.items()}
    for root in paths:
        candidates = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in candidates:
            if not path.is_file() or not _worth_reading(path):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [Finding(str(path), label) for value, label in encoded.items() if value in data]
    return found


def scan_catalog(url: str, looking_for: dict[str, str]) -> list[Finding]:
    """Every occurrence of a value of ``looking_for`` in any row of any table of the catalog at ``url``."""
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    found: list[Finding] = []
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    text = repr(tuple(row))
                    found += [Finding(f"catalog table {table.name}", label)
                              for value, label in looking_for.items() if value in text]
    finally:
        engine.dispose()
    return found


def record(findings: Iterable[Finding]) -> None:
    """Keep findings made during the session (the PostgreSQL scan, before its database is dropped)."""
    _findings.extend(findings)


def recorded() -> list[Finding]:
    return list(_findings)


def _worth_reading(path: Path) -> bool:
    name = path.name
    suffix_ok = path.suffix in SCANNED_SUFFIXES or name.endswith((".sqlite3-wal", ".sqlite3-shm", ".log.1"))
    try:
        return suffix_ok and path.stat().st_size <= MAX_SCANNED_BYTES
    except OSError:
        return False
