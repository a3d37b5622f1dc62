"""A real Celery worker with a prefork pool whose processes analyse audio at the same moment (``test_kernels.py``).

``python -m tests.pool_worker OUT PROCESSES`` runs the app of ``workers.celery_app`` on an in-memory broker (no
shared broker is touched), sends ``PROCESSES`` analysis tasks, and runs a worker with that many pool processes
until each task has written ``OUT/<pid>.json``: the pool process's id, its parent's, the numba cache index reads
the parent and that pool process made, and the tempo it measured. The tasks wait for each other before they
analyse, so that all the pool processes analyse at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any

from numba.core.caching import IndexDataCacheFile
import numpy as np

from pipelines.config import Settings

DEADLINE_S = 900.0
CLICK_BPM = 120.0
CACHE_READS: list[tuple[int, str]] = []
"""(pid, index file) of every numba cache index read in this process, and in the pool processes forked from it."""

_load_index = IndexDataCacheFile._load_index


def _counting_load_index(self: Any) -> Any:
    CACHE_READS.append((os.getpid(), str(self._index_path)))
    return _load_index(self)


def analyse_in_pool(out: str, processes: int) -> None:
    """In a pool process: wait until ``processes`` pool processes have arrived, analyse 20 s of clicks, report."""
    from pipelines.audio.features import FeatureSink

    folder = Path(out)
    (folder / f"arrived-{os.getpid()}").touch()
    deadline = time.monotonic() + DEADLINE_S
    while len(list(folder.glob("arrived-*"))) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    rate = 44100
    t = np.arange(20 * rate) / rate
    clicks = (np.sin(2 * np.pi * 1000.0 * t) * (np.mod(t, 60.0 / CLICK_BPM) < 0.02)).astype(np.float32)
    kernels_inherited = "librosa.beat" in sys.modules
    sink = FeatureSink(rate=rate, channels=1)
    sink.feed(clicks.reshape(-1, 1))
    tempo = sink.finish().rhythm.tempo_bpm
    report = {
        "pid": os.getpid(), "parent": os.getppid(), "tempo": tempo, "kernels_inherited": kernels_inherited,
        "own_cache_reads": [path for pid, path in CACHE_READS if pid == os.getpid()],
        "parent_cache_reads": sum(1 for pid, _ in CACHE_READS if pid == os.getppid()),
    }
    (folder / f"{os.getpid()}.json").write_text(json.dumps(report))


def main() -> None:
    out, processes = Path(sys.argv[1]), int(sys.argv[2])
    IndexDataCacheFile._load_index = _counting_load_index  # type: ignore[method-assign]
    from workers.celery_app import create_app

    app = create_app(Settings.from_env({**os.environ, "MEDIAWORKER_BROKER_URL": "memory://"}))
    task = app.task(name="tests.analyse_in_pool")(analyse_in_pool)
    for _ in range(processes):
        task.apply_async(kwargs={"out": str(out), "processes": processes}, queue="analysis")

    def stop_when_reported() -> None:
        deadline = time.monotonic() + DEADLINE_S
        while len(list(out.glob("[0-9]*.json"))) < processes and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's warm shutdown

    threading.Thread(target=stop_when_reported, daemon=True).start()
    worker = app.Worker(pool="prefork", concurrency=processes, queues=["analysis"], loglevel="WARNING",
                        without_heartbeat=True, without_mingle=True, without_gossip=True)
    worker.start()


if __name__ == "__main__":
    main()
