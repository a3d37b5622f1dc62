"""librosa's compiled kernels: loaded once per process, never while another process writes their cache.

librosa compiles its inner loops (the beat tracker's dynamic programme, peak picking, local maxima…) with
numba and keeps the machine code in numba's on-disk cache (``cache=True``). Most of them are ``@guvectorize``
kernels, built when their librosa module is imported: loaded from the cache when it holds them, compiled and
written to it when not.

**Why the cache needs a lock.** numba stores each gufunc as two files in one folder: the kernel
(``<name>-<line>.py311.1.nbc``) and the ufunc wrapper that calls the kernel by its symbol name
(``guf-<name>-<line>.py311.1.nbc``). That symbol carries an ABI tag, ``abi:v<N>``, where ``N`` counts the
functions *this process* has compiled so far (``numba.core.bytecode.FunctionIdentity``), so a process that found
some kernels already cached numbers the next one differently from a process that compiled them all. When two
processes fill the cache at the same moment, one can write a kernel and the other its wrapper: the cache then
holds a wrapper that calls a symbol its kernel does not define. The processes that wrote it run on (they use the
code in their own memory), but any process that loads the pair afterwards — a later run, or one of the group that
reached the import a moment later — jumps to a null function pointer and dies of a segfault inside the gufunc, on
every run, until the cache is deleted. This is numba issue 10128, still open in numba 0.68. It crashed this
project's workers twice when a Celery pool's processes compiled at once. Without the lock below,
``tests/test_kernels.py`` (four ``mediaworker process`` runs started together on an empty cache, then a fifth)
failed two times in three, a run dying in ``librosa.beat.beat_track`` with signal 11.

**What this module does about it.** :func:`load_kernels` imports every librosa module the analysis uses —
compiling or loading all their kernels — while holding an exclusive ``flock`` on ``mediaworker.lock`` in the
cache folder. Only one process at a time reads or writes the cache; a process that waited finds it complete and
only loads. Nothing else in the analysis touches the cache afterwards: the analysis calls no lazily compiled
kernel (``tests/test_kernels.py`` checks that analysing after :func:`load_kernels` reads no cache index), and
nothing in ``pipelines`` imports a kernel-bearing librosa module at import time. The cache folder is our own,
so that no process which does not take the lock writes into it: ``NUMBA_CACHE_DIR`` when set (numba's own
setting: whoever sets it shares it knowingly), else ``$XDG_CACHE_HOME/mediaworker/numba`` (by default
``~/.cache/mediaworker/numba``); the variable is set for this process before numba is imported, because numba
reads it then. Where that folder cannot be written, a private temporary folder is used (safe, but every
process then compiles for itself).

A Celery worker loads the kernels in its parent process before the pool forks (``worker_init``, through
:func:`pipelines.audio.features.warm_up`): pool processes inherit them compiled and never open the cache.
Separate processes — ``mediaworker process`` runs started together on one machine — take turns on the lock.

Costs, measured by ``bench/features_bench.py`` on one core: filling an empty cache takes ~23 s of CPU (once per
machine, librosa and numba version; 35–55 s of wall time on a busy core); loading from it ~3 s per process, part
of it librosa's one kernel that is never cached (the beat tracker's local score, ``cache=False``), compiled anew
by every process. Processes that wait for the lock wait that long.
"""

from __future__ import annotations

from collections.abc import Mapping
import fcntl
import functools
import importlib
import logging
import os
from pathlib import Path
import sys
import tempfile
import time

log = logging.getLogger(__name__)

CACHE_DIR_VARIABLE = "NUMBA_CACHE_DIR"
LOCK_NAME = "compile.lock"
KERNEL_MODULES = ("librosa.util", "librosa.filters", "librosa.feature", "librosa.onset", "librosa.beat")
"""Every librosa module the analysis calls: importing them builds all the kernels it needs."""


def cache_folder(env: Mapping[str, str]) -> Path:
    """Where the kernels are cached: ``NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/mediaworker/numba``
    (``~/.cache/mediaworker/numba`` without ``XDG_CACHE_HOME``)."""
    if env.get(CACHE_DIR_VARIABLE):
        return Path(env[CACHE_DIR_VARIABLE]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "mediaworker" / "numba"


@functools.cache
def load_kernels() -> Path:
    """Compile or load the kernels of every librosa module the analysis uses, under the cache's lock; return the
    cache folder. Once per process (later calls return at once), and inherited by processes forked afterwards.

    Blocks while another process holds the lock (it is loading, ~3 s, or filling an empty cache, ~25 s).
    Raises what importing librosa raises (``ImportError``).
    """
    folder = _usable_folder(cache_folder(os.environ))
    _point_numba_at(folder)
    started = time.perf_counter()
    with open(folder / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("librosa kernels: waiting for another process to finish with the cache in %s", folder)
            fcntl.flock(lock, fcntl.LOCK_EX)
        # Held until the file closes: every kernel is built or loaded, and written, with no other process at it.
        for name in KERNEL_MODULES:
            importlib.import_module(name)
    log.debug("librosa kernels ready in %.1f s (cache %s)", time.perf_counter() - started, folder)
    return folder


def _usable_folder(folder: Path) -> Path:
    """``folder`` when this process can create and write it; else a private temporary folder. (numba itself would
    fall back to another, shared location that this lock does not cover.)"""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK_NAME, "a"):
            pass
        return folder
    except OSError as error:
        private = Path(tempfile.mkdtemp(prefix="mediaworker-numba-"))
        log.warning("librosa kernels: cannot use %s (%s); compiling into %s for this process only",
                    folder, error, private)
        return private


def _point_numba_at(folder: Path) -> None:
    """Make numba cache into ``folder``: it reads ``NUMBA_CACHE_DIR`` on import (and on demand afterwards)."""
    built = [name for name in KERNEL_MODULES if name in sys.modules]
    if built:
        log.warning("librosa kernels: %s imported before the cache lock was taken; their cache is not protected",
                    ", ".join(built))
    os.environ[CACHE_DIR_VARIABLE] = str(folder)
    if "numba" in sys.modules:
        from numba.core import config

        config.reload_config()  # type: ignore[no-untyped-call]  # numba ships no types
