"""The rights team's question — what in the catalog is this clip? — from a clip's address to the match document.

Wires the match stages to storage and the catalog, as ``pipelines.job`` does for masters: fetch the clip into a
private folder, probe it, decode its audio once to mono at Chromaprint's rate, and search the index built from
the catalog's fingerprints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.catalog import Catalog
from pipelines.config import Settings
from pipelines.errors import MediaError, StorageError
from pipelines.match.fingerprint import Items
from pipelines.match.index import ClipIndex, FingerprintIndex, LayeredIndex, MatchPolicy
from pipelines.match.landmarks import Landmarks
from pipelines.match.search import MATCH_RATE, find_clip
from pipelines.media.decode import Block, PcmFormat, decode_audio
from pipelines.media.probe import probe_file
from pipelines.storage import Storage, fetch_source

MAX_CLIP_S = 20 * 60.0
SNAPSHOT_FORMAT = "v2"
"""Part of a snapshot's folder name: a worker upgraded to another layout builds its own instead of loading one
it cannot read (v2: with the landmark arrays)."""

log = logging.getLogger(__name__)


def load_index(catalog: Catalog, *, policy: MatchPolicy | None = None) -> FingerprintIndex:
    """An index over every fingerprint in the catalog, read afresh: deleted assets are simply absent."""
    return _index(_decoded(catalog.fingerprints()), policy)


class CatalogIndex:
    """The catalog's match index as one process holds it, brought up to date before each use.

    A full build reads every fingerprint (at 100,000 tracks, gigabytes), so it happens once; after it, only the
    fingerprints written since are read, into a small index beside the large one, and those deleted or replaced
    since are hidden in the large one (``LayeredIndex``). When the small index outgrows ``compact_fraction`` of
    the large one, or the hidden assets do, the next refresh builds the whole index again. What changed is found
    by comparing each fingerprint's write time with the one the index holds, a light query that reads no items,
    run only when the catalog's fingerprint version moved.

    With ``snapshots`` (a folder), a full build is saved there under the catalog state it holds, and a process
    that needs the large index for the same state maps that snapshot read-only instead of building it: the pool
    processes of a worker share one copy of it in memory, not one each. One process builds at a time (a lock
    file); the three newest snapshots are kept. A snapshot that cannot be loaded is removed and built again.
    """

    KEEP_SNAPSHOTS = 3

    def __init__(self, catalog: Catalog, *, policy: MatchPolicy | None = None, compact_fraction: float = 0.125,
                 snapshots: Path | None = None) -> None:
        self.catalog, self.policy, self.compact_fraction = catalog, policy, compact_fraction
        self.snapshots = snapshots
        self.full_builds = 0
        """How many times this process read every fingerprint to build the large index."""
        self.snapshot_loads = 0
        """How many times it mapped a snapshot another build had saved instead."""
        self._version: tuple[int, str] | None = None
        self._stamps: dict[str, str] = {}  # what the index holds: asset -> its fingerprint's write time
        self._base = self._recent = _index((), policy)
        self._recent_items: dict[str, tuple[Items, Landmarks | None]] = {}
        self._hidden: set[str] = set()
        self._current = LayeredIndex(self._base, self._recent)

    def current(self) -> LayeredIndex:
        version = self.catalog.fingerprints_version()
        if version != self._version:
            self._refresh()
            self._version = version
        return self._current

    def _refresh(self) -> None:
        stamps = self.catalog.fingerprint_stamps()
        changed = {a for a, stamp in stamps.items() if self._stamps.get(a) != stamp}
        gone = self._stamps.keys() - stamps.keys()
        in_base = set(self._base.asset_ids)
        hidden = self._hidden | ((changed | gone) & in_base)
        recent_count = len(self._recent_items.keys() - gone - changed) + len(changed)
        if not self._stamps or max(recent_count, len(hidden)) > self.compact_fraction * max(1, len(in_base)):
            self._base, self._recent_items, self._hidden = self._full_index(stamps), {}, set()
        else:
            fresh = {asset: (items, landmarks)
                     for asset, items, landmarks in _decoded(self.catalog.fingerprints(only=changed))}
            kept = {a: entry for a, entry in self._recent_items.items() if a not in gone and a not in changed}
            self._recent_items, self._hidden = {**kept, **fresh}, hidden
        self._stamps = stamps
        self._recent = _index(((a, *entry) for a, entry in self._recent_items.items()), self.policy)
        self._current = LayeredIndex(self._base, self._recent, frozenset(self._hidden))

    def _full_index(self, stamps: dict[str, str]) -> FingerprintIndex:
        """Every fingerprint of the catalog, from a snapshot of the state ``stamps`` describe where there is one."""
        if self.snapshots is not None:
            try:
                return self._snapshot(stamps, self.snapshots)
            except (OSError, ValueError, EOFError) as exc:  # a folder it may not write: the index still works
                log.warning("cannot use the match index snapshots in %s (%s); building the index in memory",
                            self.snapshots, exc)
        self.full_builds += 1
        return _index(_decoded(self.catalog.fingerprints()), self.policy)

    def _snapshot(self, stamps: dict[str, str], snapshots: Path) -> FingerprintIndex:
        snapshots.mkdir(parents=True, exist_ok=True)
        state = hashlib.sha256(json.dumps(sorted(stamps.items())).encode()).hexdigest()[:20]
        folder = snapshots / f"index-{SNAPSHOT_FORMAT}-{state}"
        with open(snapshots / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait for the one building, then map what it saved
            if folder.exists():
                try:
                    loaded = FingerprintIndex.load(folder, policy=self.policy)
                except (OSError, ValueError, EOFError) as exc:
                    # Damaged (a disk that filled as it was written, a file changed by hand): kept, it would
                    # fail every process that starts, and each would build the whole index in memory again.
                    log.warning("the match index snapshot %s cannot be loaded (%s: %s); replacing it",
                                folder.name, type(exc).__name__, exc)
                    shutil.rmtree(folder)
                else:
                    self.snapshot_loads += 1
                    os.utime(folder)
                    return loaded
            _index(_decoded(self.catalog.fingerprints()), self.policy).save(folder)
            self.full_builds += 1
            saved = sorted(snapshots.glob("index-*"), key=lambda f: f.stat().st_mtime)
            for old in saved[: -self.KEEP_SNAPSHOTS]:
                shutil.rmtree(old, ignore_errors=True)  # a process that maps one keeps its pages until done
            return FingerprintIndex.load(folder, policy=self.policy)


def _decoded(rows: Iterable[tuple[str, bytes, bytes | None]]) -> Iterator[tuple[str, Items, Landmarks | None]]:
    """The catalog's fingerprint rows with their items and landmarks read from the stored bytes."""
    for asset_id, items, landmarks in rows:
        yield (asset_id, np.frombuffer(items, dtype="<u4"),
               None if landmarks is None else Landmarks.from_bytes(landmarks))


def _index(entries: Iterable[tuple[str, Items, Landmarks | None]], policy: MatchPolicy | None) -> FingerprintIndex:
    kept = list(entries)
    return FingerprintIndex(((asset_id, items) for asset_id, items, _ in kept),
                            landmarks={asset_id: lm for asset_id, _, lm in kept if lm is not None}, policy=policy)


class _Collect:
    """A PCM sink that keeps the (short) clip's samples."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []

    def feed(self, block: Block) -> None:
        self.blocks.append(block[:, 0].copy())

    def samples(self) -> npt.NDArray[np.float32]:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, dtype=np.float32)


def match_clip(
    settings: Settings, source: str, *, catalog: Catalog, storage: Storage, top: int = 5,
    index: ClipIndex | None = None,
) -> dict[str, Any]:
    """The match document for the clip at ``source`` (a local path or ``s3://bucket/key``): at most ``top``
    matches, best first.

    Raises ``MediaError`` for a clip that is not there (``source_not_found``: a missing object is as final as a
    missing file), not a valid address, not media, without audio, or longer than ``MAX_CLIP_S``; ``StorageError``
    when the store fails or the work folder cannot be written (its ``code``: ``no_space`` for a full disk, else
    ``storage_error``); ``ValueError`` when ``top`` is under 1.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    try:
        workspace = Path(tempfile.mkdtemp(prefix="clip-", dir=_scratch(settings)))
    except OSError as exc:
        raise StorageError(f"cannot make the clip's scratch folder in the work folder: {exc.strerror or exc}") from exc
    try:
        clip = workspace / "clip"
        fetch_source(source, clip, storage)  # a missing object: MediaError source_not_found
        probe = probe_file(clip, ffprobe=settings.ffprobe, limits=settings.limits)
        if probe.duration_s > MAX_CLIP_S:
            raise MediaError("clip_too_long", f"a clip may last {MAX_CLIP_S / 60:.0f} minutes at most")
        collect = _Collect()
        decode_audio(clip, probe, [collect], ffmpeg=settings.ffmpeg, limits=settings.limits,
                     fmt=PcmFormat(rate=MATCH_RATE, channels=1))
        index = index if index is not None else load_index(catalog)
        matches = find_clip(collect.samples(), index, top=top)
        return {"matches": [m.to_document() for m in matches]}
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _scratch(settings: Settings) -> Path:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return settings.work_dir
