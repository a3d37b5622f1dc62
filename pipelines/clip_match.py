"""The rights team's question — what in the catalog is this clip? — from a clip's address to the match document.

Wires the match stages to storage and the catalog, as ``pipelines.job`` does for masters: fetch the clip into a
private folder, probe it, decode its audio once to mono at Chromaprint's rate, and search the index built from
the catalog's fingerprints.
"""

from __future__ import annotations

from pathlib import Path
import shutil
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.catalog import Catalog
from pipelines.config import Settings
from pipelines.decode import Block, PcmFormat, decode_audio
from pipelines.errors import MediaError
from pipelines.match_index import FingerprintIndex, MatchPolicy
from pipelines.matching import MATCH_RATE, find_clip
from pipelines.probe import probe_file
from pipelines.storage import Storage, fetch_source

MAX_CLIP_S = 20 * 60.0


def load_index(catalog: Catalog, *, exclude: str | None = None, policy: MatchPolicy | None = None) -> FingerprintIndex:
    """An index over every fingerprint in the catalog (but ``exclude``'s): deleted assets are simply absent."""
    rows = catalog.fingerprints(exclude=exclude)
    return FingerprintIndex(((asset_id, np.frombuffer(items, dtype="<u4")) for asset_id, items in rows), policy=policy)


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
    index: FingerprintIndex | None = None,
) -> dict[str, Any]:
    """The match document for the clip at ``source`` (a local path or ``s3://bucket/key``).

    Raises ``MediaError`` for a clip that is not media, has no audio, or is longer than ``MAX_CLIP_S``;
    ``StorageError`` when the store fails.
    """
    workspace = Path(tempfile.mkdtemp(prefix="clip-", dir=_scratch(settings)))
    try:
        clip = workspace / "clip"
        fetch_source(source, clip, storage)
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
