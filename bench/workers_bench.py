"""Workers benchmark: throughput of the distributed system with one and with two worker processes.

N short jobs go through the real parts: a Redis broker (its own db number, flushed first and last), a fresh
PostgreSQL catalog database (created and dropped here), an S3 server (``rclone serve s3``, ``tests.s3server``)
and ``mediaworker worker`` processes (prefork, concurrency 1 each, ``tests.workerproc``). Most jobs are 4 s
stereo FLAC masters (pink noise, so AAC does real work); ``--videos`` of them (sent first) are 4 s 640x360
MP4s. Masters are made once and cached under ``bench/.cache/workers/``.

Each run starts fresh workers, warms each pool process with one untimed job, creates the job rows (as
``mediaworker submit`` does), then times from the first ``send_task`` to the last job recorded ``succeeded``
in the catalog (its ``finished_at``; the bench polls the jobs table). Runs interleave 1w, 2w, 2w, 1w, ...
Reported: median jobs per minute for each worker count and the scaling ratio (2-worker / 1-worker
throughput). Table to stdout, figures to ``bench/results/workers.json``.

    .venv/bin/python bench/workers_bench.py [--jobs N] [--repeat R] [--videos V]
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid

from celery import Celery
import redis
from sqlalchemy import select

from pipelines.catalog import Catalog, Job

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # for tests.s3server and tests.workerproc
from tests.pgserver import throwaway_database  # noqa: E402
from tests.s3server import S3Server  # noqa: E402
from tests.workerproc import WorkerProcess  # noqa: E402

CACHE_DIR = BENCH_DIR / ".cache" / "workers"
RESULTS_FILE = BENCH_DIR / "results" / "workers.json"
REDIS_DB = 11  # the tests use 9
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
ADMIN_URL = os.environ.get("MEDIAWORKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TASK = "mediaworker.process_asset"
JOB_TIMEOUT_S = 600.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   stdin=subprocess.DEVNULL, check=True)


def make_masters(jobs: int, videos: int) -> list[Path]:
    """``videos`` 4 s 640x360 MP4s, then 4 s stereo FLACs (distinct pink noise each), cached."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(jobs):
        video = i < videos
        path = CACHE_DIR / (f"video-{i:03d}.mp4" if video else f"audio-{i:03d}.flac")
        if not path.exists():
            noise = f"anoisesrc=color=pink:amplitude=0.2:sample_rate=44100:duration=4:seed={i + 1}"
            part = path.with_name("part-" + path.name)
            if video:
                ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4", "-f", "lavfi", "-i", noise,
                       "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
                       "-c:a", "aac", "-b:a", "192k", "-shortest", str(part))
            else:
                ffmpeg("-f", "lavfi", "-i", noise, "-ac", "2", "-c:a", "flac", str(part))
            part.rename(path)
        paths.append(path)
    return paths


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat (other users' load included)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


class Bench:
    """The shared parts (broker, catalog, S3 server, uploaded masters) and one timed run at a time."""

    def __init__(self, env: dict[str, str], catalog: Catalog, sources: list[str], logs: Path) -> None:
        self.env, self.catalog, self.sources, self.logs = env, catalog, sources, logs
        self.client = Celery("bench-client", broker=BROKER_URL)
        self.run_no = 0

    def send(self, sources: list[str], tag: str) -> tuple[list[str], float]:
        """Create the job rows, then send every task; the ids and the wall-clock time of the first send."""
        ids = [self.catalog.create_job(asset_id=f"{tag}-{i:03d}", source_uri=s) for i, s in enumerate(sources)]
        started = time.time()
        for job_id, (i, source) in zip(ids, enumerate(sources), strict=True):
            self.client.send_task(TASK, kwargs={"asset_id": f"{tag}-{i:03d}", "source": source}, task_id=job_id,
                                  queue="transcode")
        return ids, started

    def wait(self, ids: list[str], workers: list[WorkerProcess]) -> list[Job]:
        """Poll the jobs table until every job succeeded; fail on a failed job or after the timeout."""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            with self.catalog.session() as session:
                jobs = list(session.scalars(select(Job).where(Job.id.in_(ids))))
                session.expunge_all()
            bad = [j for j in jobs if j.status in {"failed", "cancelled"}]
            if bad or time.monotonic() > deadline:
                tails = "\n".join(w.tail() for w in workers)
                what = f"job {bad[0].id} {bad[0].status}: {bad[0].error_message}" if bad else "timed out"
                raise RuntimeError(f"{what}\n{tails}")
            if sum(j.status == "succeeded" for j in jobs) == len(ids):
                return jobs
            time.sleep(0.2)

    def run(self, workers: int) -> dict[str, Any]:
        self.run_no += 1
        tag = f"r{self.run_no}-{uuid.uuid4().hex[:6]}"
        with contextlib.ExitStack() as stack:
            procs = []
            for i in range(workers):
                proc = WorkerProcess(f"bench{self.run_no}w{i}-{uuid.uuid4().hex[:4]}", self.env, self.logs)
                stack.callback(proc.stop)
                procs.append(proc.start())
            self.wait(self.send(self.sources[-workers:], f"{tag}-warm")[0], procs)  # one per pool process
            busy0, total0 = cpu_jiffies()
            ids, started = self.send(self.sources, tag)
            jobs = self.wait(ids, procs)
            polled = time.time() - started
            busy1, total1 = cpu_jiffies()
        wall = max(j.finished_at.timestamp() for j in jobs if j.finished_at) - started
        job_s = [(j.finished_at - j.started_at).total_seconds() for j in jobs if j.finished_at and j.started_at]
        return {"workers": workers, "wall_s": wall, "polled_wall_s": polled, "jobs_per_min": len(ids) * 60 / wall,
                "cores_busy": (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1),
                "job_s_median": statistics.median(job_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24, help="jobs per run (default 24)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each worker count (default 2)")
    parser.add_argument("--videos", type=int, default=2, help="how many of the jobs are video masters (default 2)")
    opts = parser.parse_args()
    if opts.jobs < 2 or not 0 <= opts.videos <= opts.jobs:
        parser.error("need --jobs >= 2 and 0 <= --videos <= --jobs")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup runs as for Ctrl-C
    masters = make_masters(opts.jobs, opts.videos)
    nproc, load_before = len(os.sched_getaffinity(0)), os.getloadavg()
    broker = redis.Redis(db=REDIS_DB)
    broker.flushdb()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(broker.flushdb)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workers-bench-")))
        (tmp / "logs").mkdir()
        s3 = stack.enter_context(S3Server(tmp / "s3", buckets=("masters", "media-out")))
        url = stack.enter_context(throwaway_database(ADMIN_URL, f"mediaworker_bench_{os.getpid()}"))
        catalog = Catalog.open(url)  # migrates the schema before any worker opens it
        stack.callback(catalog.dispose)
        client = s3.client()
        sources = []
        for path in masters:
            client.fput_object("masters", f"bench/{path.name}", str(path))
            sources.append(f"s3://masters/bench/{path.name}")
        env = {**os.environ, **s3.env, "MEDIAWORKER_HOME": str(tmp / "home"), "MEDIAWORKER_BROKER_URL": BROKER_URL,
               "MEDIAWORKER_CATALOG_URL": url}
        bench = Bench(env, catalog, sources, tmp / "logs")
        print(f"{opts.jobs} jobs per run ({opts.videos} video, {opts.jobs - opts.videos} audio); nproc {nproc}; "
              f"{opts.repeat} repeats", flush=True)
        for i in range(opts.repeat):
            for workers in (1, 2) if i % 2 == 0 else (2, 1):
                result = bench.run(workers)
                runs.append(result)
                print(f"  run {len(runs)} {workers}w  wall {result['wall_s']:6.2f} s  "
                      f"{result['jobs_per_min']:6.1f} jobs/min  cores busy {result['cores_busy']:.2f}  "
                      f"job median {result['job_s_median']:.2f} s", flush=True)
    load_after = os.getloadavg()
    summary: dict[str, dict[str, Any]] = {}
    for workers in (1, 2):
        mine = [r for r in runs if r["workers"] == workers]
        summary[f"{workers}w"] = {key: statistics.median(r[key] for r in mine)
                                  for key in ("wall_s", "jobs_per_min", "cores_busy", "job_s_median")}
        summary[f"{workers}w"]["jobs_per_min_runs"] = [r["jobs_per_min"] for r in mine]
    scaling = summary["2w"]["jobs_per_min"] / summary["1w"]["jobs_per_min"]

    print(f"\nnproc {nproc}; {opts.repeat} repeats; load avg {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'workers':<9}{'wall median s':>14}{'jobs/min':>10}{'cores busy':>12}{'job median s':>14}  jobs/min runs")
    for key, row in summary.items():
        runs_text = " ".join(f"{x:.1f}" for x in row["jobs_per_min_runs"])
        print(f"{key:<9}{row['wall_s']:>14.2f}{row['jobs_per_min']:>10.1f}{row['cores_busy']:>12.2f}"
              f"{row['job_s_median']:>14.2f}  {runs_text}")
    print(f"scaling 2w/1w   {scaling:.3f}  (ideal {min(2, nproc):.1f}; what it means: bench/README.md)")

    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "nproc": nproc,
        "load_avg_1m": {"before": load_before[0], "after": load_after[0]},
        "jobs": opts.jobs, "videos": opts.videos, "repeat": opts.repeat, "broker": BROKER_URL,
        "runs": runs, "medians": summary, "scaling_2w_over_1w": scaling,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
