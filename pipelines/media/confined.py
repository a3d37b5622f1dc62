"""The one door every ffmpeg and ffprobe run goes through.

A stage describes a run as an :class:`FFmpegCall`: its argv with each input given as a plain ``-i PATH``, the
inputs it reads, the folders it writes, its kind. The description is pure data, built by the stage's
``build_*_cmd`` function and tested as a golden value. :func:`run_confined` adds, for every call alike:

* **the input hardening**, before each ``-i`` (:func:`hardened_argv`): ``-protocol_whitelist file`` (local files
  only: no network, no ``pipe:``, no ``concat:``), ``-format_whitelist`` of the demuxers that input may be read
  with, and ``-max_pixels`` (:attr:`~pipelines.config.Limits.max_pixels`: no decoder allocates an image bomb).
  A master is read through :data:`~pipelines.config.ACCEPTED_DEMUXERS` only (:func:`master_input`); the one
  input that needs a demuxer that opens further files is a rung the job encoded itself, read back through its
  HLS playlist (:func:`encoded_input`: ``hls`` and ``mov`` for its fMP4 segments, nothing else). An ``-i`` that
  names no declared input is refused: nothing is read unhardened;
* **the sandbox** (:mod:`pipelines.media.sandbox`, unless ``Limits.sandbox`` is off): the program may read its
  inputs and nothing else of the job (a master's file; a rung's folder), and write only the call's ``writes``;
* **the rlimits** of :meth:`~pipelines.config.Limits.rlimits` (address space, file size, no core, processes),
  with the call's own tighter cap on file size where it has one, and CPU time from the timeout;
* **a clean environment** (``PATH`` only), its own session and process group, killed when the call ends
  (:func:`pipelines.media.runner.run`);
* **a wall-clock limit of its own kind** (:meth:`~pipelines.config.Limits.timeout_s`): a probe, a picture, an
  audio or video decode, a transcode and a quality pass each have theirs.

Other programs (none today) would run through :func:`pipelines.media.runner.run` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
from pathlib import Path
import resource
import shlex

from pipelines.config import ACCEPTED_DEMUXERS, CallKind, Limits
from pipelines.media.runner import Completed, ProgressCallback, run
from pipelines.media.sandbox import Sandbox

log = logging.getLogger(__name__)

ENCODED_DEMUXERS: tuple[str, ...] = ("hls", "mov")
"""What a rung this job encoded is read back with: the ``hls`` demuxer for its playlist, which opens the init and
media segments the playlist names (ffmpeg applies the same whitelist to them), and ``mov`` for those fMP4
segments (or for a single MP4 file)."""

HARDENING_OPTIONS = frozenset({"-protocol_whitelist", "-format_whitelist", "-max_pixels"})
"""Added by :func:`hardened_argv` only: a call that set one itself could undo it."""


@dataclass(frozen=True, kw_only=True)
class MediaInput:
    """A file a call reads with ``-i``: the demuxers it may be read with, and what the sandbox lets the program
    read for it (the file itself, or the folder of a playlist and its segments)."""

    path: Path
    demuxers: tuple[str, ...]
    readable: Path


def master_input(path: Path) -> MediaInput:
    """A master (the job's local copy of it, or a clip): the accepted demuxers only, that file alone readable."""
    return MediaInput(path=path, demuxers=ACCEPTED_DEMUXERS, readable=path)


def encoded_input(path: Path) -> MediaInput:
    """A rung the job encoded, read back as published: its HLS playlist (or a single MP4 file) through
    :data:`ENCODED_DEMUXERS`, its folder readable (the playlist, its init and media segments)."""
    return MediaInput(path=path, demuxers=ENCODED_DEMUXERS, readable=path.parent)


@dataclass(frozen=True, kw_only=True)
class FFmpegCall:
    """One ffmpeg or ffprobe run as a stage describes it, before :func:`run_confined` hardens and confines it."""

    kind: CallKind
    """What the run does: it chooses the run's time limit (:meth:`~pipelines.config.Limits.timeout_s`)."""
    args: tuple[str, ...]
    """The argv, program first; each input as ``-i PATH`` (ffprobe too), without any option of
    :data:`HARDENING_OPTIONS`."""
    inputs: tuple[MediaInput, ...]
    """Every file the run reads, each named by exactly one ``-i``."""
    writes: tuple[Path, ...] = ()
    """Existing folders the program may create, write and delete files beneath; nothing else is writable."""
    cwd: Path | None = None
    duration_s: float = 0.0
    """Seconds of media the run goes through (the master's duration), for the kinds whose limit grows with it."""
    max_file_bytes: int | None = None
    """A tighter cap than ``Limits.output_file_mb`` on any file the program writes (``RLIMIT_FSIZE``)."""


def _hardening(item: MediaInput, limits: Limits) -> list[str]:
    """The options placed before ``-i`` for ``item``: local files only, its demuxers only, ``-max_pixels``."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(item.demuxers),
            "-max_pixels", str(limits.max_pixels)]


def hardened_argv(call: FFmpegCall, limits: Limits) -> list[str]:
    """``call.args`` with the input hardening before each ``-i``: the argv :func:`run_confined` runs.

    Raises ``ValueError`` (a bug in the stage, not bad input) when an ``-i`` names a file that is not one of
    ``call.inputs``, a declared input is not read by exactly one ``-i``, or the call sets a hardening option
    itself.
    """
    declared = {str(item.path): item for item in call.inputs}
    if len(declared) != len(call.inputs):
        raise ValueError("an input is declared twice")
    argv: list[str] = []
    read: set[str] = set()
    tokens = iter(call.args)
    for token in tokens:
        if token in HARDENING_OPTIONS:
            raise ValueError(f"{token} is the door's to set, not the call's")
        if token != "-i":
            argv.append(token)
            continue
        path = next(tokens, "")
        item = declared.get(path)
        if item is None or path in read:
            raise ValueError(f"-i {path!r} is not a declared input, or is read twice")
        read.add(path)
        argv += [*_hardening(item, limits), "-i", path]
    if unread := set(declared) - read:
        raise ValueError(f"declared inputs never read with -i: {sorted(unread)}")
    return argv


def run_confined(
    call: FFmpegCall,
    *,
    limits: Limits,
    on_progress: ProgressCallback | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
) -> Completed:
    """Run ``call`` hardened (:func:`hardened_argv`), in its sandbox, under the rlimits, with ``PATH`` alone in
    its environment and the time limit of its kind; ``on_progress``/``on_stdout`` as in
    :func:`pipelines.media.runner.run`.

    Raises ``FFmpegError`` when the program cannot start or be confined (``returncode`` ``None``), exits
    non-zero, or runs past ``limits.timeout_s(call.kind, duration_s=call.duration_s)`` (``timed_out``); the
    process group is gone when this returns.
    """
    argv = hardened_argv(call, limits)
    log.info("ffmpeg %s: %s", call.kind, shlex.join(argv))
    rlimits = limits.rlimits()
    if call.max_file_bytes is not None:
        rlimits[resource.RLIMIT_FSIZE] = min(rlimits[resource.RLIMIT_FSIZE], call.max_file_bytes)
    sandbox = None
    if limits.sandbox:
        sandbox = Sandbox(read=tuple(item.readable.resolve() for item in call.inputs),
                          write=tuple(folder.resolve() for folder in call.writes))
    return run(argv, timeout_s=limits.timeout_s(call.kind, duration_s=call.duration_s), cwd=call.cwd,
               on_progress=on_progress, on_stdout=on_stdout, rlimits=rlimits, sandbox=sandbox)
