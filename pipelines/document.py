"""The job document: what one job found and published, typed from the stages to the edge.

A :class:`JobDocument` holds the stages' own frozen results — the :class:`~pipelines.media.probe.Probe`, the
measured renditions, the :class:`~pipelines.audio.features.AudioFeatures`, the loudness, QC and delivery
reports, the quality of every rung, the :class:`~pipelines.match.fingerprint.Fingerprint`, the
:class:`~pipelines.match.index.Match` es, the tags, the video analysis — and the few facts the job adds: ids,
status, error, where each output was published, timings. Inside the project these are read as typed fields.

:meth:`JobDocument.to_json` makes the JSON document that ``../shared/INTERFACE.md`` and the README promise. It
is the one place that document is made, called only where it leaves the process: the CLI (``process`` and
``status``), the Celery task's result, the catalog's document column. Each part's JSON is its stage's own
``to_document()``; the one rename the public JSON keeps (``LoudnessReport.loudness_range_lu`` shown as
``quality.loudness.lra_lu``) happens in :meth:`Quality.to_json` and nowhere else.

Every form of the document is a :class:`JobDocument`: a succeeded job's; a failed or retrying one's (``error``
set, ``probe`` when the probe ran, the other parts null); a cancelled one's; and what ``status`` shows of a job
still queued or running (with :class:`Progress`, which adds ``stage`` and ``percent``). The catalog's rows of a
succeeded job come from the same typed fields (:mod:`pipelines.catalog_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pipelines.audio.delivery import DeliveryReport
from pipelines.audio.features import AudioFeatures
from pipelines.audio.loudness import LoudnessReport
from pipelines.audio.qc import AudioQCReport
from pipelines.errors import ErrorCode
from pipelines.match.fingerprint import Fingerprint
from pipelines.match.index import Match
from pipelines.media.cover_art import CoverResult
from pipelines.media.probe import Probe
from pipelines.media.tags import Metadata
from pipelines.video.analysis import VideoAnalysis
from pipelines.video.package import Variant
from pipelines.video.quality import RenditionQuality, unmeasured_document

JSON = dict[str, Any]


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable ``code`` (the README lists them all) and a sentence for a person."""

    code: ErrorCode
    message: str

    @classmethod
    def stored(cls, code: str | None, message: str | None) -> JobError | None:
        """The error a job row keeps (``error_code``, ``error_message``); ``None`` when it keeps none. The code
        is one this project wrote, shown as it was stored."""
        return None if not code else cls(cast(ErrorCode, code), message or "")

    def to_json(self) -> JSON:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Progress:
    """How far a job that has not finished is: the stage it last entered (``None`` before the first) and the
    percent (0..100) of the whole job."""

    stage: str | None
    percent: float


@dataclass(frozen=True, kw_only=True)
class PublishedRendition:
    """An entry of ``hls.renditions``: a measured rendition (with the audio group a video variant carries) and
    the URI its media playlist was published at."""

    variant: Variant
    playlist: str

    @property
    def name(self) -> str:
        return self.variant.rendition.name

    @property
    def kind(self) -> str:
        return self.variant.rendition.kind

    def to_json(self) -> JSON:
        return self.variant.to_document(self.playlist)


@dataclass(frozen=True, kw_only=True)
class Hls:
    """The published ladder: the master playlist's URI, the prefix every output of the job is under (kept so a
    rerun can remove the ladder it replaces), and the renditions, video first, each kind highest first."""

    master: str
    prefix: str
    renditions: tuple[PublishedRendition, ...]

    def to_json(self) -> JSON:
        return {"master": self.master, "prefix": self.prefix, "renditions": [r.to_json() for r in self.renditions]}


@dataclass(frozen=True)
class UnmeasuredRendition:
    """The ``quality.renditions`` entry of a rendition no picture metric applies to (an audio rendition)."""

    name: str
    kind: str

    def to_json(self) -> JSON:
        return unmeasured_document(self.name, self.kind)


@dataclass(frozen=True, kw_only=True)
class Quality:
    """``quality`` of the document: the audio's loudness, QC and delivery reports (``None`` without audio), the
    measured quality of every rendition in the order of ``hls.renditions``, and the report page's URI (``None``
    until published, or when it could not be made: then ``report_error`` says why)."""

    loudness: LoudnessReport | None = None
    audio_qc: AudioQCReport | None = None
    delivery: DeliveryReport | None = None
    renditions: tuple[RenditionQuality | UnmeasuredRendition, ...] = ()
    report: str | None = None
    report_error: str | None = None

    @property
    def score(self) -> int | None:
        """The master's 0–100 audio quality score (the delivery report's); ``None`` without audio."""
        return None if self.delivery is None else self.delivery.score

    def to_json(self) -> JSON:
        document: JSON = {
            "loudness": _loudness_json(self.loudness),
            "audio_qc": None if self.audio_qc is None else self.audio_qc.to_document(),
            "delivery": None if self.delivery is None else self.delivery.to_document(),
            "score": self.score,
            "renditions": [r.to_document() if isinstance(r, RenditionQuality) else r.to_json()
                           for r in self.renditions],
            "report": self.report,
        }
        if self.report_error is not None:
            document["report_error"] = self.report_error
        return document


def _loudness_json(report: LoudnessReport | None) -> JSON | None:
    """``quality.loudness``: the interface's triple first, ``loudness_range_lu`` published as ``lra_lu`` (the name
    ``../shared/INTERFACE.md`` promises), then the rest of the meter's report."""
    if report is None:
        return None
    full = report.to_document()
    return {
        "integrated_lufs": _rounded(report.integrated_lufs),
        "true_peak_dbtp": _rounded(report.true_peak_dbtp),
        "lra_lu": _rounded(report.loudness_range_lu),
        **{k: v for k, v in full.items() if k not in {"integrated_lufs", "true_peak_dbtp", "loudness_range_lu"}},
    }


@dataclass(frozen=True, kw_only=True)
class PublishedMetadata:
    """``metadata`` of the document: the master's normalised tags, and its cover art as checked and published
    (``cover_uri``; ``None`` when there was none, or it failed its checks: ``cover.reason`` says why)."""

    tags: Metadata
    cover: CoverResult
    cover_uri: str | None = None

    def to_json(self) -> JSON:
        art = self.cover.cover
        document = self.tags.to_document(cover_art=self.cover_uri)
        document["cover_art_image"] = None if art is None else {
            "content_type": art.content_type, "width": art.width, "height": art.height, "bytes": art.size_bytes}
        if self.cover.reason is not None:
            document["invalid"]["cover_art"] = self.cover.reason
        return document


@dataclass(frozen=True, kw_only=True)
class PublishedVideo:
    """``video`` of the document: what the scene analysis measured, and the URIs of the pictures it wrote
    (poster, thumbnail sprite, WebVTT track) by their file names in the output folder."""

    analysis: VideoAnalysis
    uris: Mapping[str, str]

    def to_json(self) -> JSON:
        return self.analysis.to_document(lambda name: self.uris[name])


@dataclass(frozen=True, kw_only=True)
class JobDocument:
    """One job's document, in every state the job can be in (see the module's docstring).

    ``status`` is the job's: ``queued``, ``running``, ``retrying``, ``succeeded``, ``failed`` or
    ``cancelled``. ``timings_s``: wall-clock seconds per stage that ran, in the order they ran.
    """

    asset_id: str
    job_id: str
    status: str
    error: JobError | None = None
    progress: Progress | None = None
    probe: Probe | None = None
    hls: Hls | None = None
    features: AudioFeatures | None = None
    quality: Quality | None = None
    fingerprint: Fingerprint | None = None
    matches: tuple[Match, ...] = ()
    metadata: PublishedMetadata | None = None
    video: PublishedVideo | None = None
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_json(self) -> JSON:
        """The JSON document (``process --json``, ``status --json``, the task's result, the catalog's column).

        Parts that did not run are ``null`` (``matches``: empty); ``stage`` and ``percent`` only for a job that
        has not finished."""
        document: JSON = {"asset_id": self.asset_id, "job_id": self.job_id, "status": self.status}
        if self.progress is not None:
            document["stage"], document["percent"] = self.progress.stage, self.progress.percent
        return document | {
            "error": None if self.error is None else self.error.to_json(),
            "probe": None if self.probe is None else self.probe.to_document(),
            "hls": None if self.hls is None else self.hls.to_json(),
            "features": None if self.features is None else self.features.to_document(),
            "quality": None if self.quality is None else self.quality.to_json(),
            "fingerprint": None if self.fingerprint is None else self.fingerprint.to_document(),
            "matches": [match.to_document() for match in self.matches],
            "metadata": None if self.metadata is None else self.metadata.to_json(),
            "video": None if self.video is None else self.video.to_json(),
            "timings_s": dict(self.timings_s),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
