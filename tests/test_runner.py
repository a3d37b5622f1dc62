"""The subprocess runner: progress parsing, timeouts that kill the whole process group, typed errors."""

from __future__ import annotations

import os
from pathlib import Path
import time

import pytest

from pipelines.errors import FFmpegError
from pipelines.media.runner import Progress, parse_progress_block, run

DATA = Path(__file__).parent / "data"


def test_progress_blocks_parse_from_captured_ffmpeg_output() -> None:
    text = (DATA / "ffmpeg_progress.txt").read_text()
    blocks, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.startswith("progress="):
            blocks.append(parse_progress_block(current))
            current = []
    assert blocks[0] == Progress(out_time_s=0.0, speed=0.0, done=False)
    assert blocks[-1] is not None and blocks[-1].done
    times = [b.out_time_s for b in blocks if b is not None]
    assert times == sorted(times) and times[-1] == pytest.approx(4.0, abs=0.1)


def test_progress_before_the_first_packet_reads_zero() -> None:
    block = parse_progress_block(["out_time_us=N/A", "out_time=N/A", "speed=N/A", "progress=continue"])
    assert block == Progress(out_time_s=0.0, speed=None, done=False)
    assert parse_progress_block(["frame=1"]) is None


def test_progress_callback_sees_every_block_as_it_comes() -> None:
    seen: list[Progress] = []
    run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=30", "-f", "null", "-",
         "-progress", "pipe:1", "-stats_period", "0.1"],
        timeout_s=60, on_progress=seen.append,
    )
    assert seen[-1].done and seen[-1].out_time_s == pytest.approx(30, abs=0.1)
    assert len(seen) >= 2


def test_stdout_is_returned_when_there_is_no_progress_callback() -> None:
    assert run(["sh", "-c", "printf hello"], timeout_s=10).stdout == b"hello"


def test_nonzero_exit_raises_with_the_stderr_tail() -> None:
    with pytest.raises(FFmpegError) as info:
        run(["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"], timeout_s=10)
    assert info.value.returncode == 3 and not info.value.timed_out
    assert info.value.stderr_tail.splitlines()[-1] == "the reason"
    assert info.value.cmd[0] == "sh"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A program that spawns a grandchild and hangs is killed with its grandchild at the deadline."""
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(FFmpegError) as info:
        run(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"], timeout_s=1.0)
    assert info.value.timed_out and info.value.returncode is None
    assert time.monotonic() - started < 60  # the 1 s deadline cut the 300 s hang short (a bound, not a speed goal)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_missing_program_is_an_error_not_a_crash() -> None:
    with pytest.raises(FFmpegError) as info:
        run(["/nonexistent/ffmpeg", "-version"], timeout_s=5)
    assert info.value.returncode is None and "cannot start" in info.value.stderr_tail


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc tells the truth.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_children_die_with_a_killed_caller(tmp_path: Path) -> None:
    """A caller killed outright (as by a hard time limit) takes its ffmpeg with it: no orphan keeps running."""
    import subprocess
    import sys

    pid_file = tmp_path / "child.pid"
    script = (
        "from pipelines.media.runner import run\n"
        f"run(['sh', '-c', 'echo $$ > {pid_file}; exec sleep 300'], timeout_s=300)\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120  # a Python start and an import, on a machine that may be busy
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert _alive(child)
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_resource_limits_apply_to_the_child() -> None:
    import resource

    limits = {resource.RLIMIT_AS: 512 << 20, resource.RLIMIT_FSIZE: 64 << 20, resource.RLIMIT_CORE: 0}
    text = run(["cat", "/proc/self/limits"], timeout_s=10, rlimits=limits).stdout.decode()
    rows = {line[:26].strip(): line[26:].split() for line in text.splitlines()[1:]}
    assert rows["Max address space"][:2] == [str(512 << 20)] * 2
    assert rows["Max file size"][:2] == [str(64 << 20)] * 2
    assert rows["Max core file size"][:2] == ["0", "0"]


@pytest.mark.parametrize("stderr", [
    # what ffmpeg 5.1 said, three 720p x264 rungs from one decode, at 300, 400 and 500 MiB of address space
    "sws: initFilter failed\nFailed to inject frame into filter network: Cannot allocate memory",
    "x264 [error]: malloc of size 12116928 failed\nError initializing output stream 0:0 -- Error while opening "
    "encoder for output stream #0:0 - maybe incorrect parameters such as bit_rate, rate, width or height",
    "Failed to configure output pad on Parsed_scale_3\nError reinitializing filters!\nFailed to inject frame into "
    "filter network: Resource temporarily unavailable",
    "ffmpeg: error while loading shared libraries: libgomp.so.1: failed to map segment from shared object",  # 200
])
def test_an_allocation_failure_reads_as_the_memory_limit(stderr: str) -> None:
    assert FFmpegError(["ffmpeg"], 1, stderr).out_of_memory


def test_a_broken_input_does_not_read_as_the_memory_limit() -> None:
    stderr = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] moov atom not found\nmaster: Invalid data found when processing input"
    assert not FFmpegError(["ffmpeg"], 1, stderr).out_of_memory
