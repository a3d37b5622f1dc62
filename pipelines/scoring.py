"""What the 0–100 quality scores are made of, shared by the audio and the video stages.

A score starts at 100 and loses a penalty for each reason found: the master's audio score in
:mod:`pipelines.audio.delivery`, each video rendition's in :mod:`pipelines.video.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ScoreReason:
    """What lowered a 0–100 score (``code``, stable for machines; ``detail``, for people), and by how many
    points."""

    code: str
    penalty: int
    detail: str
