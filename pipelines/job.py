"""The whole job for one master: fetch → probe → analyse → transcode → package → publish → match → catalog.

This is the only module that wires stages to storage and the catalog. The stages themselves take local paths
and frozen settings and return frozen results; this module gives them a private workspace, reports progress,
publishes the outputs (master playlist last), and records the outcome as a typed
:class:`~pipelines.document.JobDocument`. Whatever fails inside a stage — a rejected master, the store, a
defect — fails its own job with an ``error.code`` and leaves nothing in the output store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
import logging
import os
from pathlib import Path
import shutil
import signal
import tempfile
import time

from pipelines.audio.delivery import DeliveryReport, delivery_report
from pipelines.audio.features import AudioFeatures, FeatureSink
from pipelines.audio.loudness import LoudnessMeter, LoudnessReport
from pipelines.audio.qc import AudioQC, AudioQCReport
from pipelines.audio.spectrogram import Spectrogram, SpectrogramSink
from pipelines.catalog import Catalog, validate_asset_id
from pipelines.catalog.holders import this_process
from pipelines.catalog.states import JobStatus
from pipelines.catalog_rows import asset_record, fingerprint_record, match_records, rendition_records
from pipelines.clip_job import load_index
from pipelines.config import Settings
from pipelines.document import (
    Hls,
    JobDocument,
    JobError,
    PublishedMetadata,
    PublishedRendition,
    PublishedVideo,
    Quality,
    UnmeasuredRendition,
)
from pipelines.errors import (
    RETRIED_CODES,
    CatalogError,
    FFmpegError,
    MediaError,
    PackagingError,
    StorageError,
    blame_master,
    disk_error_code,
    out_of_space,
)
from pipelines.match.fingerprint import Fingerprint, FingerprintSink
from pipelines.match.index import ClipIndex, Match, merge
from pipelines.media.cover_art import CoverResult, extract_cover_art
from pipelines.media.decode import analysis_format, decode_audio
from pipelines.media.probe import Probe, probe_file
from pipelines.media.runner import process_is_gone
from pipelines.media.tags import Metadata, normalise_tags
from pipelines.report.page import REPORT_CONTENT_TYPE, REPORT_NAME, render_report
from pipelines.storage import ObjectRef, SourceVersion, Storage, fetch_source
from pipelines.video.analysis import VideoAnalysis, analyse_video
from pipelines.video.ladder import LadderPolicy, select_ladder
from pipelines.video.package import (
    MASTER_NAME,
    MeasuredRendition,
    Variant,
    build_master_playlist,
    measure_rendition,
    publication_order,
)
from pipelines.video.quality import RenditionQuality, distorted_rung, measure_video_quality, quality_error
from pipelines.video.thumbnails import POSTER_NAME, SPRITE_NAME, VTT_NAME
from pipelines.video.transcode import transcode

log = logging.getLogger(__name__)

# (stage, first percent, last percent) of the job's overall progress.
STAGES: tuple[tuple[str, float, float], ...] = (
    ("fetch", 0.0, 3.0),
    ("probe", 3.0, 4.0),
    ("analyse", 4.0, 12.0),
    ("scenes", 12.0, 18.0),
    ("transcode", 18.0, 72.0),
    ("package", 72.0, 73.0),
    ("quality", 73.0, 93.0),
    ("report", 93.0, 94.0),
    ("publish", 94.0, 97.0),
    ("match", 97.0, 99.0),
    ("catalog", 99.0, 100.0),
)
_STAGE_SPAN = {name: (start, end) for name, start, end in STAGES}

ProgressSink = Callable[[str, float], None]
"""Receives ``(stage, overall percent 0..100)`` as the job advances."""


Interrupts = tuple[type[BaseException], ...]
"""Exceptions that stop a job from outside (a cancel, a time limit): they pass through the job untouched."""


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    document: JobDocument
    transient: bool = False
    """True when the job failed for a reason outside the master (storage, catalog): a retry may succeed."""

    @property
    def succeeded(self) -> bool:
        return self.document.succeeded


@dataclass
class _Tracker:
    """Turns stage fractions into overall percent for the sink and, at most once a second, the catalog."""

    catalog: Catalog
    job_id: str
    sink: ProgressSink | None
    timings: dict[str, float] = field(default_factory=dict)
    current: str = "fetch"
    """The stage the job last entered: where a failure happened."""
    _last_write: float = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[float], None]]:
        started = time.monotonic()
        self.current = name
        self.report(name, 0.0, force=True)
        yield lambda fraction: self.report(name, fraction)
        self.timings[name] = round(time.monotonic() - started, 3)

    def report(self, stage: str, fraction: float, *, force: bool = False) -> None:
        start, end = _STAGE_SPAN[stage]
        percent = start + (end - start) * min(max(fraction, 0.0), 1.0)
        if self.sink is not None:
            self.sink(stage, percent)
        now = time.monotonic()
        if force or now - self._last_write >= 1.0:
            self._last_write = now
            self.catalog.record_progress(self.job_id, stage=stage, percent=percent)


class JobStopped(BaseException):
    """The process running the job was asked to stop (SIGTERM, SIGINT): raised where the job is by the
    handler of that signal (``mediaworker process`` installs one).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no stage's ``except Exception`` holds it up; the
    subprocess runner kills ffmpeg's process group as it passes. :func:`run_job` removes what the job had
    published, records the job ``failed`` with code ``interrupted`` and raises it again with ``outcome``: the
    recorded outcome, or ``None`` when the catalog could not record it (the job's row then names a process
    that is gone, and the next command that reads the catalog ends it ``interrupted``).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.outcome: JobOutcome | None = None


def run_job(
    settings: Settings,
    *,
    source: str,
    catalog: Catalog,
    storage: Storage,
    asset_id: str | None = None,
    job_id: str | None = None,
    policy: LadderPolicy | None = None,
    on_progress: ProgressSink | None = None,
    will_retry: bool = False,
    source_version: SourceVersion | None = None,
    match_index: Callable[[], ClipIndex] | None = None,
    interrupts: Interrupts = (),
) -> JobOutcome:
    """Run the whole job for ``source`` (a local path or ``s3://bucket/key``) and record it in ``catalog``.

    ``job_id`` names a job row the caller has already claimed (a Celery worker); without it the job row is
    created here, held by this process (``holders.this_process()``: if the process dies, the next command that
    reads the catalog ends the job ``interrupted``). With ``will_retry``, a failure that a retry may cure (a code
    of ``RETRIED_CODES``: storage, worker, a full disk) leaves the job ``retrying`` rather than ``failed``: the
    caller is about to run it again. Returns the job document whether the job succeeded or failed.
    ``source_version`` is the version of an ``s3://`` master that its upload notification announced: that
    version is processed, or the job fails ``source_replaced``. ``match_index`` gives the catalog's match index,
    current, for the search of the catalog for this master (a worker keeps one, see ``clip_job.CatalogIndex``);
    without it the index is loaded from the catalog for this job.

    Every failure inside a stage ends the job ``failed`` (or ``retrying``) with a code, and removes whatever it
    had published: a rejected master (``MediaError``), the store (``StorageError``), the worker's own disk — full
    (``no_space``, even when it is the catalog's disk that filled) or unwritable (``storage_error``) — a program
    that could not run (``FFmpegError``), output that cannot be packaged (``PackagingError``), and anything
    else, which is a defect of this project: ``internal_error``, logged with its traceback, never retried (the
    same master through the same code fails the same way; the message names the stage and the exception's type
    only, so that nothing the exception carried — a path, a URL with a credential — reaches the catalog). The
    job's scratch folder is removed before the failure is recorded: on a full disk the catalog needs its room.
    When the job's catalog write succeeded, what it replaced — the asset's previous ladder — is removed.

    Raises ``CatalogError`` when the catalog cannot record the job at all, ``ValueError`` for an invalid
    ``asset_id``, :class:`JobStopped` (with its recorded ``outcome``), and what interrupts the job from outside
    — ``interrupts`` (the worker's cancel and Celery's soft time limit, which are ``Exception`` s) and any other
    ``BaseException`` (``KeyboardInterrupt``) — after killing its subprocesses and removing what it had published.
    """
    if asset_id is not None:
        validate_asset_id(asset_id)
    workspace: Path | None = None
    run: _JobRun | None = None
    recording = False  # the catalog write of the succeeded job was sent: it may have been committed
    try:
        workspace = _new_workspace(settings.work_dir)
        master = workspace / "master"  # no extension: ffmpeg identifies the format from the bytes, not the name
        fetch_started = time.monotonic()
        if on_progress is not None:
            on_progress("fetch", 0.0)
        digest = fetch_source(source, master, storage, version=source_version)
        asset_id = asset_id or f"sha256-{digest[:16]}"
        if job_id is None:
            job_id = catalog.create_job(asset_id=asset_id, source_uri=source)
            catalog.start_job(job_id, holder=this_process())
        tracker = _Tracker(catalog, job_id, on_progress)
        tracker.timings["fetch"] = round(time.monotonic() - fetch_started, 3)
        run = _JobRun(settings, storage, catalog, tracker, workspace, asset_id, job_id, digest,
                      policy or LadderPolicy(), match_index, interrupts)
        document = run.process(master)
        with tracker.stage("catalog"):
            recording = True
            replaced = catalog.complete_job(
                job_id,
                asset=asset_record(document, source_uri=source, content_sha256=digest),
                renditions=rendition_records(document),
                document=document,
                fingerprint=fingerprint_record(document),
                matches=match_records(document),
            )
    except BaseException as exc:
        # A signal can land after the catalog committed the job and before its call returned: the catalog
        # then points at this job's ladder, which must stay.
        if recording and job_id is not None and _succeeded(catalog, job_id):
            if isinstance(exc, JobStopped):
                exc.outcome = JobOutcome(job_id, document)
            raise
        if run is not None:
            run.withdraw()  # nothing in the catalog points at what this job published
        _remove(workspace)  # before recording the failure: on a full disk, the catalog needs the room
        if isinstance(exc, JobStopped):
            exc.outcome = _record_stop(catalog, exc, job_id=job_id, asset_id=asset_id, source=source,
                                       probe=run.probe if run is not None else None)
            raise
        if isinstance(exc, interrupts) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, CatalogError) and not out_of_space(exc):
            raise
        job_id = job_id or catalog.create_job(asset_id=asset_id or "unknown", source_uri=source)
        error = _job_error(exc, stage=run.tracker.current if run is not None else "fetch", job_id=job_id)
        return _fail(catalog, job_id, asset_id or "unknown", error, run.probe if run is not None else None,
                     will_retry=will_retry)
    finally:
        _remove(workspace)
    assert document.hls is not None
    if replaced not in (None, document.hls.prefix):
        run.discard(replaced)  # the catalog now points at the new ladder; the old one is garbage
    # The catalog stored the document before the catalog stage ended; the caller's copy has its time too.
    return JobOutcome(job_id, replace(document, timings_s=dict(tracker.timings)))


def _new_workspace(work_dir: Path) -> Path:
    """A private scratch folder for one job under ``work_dir``, after sweeping those of dead processes.
    Raises ``OSError`` when the folder cannot be made (a full or read-only disk)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    sweep_workspaces(work_dir)
    return Path(tempfile.mkdtemp(prefix=f"job-{os.getpid()}-", dir=work_dir))


def _remove(workspace: Path | None) -> None:
    if workspace is not None:
        shutil.rmtree(workspace, ignore_errors=True)


def _succeeded(catalog: Catalog, job_id: str) -> bool:
    """Whether the catalog has the job ``succeeded``; ``False`` when it cannot say."""
    try:
        job = catalog.get_job(job_id)
    except CatalogError:
        return False
    return job is not None and job.status == JobStatus.SUCCEEDED


def _record_stop(catalog: Catalog, stop: JobStopped, *, job_id: str | None, asset_id: str | None, source: str,
                 probe: Probe | None) -> JobOutcome | None:
    """Record a job stopped by a signal as ``failed`` with code ``interrupted``; ``None`` when the catalog
    cannot (the job's process is about to end, and the next command that reads the catalog ends the job)."""
    error = JobError("interrupted", f"the job was stopped ({signal.Signals(stop.signum).name}) before it ended; "
                                    "process the master again")
    try:
        job_id = job_id or catalog.create_job(asset_id=asset_id or "unknown", source_uri=source)
        return _fail(catalog, job_id, asset_id or "unknown", error, probe, will_retry=False)
    except CatalogError as exc:
        log.warning("job %s was stopped, and the catalog could not record it: %s", job_id, exc)
        return None


@dataclass(frozen=True)
class _Analysis:
    """What the one audio decode measured."""

    features: AudioFeatures
    loudness: LoudnessReport
    qc: AudioQCReport
    delivery: DeliveryReport
    spectrogram: Spectrogram | None = None

    def quality(self, renditions: tuple[RenditionQuality | UnmeasuredRendition, ...]) -> Quality:
        """``quality`` of the job document for these rendition measurements (no report yet)."""
        return Quality(loudness=self.loudness, audio_qc=self.qc, delivery=self.delivery, renditions=renditions)


@dataclass
class _JobRun:
    """The stages of one job over its workspace, from the local copy of the master to published outputs."""

    settings: Settings
    storage: Storage
    catalog: Catalog
    tracker: _Tracker
    workspace: Path
    asset_id: str
    job_id: str
    digest: str
    policy: LadderPolicy
    match_index: Callable[[], ClipIndex] | None = None
    """The catalog's index as the caller keeps it (a worker's ``CatalogIndex``); otherwise loaded for the job."""
    interrupts: Interrupts = ()
    probe: Probe | None = None
    fingerprint: Fingerprint | None = None
    published: str | None = None
    """The prefix this job published its outputs under, once they are all there."""

    def process(self, master: Path) -> JobDocument:
        """Every stage from the probe to the search of the catalog; the document of the succeeded job. Raises
        whatever a stage raises, having removed anything it was publishing."""
        settings, tracker = self.settings, self.tracker
        with tracker.stage("probe"):
            self.probe = probe = probe_file(master, ffprobe=settings.ffprobe, limits=settings.limits)

        analysis = self._analyse(master, probe) if probe.audio is not None else None
        content_class = analysis.features.content.content_class if analysis is not None else None
        ladder = select_ladder(probe, self.policy, content_class=content_class if content_class != "mixed" else None)
        out_dir = self.workspace / "hls"
        out_dir.mkdir()
        video = self._analyse_video(master, probe, out_dir) if probe.video is not None else None
        with tracker.stage("transcode") as advance:
            try:
                encoded = transcode(
                    master, probe, ladder, out_dir,
                    encoder=settings.encoder, limits=settings.limits, ffmpeg_bin=settings.ffmpeg,
                    on_fraction=advance,
                )
            except FFmpegError as exc:
                raise blame_master(exc, doing="the transcode (ffmpeg decoding or encoding the master)",
                                   timeout_code="transcode_timeout", failed_code="decode_failed",
                                   memory_mb=settings.limits.process_memory_mb) from exc

        with tracker.stage("package"):
            measured = [measure_rendition(out_dir, rendition) for rendition in encoded]
            _check_complete(probe, measured)
            (out_dir / MASTER_NAME).write_text(build_master_playlist(measured))
            cover = extract_cover_art(master, probe, self.workspace / "cover", ffmpeg=settings.ffmpeg,
                                      limits=settings.limits)

        scored = self._measure_quality(master, probe, ladder.frame_rate, out_dir, measured)
        # after every stage that fills ``quality``: the report draws it
        by_name = {rung.name: rung for rung in scored}
        ordered = sorted(measured, key=lambda m: (m.kind != "video", -m.peak_bps))  # as in ``hls.renditions``
        rendition_quality = tuple(by_name.get(m.name) or UnmeasuredRendition(m.name, m.kind) for m in ordered)
        quality = analysis.quality(rendition_quality) if analysis is not None else Quality(renditions=rendition_quality)
        report_error = self._write_report(out_dir, probe, quality, measured, analysis)

        # Keyed by content, ladder and job: a rerun never overwrites a ladder that players may be streaming,
        # and a redelivered job writes to the same place it wrote before.
        prefix = f"hls/{self.asset_id}/{self.digest[:12]}-{ladder.digest()[:8]}-{self.job_id[:8]}"
        with tracker.stage("publish") as advance:
            extras = _cover_files(cover) + _picture_files(out_dir, video)
            if report_error is None:
                extras.append((out_dir / REPORT_NAME, REPORT_NAME, REPORT_CONTENT_TYPE))
            self._publish(publication_order(out_dir, measured, extras=extras), prefix, advance)

        matches: list[Match] = []
        if self.fingerprint is not None and len(self.fingerprint.items):
            with tracker.stage("match"):
                matches = self._find_in_catalog(self.fingerprint)

        def uri(key: str) -> str:
            return self.storage.uri(ObjectRef(settings.output_bucket, f"{prefix}/{key}"))

        audio = max((m for m in measured if m.kind == "audio"), key=lambda m: m.peak_bps, default=None)
        renditions = tuple(
            PublishedRendition(variant=Variant(m, audio if m.kind == "video" else None),
                               playlist=uri(f"{m.directory.as_posix()}/index.m3u8"))
            for m in ordered
        )
        art = cover.cover
        return JobDocument(
            asset_id=self.asset_id, job_id=self.job_id, status="succeeded", probe=probe,
            hls=Hls(master=uri(MASTER_NAME), prefix=prefix, renditions=renditions),
            features=analysis.features if analysis is not None else None,
            quality=replace(quality, report=None if report_error is not None else uri(REPORT_NAME),
                            report_error=report_error),
            fingerprint=self.fingerprint,
            matches=tuple(matches),
            metadata=PublishedMetadata(tags=_metadata(probe), cover=cover,
                                       cover_uri=uri(art.name) if art is not None else None),
            video=None if video is None else PublishedVideo(
                analysis=video, uris={name: uri(name) for name in (POSTER_NAME, SPRITE_NAME, VTT_NAME)}),
            timings_s=dict(tracker.timings),
        )

    def _write_report(self, out_dir: Path, probe: Probe, quality: Quality, measured: list[MeasuredRendition],
                      analysis: _Analysis | None) -> str | None:
        """Write the quality report page into ``out_dir``; return ``None``, or why it could not be made.

        The report is a view of measurements the job already has, so failing to draw it must not throw away a
        good ladder: the error is logged with its traceback and recorded in the job document
        (``quality.report`` null, ``quality.report_error``), never silent and never fatal. What interrupts the
        job from outside (``interrupts``: a cancel, a time limit) still interrupts it.
        """
        with self.tracker.stage("report"):
            try:
                page = render_report(
                    asset_id=self.asset_id, job_id=self.job_id, probe=probe, quality=quality, renditions=measured,
                    spectrogram=analysis.spectrogram if analysis is not None else None,
                )
                (out_dir / REPORT_NAME).write_text(page, encoding="utf-8")
            except self.interrupts:
                raise
            except Exception as exc:  # any failure of the view: see the docstring
                log.exception("job %s: the quality report could not be made", self.job_id)
                return f"{type(exc).__name__}: {exc}"[:500]
        return None

    def _measure_quality(self, master: Path, probe: Probe, frame_rate: float | None, out_dir: Path,
                         measured: list[MeasuredRendition]) -> list[RenditionQuality]:
        """VMAF, PSNR and SSIM of every video rung as it will be published, against the master, in one pass.

        A pass that breaks fails the job (``quality_failed``, ``quality_timeout``, ``resource_limit``): the
        ladder is not published without its proof of quality. See :func:`pipelines.video.quality.quality_error`.
        """
        settings = self.settings
        with self.tracker.stage("quality") as advance:
            rungs = [distorted_rung(out_dir, m) for m in measured if m.kind == "video"]
            work_dir = self.workspace / "quality"
            work_dir.mkdir(exist_ok=True)
            try:
                return measure_video_quality(master, probe, rungs, work_dir=work_dir, ladder_frame_rate=frame_rate,
                                             settings=settings.quality, limits=settings.limits, on_fraction=advance)
            except FFmpegError as exc:
                raise quality_error(exc, memory_mb=settings.limits.process_memory_mb) from exc

    def _analyse_video(self, master: Path, probe: Probe, out_dir: Path) -> VideoAnalysis:
        """Scenes, black, faces, poster and thumbnail sprite from one small decode of the video, the pictures
        written into ``out_dir`` to be published with the ladder."""
        with self.tracker.stage("scenes") as advance:
            return analyse_video(master, probe, out_dir, ffmpeg=self.settings.ffmpeg, limits=self.settings.limits,
                                 on_fraction=advance)

    def _analyse(self, master: Path, probe: Probe) -> _Analysis:
        """One decode of the audio, read at once by the fingerprinter, the loudness meter, QC and features."""
        settings = self.settings
        assert probe.audio is not None
        with self.tracker.stage("analyse") as advance:
            fmt = analysis_format(probe)
            fingerprinter = FingerprintSink(rate=fmt.rate, channels=fmt.channels)
            meter = LoudnessMeter(rate=fmt.rate, channels=fmt.channels)
            qc = AudioQC(rate=fmt.rate, channels=fmt.channels, declared_rate=probe.audio.sample_rate,
                         declared_bits=probe.audio.declared_integer_bits)
            features = FeatureSink(rate=fmt.rate, channels=fmt.channels)
            spectrogram = SpectrogramSink(rate=fmt.rate, channels=fmt.channels)
            decode_audio(master, probe, [fingerprinter, meter, qc, features, spectrogram], ffmpeg=settings.ffmpeg,
                         limits=settings.limits, fmt=fmt, on_fraction=advance)
            self.fingerprint = fingerprinter.finish()
            loudness = meter.finish()
            record = features.finish()
            if loudness.integrated_lufs is not None:
                record = record.with_loudness(loudness.integrated_lufs)
            qc_report = qc.finish()
            delivery = delivery_report(loudness, qc_report, content_class=record.content.content_class)
            return _Analysis(record, loudness, qc_report, delivery, spectrogram.finish())

    def _find_in_catalog(self, fingerprint: Fingerprint) -> list[Match]:
        """The catalog assets this master contains or repeats (a re-upload, a sample), best first; not itself."""
        index = self.match_index() if self.match_index is not None else load_index(self.catalog)
        found = [m for m in index.search(fingerprint.items) if m.asset_id != self.asset_id]
        return merge([found], top=10, accept=index.policy.accept_score)

    def _publish(self, files: list[tuple[Path, str, str]], prefix: str, advance: Callable[[float], None]) -> None:
        """Upload in publication order; if interrupted, remove what was uploaded (the master was never written)."""
        bucket = self.settings.output_bucket
        try:
            for done, (path, key, content_type) in enumerate(files, start=1):
                self.storage.put_file(path, ObjectRef(bucket, f"{prefix}/{key}"), content_type=content_type)
                advance(done / len(files))
        except BaseException:  # a storage failure, a cancel, a time limit: none may leave a half-published ladder
            self.discard(prefix)
            raise
        self.published = prefix

    def withdraw(self) -> None:
        """Remove what this job published, if it got that far: a later stage failed or was interrupted."""
        if self.published is not None:
            self.discard(self.published)
            self.published = None

    def discard(self, prefix: str) -> None:
        """Delete a ladder from the output store; a failure is logged, since no catalog entry points at it."""
        try:
            self.storage.delete_prefix(self.settings.output_bucket, prefix)
        except StorageError as exc:
            log.warning("could not remove output %s: %s", prefix, exc)


def _check_complete(probe: Probe, measured: list[MeasuredRendition]) -> None:
    """Raise ``MediaError`` when the encoder stopped early: ffmpeg treats a truncated master as a short one."""
    tolerance = max(1.0, 0.05 * probe.duration_s)
    for rendition in measured:
        if rendition.duration_s < probe.duration_s - tolerance:
            raise MediaError(
                "truncated_master",
                f"the master claims {probe.duration_s:.1f} s but only {rendition.duration_s:.1f} s of it could be "
                f"decoded ({rendition.name}); the file is probably cut short",
            )


def sweep_workspaces(work_dir: Path) -> int:
    """Remove the scratch folders of jobs whose process is gone (a worker killed mid-job); return how many.

    A folder is named ``job-<pid>-…`` after the process that made it, so workers sharing a home never remove
    each other's live folders.
    """
    removed = 0
    for folder in work_dir.glob("job-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and process_is_gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _job_error(exc: Exception, *, stage: str, job_id: str) -> JobError:
    """What a failure inside ``stage`` means for its job: the code and message of the error tree's branch, or
    ``internal_error`` for anything else (logged here with its traceback; see :func:`run_job`)."""
    if isinstance(exc, MediaError):
        return JobError(exc.code, exc.message)
    if isinstance(exc, StorageError):
        return JobError(exc.code, str(exc))
    disk = disk_error_code(exc)
    if disk == "no_space":  # ffmpeg's output, a file of the job's own, or the catalog's database
        return JobError("no_space", f"no space left on the worker's disk in the {stage} stage; the job's scratch "
                                    "files were removed")
    if disk == "storage_error":  # a read-only or unwritable work folder: the worker's, not the master's
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return JobError("storage_error", f"the worker could not write the job's files in the {stage} stage: {reason}")
    if isinstance(exc, PackagingError):
        log.warning("job %s: the %s stage could not package the encoder's output", job_id, stage, exc_info=exc)
        return JobError(exc.code, f"the encoder's output could not be packaged: {str(exc)[:300]}")
    if isinstance(exc, FFmpegError):  # a program that could not run at all: the worker is broken, not the master
        return JobError("worker_error", str(exc).splitlines()[0])
    log.error("job %s: internal error in the %s stage", job_id, stage, exc_info=exc)
    return JobError("internal_error", f"internal error in the {stage} stage ({type(exc).__name__}); "
                                      "the worker's log has the details")


def _fail(
    catalog: Catalog, job_id: str, asset_id: str, error: JobError, probe: Probe | None, *, will_retry: bool
) -> JobOutcome:
    transient = error.code in RETRIED_CODES
    log.warning("job %s for asset %s failed: %s: %s", job_id, asset_id, error.code, error.message)
    retrying = transient and will_retry
    document = JobDocument(asset_id=asset_id, job_id=job_id, status="retrying" if retrying else "failed",
                           error=error, probe=probe)
    catalog.fail_job(job_id, code=error.code, message=error.message, document=document, retrying=retrying)
    return JobOutcome(job_id, document, transient=transient)


def _metadata(probe: Probe) -> Metadata:
    return normalise_tags(probe.tags, chapters=probe.chapters,
                          stream_language=probe.audio.language if probe.audio is not None else None)


def _picture_files(out_dir: Path, video: VideoAnalysis | None) -> list[tuple[Path, str, str]]:
    """The poster, the thumbnail sprite and its WebVTT track, published beside the master playlist."""
    if video is None:
        return []
    return [(out_dir / POSTER_NAME, POSTER_NAME, "image/jpeg"), (out_dir / SPRITE_NAME, SPRITE_NAME, "image/jpeg"),
            (out_dir / VTT_NAME, VTT_NAME, "text/vtt")]


def _cover_files(cover: CoverResult) -> list[tuple[Path, str, str]]:
    """The cover image to publish beside the ladder, if the master has one that passed its checks."""
    art = cover.cover
    return [] if art is None else [(art.path, art.name, art.content_type)]


__all__ = ["CatalogError", "JobOutcome", "JobStopped", "ProgressSink", "STAGES", "run_job"]
