"""The ``mediaworker`` command line (see ``../shared/INTERFACE.md`` for the promises it keeps).

Exit codes: 0 the job succeeded, 2 the master was rejected or a stage failed (the document still printed),
1 a usage or configuration error; ``process`` stopped by SIGINT or SIGTERM exits 130 or 143 (128 + the signal),
its job recorded ``failed`` with code ``interrupted`` and its document printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
import json
import logging
import math
from pathlib import Path
import signal
import sys
import time
from types import FrameType
from typing import Any, NoReturn, TextIO

from tqdm import tqdm

from pipelines.catalog import Asset, Catalog, Job, asset_prefix
from pipelines.catalog.holders import holder_is_gone
from pipelines.catalog.leases import end_interrupted_local_jobs
from pipelines.config import Settings
from pipelines.errors import CatalogError, ConfigError, FFmpegError, MediaError, StorageError
from pipelines.ids import echo
from pipelines.privacy import install_redaction, redact, settings_secrets
from workers.runtime import open_storage

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 1, 2

log = logging.getLogger(__name__)


class ProgressView:
    """Human progress on stderr.

    On a terminal: one bar with the stage, percent, time spent and time left. Elsewhere (a log file, CI): a line
    when a stage starts and one at every tenth of the job, with the time left.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.stage: str | None = None
        self.bar: tqdm[Any] | None = None
        self.started = time.monotonic()
        self.next_line_at = 10.0

    def __call__(self, stage: str, percent: float) -> None:
        if self.interactive:
            if self.bar is None:
                self.bar = tqdm(total=100.0, file=self.stream, dynamic_ncols=True,
                                bar_format="{desc:>10} {percentage:5.1f}%|{bar}| {elapsed}<{remaining}")
            if stage != self.stage:
                self.bar.set_description_str(stage)
            self.bar.update(max(0.0, percent - self.bar.n))
        elif stage != self.stage:
            print(f"[{percent:5.1f}%] {stage}", file=self.stream, flush=True)
        elif percent >= self.next_line_at:
            elapsed = time.monotonic() - self.started
            left = elapsed * (100.0 - percent) / percent
            print(f"[{percent:5.1f}%] {stage}, {_clock(left)} left", file=self.stream, flush=True)
        if percent >= self.next_line_at:
            self.next_line_at = (percent // 10 + 1) * 10
        self.stage = stage

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    secrets: tuple[str, ...] = ()
    try:
        settings = Settings.from_env()
        secrets = settings_secrets(settings)
        install_redaction(logging.getLogger(), secrets)
        return int(args.handler(settings, args))
    except (ConfigError, ValueError) as exc:
        print(f"mediaworker: {redact(str(exc), secrets)}", file=sys.stderr)
        return EXIT_USAGE
    except CatalogError as exc:
        print(f"mediaworker: the catalog is unavailable: {redact(str(exc), secrets)}", file=sys.stderr)
        return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors exit 1, as the interface promises (argparse's own default is 2, our "job failed")."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mediaworker", description="Media processing and fingerprinting worker.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail (commands run) to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    process = commands.add_parser("process", help="run the whole job for one master in this process")
    process.add_argument("source", help="a local path or s3://bucket/key")
    process.add_argument("--asset-id", help="catalog id of the asset (default: derived from the content)")
    process.add_argument("--json", action="store_true", help="print the job document as JSON on stdout")
    process.set_defaults(handler=_process)

    match = commands.add_parser("match", help="look a clip up in the catalog's fingerprint index")
    match.add_argument("clip", help="a local path or s3://bucket/key")
    match.add_argument("--top", type=_positive_int, default=5, help="at most this many matches (default 5)")
    match.add_argument("--json", action="store_true", help="print the match document as JSON on stdout")
    match.set_defaults(handler=_match)

    delete = commands.add_parser("delete", help="remove an asset: its catalog entry, fingerprint and published ladder")
    delete.add_argument("asset_id")
    delete.set_defaults(handler=_delete)

    worker = commands.add_parser(
        "worker", help="start a Celery worker on the configured broker (other options go to Celery)",
        prefix_chars="\0",  # every option belongs to Celery's own parser
    )
    worker.add_argument("celery_args", nargs=argparse.REMAINDER)
    worker.set_defaults(handler=_worker)

    submit = commands.add_parser("submit", help="upload a master if it is local, enqueue its job, print the job id")
    submit.add_argument("source", help="a local path or s3://bucket/key")
    submit.add_argument("--asset-id", help="catalog id of the asset (default: derived from the content)")
    submit.set_defaults(handler=_submit)

    cancel = commands.add_parser("cancel", help="stop a job: a queued one never starts, a running one stops")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=_cancel)

    status = commands.add_parser("status", help="a job's or an asset's state, progress and results")
    status.add_argument("id", help="a job id or an asset id")
    status.add_argument("--json", action="store_true", help="print the job document as JSON on stdout")
    status.set_defaults(handler=_status)

    failed = commands.add_parser("failed", help="the jobs that failed, newest first, with their reasons")
    failed.add_argument("--limit", type=_positive_int, default=50, help="at most this many jobs (default 50)")
    failed.add_argument("--json", action="store_true", help='print {"jobs": [...]} as JSON on stdout')
    failed.set_defaults(handler=_failed)

    search = commands.add_parser("search", help="find catalog assets by field (tempo, key, class, ISRC, artist…)")
    search.add_argument("--tempo", type=_tempo_range, metavar="LO-HI",
                        help="BPM range, e.g. 120-130 (a single BPM matches within 1 BPM)")
    search.add_argument("--key", type=_pitch_class, help="tonic as 0..11 (0 = C) or a name (A, C#, Bb); -1: no key")
    search.add_argument("--mode", type=_mode, help="1 or major, 0 or minor")
    search.add_argument("--class", dest="content_class", choices=("music", "speech", "mixed"))
    search.add_argument("--isrc", help="an ISRC, with or without hyphens")
    search.add_argument("--artist", help="any part of the artist's name, ignoring case")
    search.add_argument("--language", help="an ISO 639 code or English name (en, eng, English)")
    search.add_argument("--kind", choices=("audio", "video"))
    search.add_argument("--limit", type=_positive_int, default=50, help="at most this many assets (default 50)")
    search.add_argument("--json", action="store_true", help='print {"assets": [...]} as JSON on stdout')
    search.set_defaults(handler=_search)
    return parser


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.job import JobStopped, run_job  # the heavy imports (ffmpeg-python) only for commands that need them

    if not args.source.startswith("s3://") and not _is_file(args.source):
        print(f"mediaworker: no such file: {echo(args.source, limit=256)}", file=sys.stderr)
        return EXIT_USAGE
    with _signals_raise(JobStopped, signal.SIGINT, signal.SIGTERM):
        try:
            catalog = Catalog.open(settings.catalog_url)
            view = ProgressView(sys.stderr)
            try:
                _end_interrupted(catalog)
                outcome = run_job(
                    settings, source=args.source, catalog=catalog, storage=open_storage(settings),
                    asset_id=args.asset_id, on_progress=view,
                )
            finally:
                view.close()
                catalog.dispose()
            _print_document(outcome.document.to_json(), as_json=args.json)
            return EXIT_OK if outcome.succeeded else EXIT_FAILED
        except JobStopped as stopped:
            # Stopped on request: ffmpeg is gone and the job recorded; the exit code says which signal, as a
            # shell's would for a process it ended.
            if stopped.outcome is not None:
                _print_document(stopped.outcome.document.to_json(), as_json=args.json)
            else:
                print(f"mediaworker: {stopped}", file=sys.stderr)
            return 128 + stopped.signum


@contextmanager
def _signals_raise(stop: Callable[[int], BaseException], *signums: signal.Signals) -> Iterator[None]:
    """While the block runs, the first of ``signums`` to arrive raises ``stop(signum)`` in the main thread,
    where the block is; a second one ends the process at once (the signal's default action). A signal this
    process was started ignoring (``nohup``, a background job of a shell) stays ignored."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        for which in signums:
            signal.signal(which, signal.SIG_DFL)
        raise stop(signum)

    previous = {which: signal.getsignal(which) for which in signums}
    for which, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(which, handler)
    try:
        yield
    finally:
        for which, before in previous.items():
            signal.signal(which, before)


def _match(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.clip_job import match_clip

    if not args.clip.startswith("s3://") and not _is_file(args.clip):
        print(f"mediaworker: no such file: {echo(args.clip, limit=256)}", file=sys.stderr)
        return EXIT_USAGE
    catalog = Catalog.open(settings.catalog_url)
    try:
        document = match_clip(settings, args.clip, catalog=catalog, storage=open_storage(settings), top=args.top)
    except MediaError as exc:
        print(f"mediaworker: the clip was rejected: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except StorageError as exc:  # the clip's store, or this machine's work folder (full, read-only)
        if args.json:
            json.dump({"matches": [], "error": {"code": exc.code, "message": str(exc)}}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        print(f"mediaworker: the clip could not be matched: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FFmpegError as exc:  # ffprobe or ffmpeg could not run at all: the worker, not the clip (worker_error)
        print(f"mediaworker: the clip could not be read: worker_error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        catalog.dispose()
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not document["matches"]:
        print("no match in the catalog")
    for found in [] if args.json else document["matches"]:
        speed = "" if found["speed"] == 1 else f"  (at {found['speed']:.3f}x speed)"
        print(f"{found['asset_id']}  score {found['score']:.2f}  clip {found['query_offset_s']:.1f} s"
              f" = asset {found['asset_offset_s']:.1f} s  for {found['matched_s']:.1f} s{speed}")
    return EXIT_OK


def _is_file(path: str) -> bool:
    """Whether ``path`` names a regular file; a name no file system here can hold (too long) names none."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    """Remove the asset from the catalog, then every ladder under its prefix in the store: the one the catalog
    named, and any that no document names (a job that died while publishing)."""
    catalog = Catalog.open(settings.catalog_url)
    try:
        recorded = catalog.delete_asset(args.asset_id)
    finally:
        catalog.dispose()
    try:
        prefix = asset_prefix(args.asset_id)
    except ValueError:  # no ladder can have been published under an id that cannot be a key
        prefix = None
    removed = open_storage(settings).delete_prefix(settings.output_bucket, prefix) if prefix else 0
    if recorded is None and not removed:
        print(f"mediaworker: no asset {echo(args.asset_id)} in the catalog", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.asset_id} deleted ({removed} published objects removed)")
    return EXIT_OK


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.celery_app import QUEUES, create_app

    celery_args = list(args.celery_args)
    if not any(arg == "-Q" or arg.startswith(("-Q", "--queues")) for arg in celery_args):
        celery_args += ["--queues", ",".join(QUEUES)]
    app = create_app(settings)
    app.worker_main(["worker", "--loglevel=INFO", *celery_args])
    return EXIT_OK


def _submit(settings: Settings, args: argparse.Namespace) -> int:
    from workers.celery_app import create_app
    from workers.submit import submit_job

    app = create_app(settings)
    runtime = app.conf.mediaworker_runtime
    job_id = submit_job(app, runtime, args.source, asset_id=args.asset_id)
    print(job_id)
    return EXIT_OK


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.catalog.leases import request_cancel
    from workers.celery_app import create_app

    app = create_app(settings)
    status = request_cancel(app.conf.mediaworker_runtime.catalog, args.job_id)
    if status is None:
        print(f"mediaworker: no job {echo(args.job_id)} in the catalog", file=sys.stderr)
        return EXIT_USAGE
    app.control.revoke(args.job_id)  # a worker that has the message but has not started it drops it
    print(f"{args.job_id} {status}{' (stopping)' if status == 'running' else ''}")
    return EXIT_OK


def _status(settings: Settings, args: argparse.Namespace) -> int:
    """The job's document; a job whose process is gone without ending it is ended ``interrupted`` first."""
    catalog = Catalog.open(settings.catalog_url)
    try:
        _end_interrupted(catalog)
        job = catalog.get_job(args.id) or _asset_job(catalog, args.id)
    finally:
        catalog.dispose()
    if job is None:
        print(f"mediaworker: no job or asset {echo(args.id)} in the catalog", file=sys.stderr)
        return EXIT_USAGE
    document = job.document or _running_document(job)
    _print_document(document, as_json=args.json)
    return EXIT_FAILED if job.status == "failed" else EXIT_OK


def _end_interrupted(catalog: Catalog) -> None:
    """End the jobs that a ``process`` of this machine left ``running`` when it died (see
    ``leases.end_interrupted_local_jobs``). A catalog that cannot take the write (read-only) still answers
    reads: the jobs are then shown as they are, and ended by a later command."""
    try:
        for job_id in end_interrupted_local_jobs(catalog, holder_is_gone=holder_is_gone):
            log.warning("job %s: its process is gone; ended as interrupted", job_id)
    except CatalogError as exc:
        log.warning("could not end the jobs of processes that are gone: %s", exc)


def _asset_job(catalog: Catalog, asset_id: str) -> Job | None:
    """The job ``status ASSET`` shows: the asset's newest job — unless that one succeeded and a job of the asset
    that finished after it replaced its ladder (jobs of one asset run at once), then the asset's current one."""
    newest = catalog.latest_job_for_asset(asset_id)
    if newest is None or newest.status != "succeeded":
        return newest
    asset = catalog.get_asset(asset_id)
    current = asset.latest_job_id if asset is not None else None
    return (catalog.get_job(current) if current not in (None, newest.id) else None) or newest


def _failed(settings: Settings, args: argparse.Namespace) -> int:
    """Failed jobs, poison masters among them (``worker_lost``: given up after repeated worker deaths)."""
    from pipelines.catalog.leases import failed_jobs

    catalog = Catalog.open(settings.catalog_url)
    try:
        _end_interrupted(catalog)
        jobs = failed_jobs(catalog, limit=args.limit)
    finally:
        catalog.dispose()
    rows = [{"job_id": job.id, "asset_id": job.asset_id, "source": job.source_uri, "code": job.error_code,
             "message": job.error_message, "attempts": job.attempts, "lost_runs": job.lost_runs,
             "finished_at": job.finished_at.isoformat() if job.finished_at else None} for job in jobs]
    if args.json:
        json.dump({"jobs": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    for row in [] if args.json else rows:
        print(f"{row['finished_at'] or '-'}  {row['job_id']}  {row['asset_id']}  {row['code']}: {row['message']}")
    return EXIT_OK


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.media.tags import normalise_isrc, normalise_language

    isrc = normalise_isrc(args.isrc) if args.isrc else None
    language = normalise_language(args.language) if args.language else None
    if (args.isrc and isrc is None) or (args.language and language is None):
        bad = (f"not an ISRC: {echo(args.isrc)}" if args.isrc and isrc is None
               else f"not a language: {echo(args.language)}")
        print(f"mediaworker: {bad}", file=sys.stderr)
        return EXIT_USAGE
    catalog = Catalog.open(settings.catalog_url)
    try:
        assets = catalog.find_assets(
            tempo=args.tempo, key=args.key, mode=args.mode, content_class=args.content_class, isrc=isrc,
            artist=args.artist, language=language, kind=args.kind, limit=args.limit,
        )
    finally:
        catalog.dispose()
    found = [_asset_summary(asset) for asset in assets]
    if args.json:
        json.dump({"assets": found}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not found:
        print("no asset in the catalog matches")
    for entry in found:
        tempo = f"{entry['tempo']:.1f} BPM" if entry["tempo"] is not None else "- BPM"
        print(f"{entry['asset_id']}  {entry['artist'] or '?'} - {entry['title'] or '?'}  {tempo}"
              f"  {_key_name(entry['key'], entry['mode'])}  {entry['content_class'] or '-'}  {entry['isrc'] or ''}")
    return EXIT_OK


def _asset_summary(asset: Asset) -> dict[str, Any]:
    """An asset's queryable fields, as ``search --json`` lists them."""
    fields = ("kind", "duration_s", "title", "artist", "album", "isrc", "language", "release_date", "tempo", "key",
              "mode", "content_class", "loudness_lufs", "quality_score", "hls_master", "latest_job_id")
    return {"asset_id": asset.id, **{name: getattr(asset, name) for name in fields}}


def _positive_int(text: str) -> int:
    """A count the user asks for (``--top``, ``--limit``): 0 or less would silently answer nothing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {echo(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _tempo_range(text: str) -> tuple[float, float]:
    """``LO-HI`` in BPM, or one BPM (within 1 BPM of it). A range that no tempo the analysis reports can fall in
    (NaN, infinite, negative, reversed, or wholly outside its 30-300 BPM) is an error, not an empty answer."""
    from pipelines.audio.rhythm import MAX_BPM, MIN_BPM

    low, sep, high = text.partition("-")
    try:
        bounds = (float(low), float(high)) if sep else (float(low) - 1.0, float(low) + 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a BPM or a BPM range: {echo(text)}") from None
    if not all(math.isfinite(bound) and bound >= 0.0 for bound in bounds):
        raise argparse.ArgumentTypeError(f"a BPM is a finite number of 0 or more: {echo(text)}")
    if bounds[0] > bounds[1]:
        raise argparse.ArgumentTypeError(f"the range is reversed (LO-HI): {echo(text)}")
    if bounds[1] < MIN_BPM or bounds[0] > MAX_BPM:
        raise argparse.ArgumentTypeError(f"outside the tempos the analysis reports ({MIN_BPM:g}-{MAX_BPM:g} BPM): "
                                         f"{echo(text)}")
    return bounds


def _pitch_class(text: str) -> int:
    from pipelines.audio.key import PITCH_CLASSES

    name = text.strip()
    if name.lstrip("-").isdigit() and -1 <= int(name) <= 11:
        return int(name)
    flats = {f"{PITCH_CLASSES[(i + 1) % 12]}b": i for i in range(12) if "#" in PITCH_CLASSES[i]}
    names = {pitch.upper(): i for i, pitch in enumerate(PITCH_CLASSES)} | {k.upper(): v for k, v in flats.items()}
    if name.upper() in names:
        return names[name.upper()]
    raise argparse.ArgumentTypeError(f"not a key: {echo(text)} (0..11, -1, or a name such as A, C#, Bb)")


def _mode(text: str) -> int:
    modes = {"1": 1, "major": 1, "0": 0, "minor": 0}
    if text.lower() not in modes:
        raise argparse.ArgumentTypeError(f"not a mode: {echo(text)} (1 or major, 0 or minor)")
    return modes[text.lower()]


def _key_name(key: int | None, mode: int | None) -> str:
    from pipelines.audio.key import PITCH_CLASSES

    if key is None or not 0 <= key <= 11:
        return "no key"
    return f"{PITCH_CLASSES[key]} {'major' if mode == 1 else 'minor' if mode == 0 else ''}".strip()


def _running_document(job: Job) -> dict[str, Any]:
    """What ``status`` shows for a job that has not finished: its state and progress so far."""
    from pipelines.document import JobDocument, Progress  # the document's types import the stages

    return JobDocument(asset_id=job.asset_id, job_id=job.id, status=job.status,
                       progress=Progress(job.stage, job.percent)).to_json()


def _print_document(document: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    out = sys.stdout
    print(f"asset {document['asset_id']}  job {document.get('job_id')}  {document['status']}", file=out)
    if document.get("stage") and document["status"] not in ("succeeded", "failed"):
        print(f"  {document['stage']} {document.get('percent', 0):.1f}%", file=out)
    if document.get("error"):
        print(f"  error {document['error']['code']}: {document['error']['message']}", file=out)
    if document.get("withdrawn"):
        print(f"  outputs removed: {document['withdrawn']}", file=out)
    probe = document.get("probe")
    if probe:
        print(f"  {probe['kind']} master, {probe['duration_s']:.1f} s, {probe['container']}", file=out)
    hls = document.get("hls")
    if hls:
        print(f"  master playlist: {hls['master']}", file=out)
        for rendition in hls["renditions"]:
            print(
                f"    {rendition['name']:>10}  {rendition['bandwidth'] / 1000:8.0f} kbit/s peak"
                f"  {rendition['average_bandwidth'] / 1000:8.0f} avg  {rendition['codecs']}"
                f"  {rendition['resolution'] or ''}",
                file=out,
            )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
