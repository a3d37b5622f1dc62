"""librosa's numba kernels and their on-disk cache: processes that analyse at once all succeed and leave a sound cache.

The failure this guards against (numba issue 10128, see ``pipelines/audio/kernels.py``): processes filling an empty
numba cache at the same moment can store a gufunc's kernel from one process and its wrapper from another. They
themselves run on; the next process that loads the cache segfaults in the beat tracker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from pipelines.audio.features import FeatureSink, warm_up
from pipelines.audio.kernels import LOCK_NAME, cache_folder, load_kernels
from tests.conftest import FIXTURES, MEDIAWORKER, REPO, make_media

PROCESSES = 4
CLICK_BPM = 120.0


def test_importing_the_worker_compiles_nothing() -> None:
    # Kernels are built when librosa's modules are imported: none may be before load_kernels takes the lock.
    code = ("import sys; import workers.cli, workers.celery_app, pipelines.job, pipelines.audio.features, "
            "pipelines.audio.rhythm; print(sorted(m for m in ('numba', 'librosa.beat', 'librosa.util') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_after_load_kernels_the_analysis_never_opens_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every cache read or write goes through an index file; none may happen outside load_kernels (and its lock).
    load_kernels()
    from numba.core.caching import IndexDataCacheFile

    opened: list[str] = []
    original = IndexDataCacheFile._load_index

    def counting(self: Any) -> Any:
        opened.append(str(self._index_path))
        return original(self)

    monkeypatch.setattr(IndexDataCacheFile, "_load_index", counting)
    rate = 44100
    t = np.arange(30 * rate) / rate
    clicks = (np.sin(2 * np.pi * 1000.0 * t) * (np.mod(t, 60.0 / CLICK_BPM) < 0.02)).astype(np.float32)
    inputs = {
        "stereo music": (_decode(FIXTURES / "music_hyperrogue_20s.ogg", channels=2, rate=rate), rate),
        "16 kHz speech": (_decode(FIXTURES / "speech_librivox_16k.flac", channels=1, rate=16000), 16000),
        "clicks": (clicks.reshape(-1, 1), rate),
        "silence": (np.zeros((5 * rate, 1), dtype=np.float32), rate),
    }
    tempos = {}
    for name, (pcm, pcm_rate) in inputs.items():
        sink = FeatureSink(rate=pcm_rate, channels=pcm.shape[1])
        for start in range(0, len(pcm), 8192):
            sink.feed(np.ascontiguousarray(pcm[start : start + 8192]))
        tempos[name] = sink.finish().rhythm.tempo_bpm
    FeatureSink(rate=rate, channels=2).finish()
    warm_up()
    assert tempos["clicks"] == pytest.approx(CLICK_BPM, rel=0.02)  # the beat tracker did run
    assert opened == []


def test_the_cache_is_numbas_setting_or_our_own_folder(tmp_path: Path) -> None:
    assert cache_folder({"NUMBA_CACHE_DIR": str(tmp_path / "numba")}) == tmp_path / "numba"
    assert cache_folder({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "mediaworker" / "numba"
    assert cache_folder({}) == Path.home() / ".cache" / "mediaworker" / "numba"


def test_a_celery_pool_inherits_the_kernels_from_its_parent_and_never_opens_the_cache(tmp_path: Path) -> None:
    # A real worker (prefork pool, in-memory broker) whose pool processes analyse at the same moment: the parent
    # loaded the kernels before forking (worker_init), so no pool process reads the cache, let alone writes it.
    out = tmp_path / "reports"
    out.mkdir()
    env = {**os.environ, "MEDIAWORKER_HOME": str(tmp_path / "home")}
    worker = subprocess.run([sys.executable, "-m", "tests.pool_worker", str(out), str(PROCESSES)], cwd=REPO,
                            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    assert worker.returncode == 0, worker.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in out.glob("[0-9]*.json")]
    assert len({report["pid"] for report in reports}) == PROCESSES, worker.stderr[-3000:]
    for report in reports:
        assert report["kernels_inherited"] and report["own_cache_reads"] == []
        assert report["parent_cache_reads"] > 0  # the parent did load them, and the reads are counted
        assert report["tempo"] == pytest.approx(CLICK_BPM, rel=0.02)


def test_processes_started_together_on_an_empty_cache_all_succeed_and_leave_it_sound(tmp_path: Path) -> None:
    # Four `mediaworker process` runs on one MEDIAWORKER_HOME, started together on an empty kernel cache: without
    # the lock they fill it at once and may pair one process's kernel with another's wrapper. Then a fifth run
    # loads what they left: that is where the corruption showed, as a segfault (return code -11).
    source = make_media(tmp_path / "clicks.flac", "-f", "lavfi", "-i",
                        f"aevalsrc=0.8*sin(2*PI*1000*t)*lt(mod(t\\,{60.0 / CLICK_BPM})\\,0.02):s=44100:d=12",
                        "-ac", "2")
    cache = tmp_path / "numba"
    env = {**os.environ, "MEDIAWORKER_HOME": str(tmp_path / "home"), "NUMBA_CACHE_DIR": str(cache)}
    # The home's catalog is created first (a lookup creates it, and loads no kernel): first runs racing to create
    # one SQLite catalog fail in its migrations, a separate defect this test is not about.
    lookup = subprocess.run([MEDIAWORKER, "status", "none"], capture_output=True, text=True, env=env, timeout=300)
    assert "no job or asset" in lookup.stderr and not cache.exists()
    runs = [
        subprocess.Popen([MEDIAWORKER, "process", str(source), "--asset-id", f"together-{i}", "--json"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(PROCESSES)
    ]
    outputs = [run.communicate(timeout=1800) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-3000:]
        _assert_clicks_analysed(json.loads(out))
    assert (cache / LOCK_NAME).exists()
    assert list(cache.rglob("guf-*.nbc")), "the kernels were not cached where NUMBA_CACHE_DIR says"
    later = subprocess.run([MEDIAWORKER, "process", str(source), "--asset-id", "afterwards", "--json"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=1800)
    assert later.returncode == 0, later.stderr[-3000:]
    _assert_clicks_analysed(json.loads(later.stdout))


def _assert_clicks_analysed(document: dict[str, Any]) -> None:
    assert document["status"] == "succeeded", document.get("error")
    features = document["features"]
    assert features["tempo"] == pytest.approx(CLICK_BPM, rel=0.02)
    beats = np.asarray(features["beats"])
    assert len(beats) >= 15
    assert np.abs(beats - np.round(beats / 0.5) * 0.5).max() < 0.03  # on the clicks, every 0.5 s


def _decode(path: Path, *, channels: int, rate: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", str(channels), "-ar", str(rate),
           "-f", "f32le", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True, timeout=120).stdout
    return np.frombuffer(out, dtype="<f4").reshape(-1, channels)
