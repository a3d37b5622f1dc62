"""How every decoder runs: its own session, rlimits (CPU time and processes among them), an environment without
secrets, and — where the kernel has Landlock — only the job's files and no network.

The Landlock tests run real programs (``cat``, ``sh``, Python, ffmpeg) under :class:`Sandbox` and check what
the kernel refused; the last one shows why it matters: the same ffmpeg command that copies a canary file to
its output when unconfined fails to read it when confined.
"""

from __future__ import annotations

import logging
from pathlib import Path
import resource
import socket
import sys

import pytest

from pipelines.config import Limits
from pipelines.errors import FFmpegError
from pipelines.media import sandbox as sandbox_module
from pipelines.media.confined import FFmpegCall, hardened_argv, master_input
from pipelines.media.runner import cpu_limit_s, run
from pipelines.media.sandbox import Sandbox, abi_version
from tests.conftest import CliRunner, make_media

LANDLOCK = abi_version()
needs_landlock = pytest.mark.skipif(LANDLOCK == 0, reason="this kernel has no Landlock")
PYTHON = Path(sys.executable).resolve()
PYTHON_HOME = Path(sys.base_prefix)  # the interpreter's standard library: what a confined Python must read


def test_the_child_leads_its_own_session_and_process_group() -> None:
    code = "import os; print(os.getsid(0), os.getpgid(0), os.getpid())"
    sid, pgid, pid = run([sys.executable, "-c", code], timeout_s=30).stdout.split()
    assert sid == pgid == pid


def test_media_limits_reach_the_child_with_a_cpu_limit_from_the_timeout() -> None:
    limits = Limits(process_memory_mb=700, max_tasks=1234)
    text = run(["cat", "/proc/self/limits"], timeout_s=20, rlimits=limits.rlimits()).stdout.decode()
    rows = {line[:26].strip(): line[26:].split() for line in text.splitlines()[1:]}
    assert rows["Max address space"][:2] == [str(700 << 20)] * 2
    assert rows["Max processes"][:2] == ["1234", "1234"]
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert rows["Max cpu time"][:2] == [str(cpu_limit_s(20)), str(cpu_limit_s(20) + 5)]
    assert cpu_limit_s(20) >= 20  # never shorter than the wall clock


def test_a_decoder_spinning_past_its_cpu_time_is_stopped_as_a_timeout() -> None:
    """The kernel's backstop: with no caller left to watch the clock, the CPU limit still ends the spin."""
    with pytest.raises(FFmpegError) as info:
        run([sys.executable, "-c", "while True: pass"], timeout_s=120, rlimits={resource.RLIMIT_CPU: 1})
    assert info.value.timed_out and info.value.returncode is None


def test_the_child_environment_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAWORKER_S3_SECRET_KEY", "hunter2-not-for-ffmpeg")
    names = [line.split("=", 1)[0] for line in run(["env"], timeout_s=10).stdout.decode().splitlines()]
    assert names == ["PATH"]


@needs_landlock
def test_only_the_named_files_are_readable(tmp_path: Path) -> None:
    master, other = tmp_path / "master", tmp_path / "other"
    master.write_text("the master")
    other.write_text("someone else's")
    allowed = Sandbox(read=(master,))
    assert run(["cat", str(master)], timeout_s=10, sandbox=allowed).stdout == b"the master"
    for path in (other, Path("/etc/passwd"), Path("/proc/1/cmdline")):
        with pytest.raises(FFmpegError) as info:
            run(["cat", str(path)], timeout_s=10, sandbox=allowed)
        assert "Permission denied" in info.value.stderr_tail, path


@needs_landlock
def test_only_the_output_folder_is_writable(tmp_path: Path) -> None:
    out, beside = tmp_path / "out", tmp_path / "beside"
    out.mkdir()
    beside.mkdir()
    code = (f"import os; open('{out}/a', 'w').write('ok\\n'); os.mkdir('{out}/d'); "
            f"os.rename('{out}/a', '{out}/d/b'); open('{beside}/x', 'w')")
    with pytest.raises(FFmpegError) as info:
        run([str(PYTHON), "-I", "-S", "-c", code], timeout_s=30, sandbox=Sandbox(read=(PYTHON_HOME,), write=(out,)))
    assert "PermissionError" in info.value.stderr_tail
    assert (out / "d" / "b").read_text() == "ok\n"
    assert list(beside.iterdir()) == []


@needs_landlock
def test_no_other_program_may_be_started() -> None:
    with pytest.raises(FFmpegError) as info:
        run(["sh", "-c", "exec cat /dev/null"], timeout_s=10, sandbox=Sandbox())
    assert info.value.returncode == 126 and "Permission denied" in info.value.stderr_tail


@pytest.mark.skipif(LANDLOCK < 4, reason="Landlock restricts TCP from ABI 4")
def test_no_tcp_connection_leaves_the_sandbox() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')"
        argv = [str(PYTHON), "-I", "-S", "-c", code]
        assert run(argv, timeout_s=30).stdout.strip() == b"connected"  # unconfined, it gets through
        with pytest.raises(FFmpegError) as info:
            run(argv, timeout_s=30, sandbox=Sandbox(read=(PYTHON_HOME,)))
    assert "PermissionError" in info.value.stderr_tail


@needs_landlock
def test_a_demuxer_tricked_into_reading_a_file_is_stopped_by_the_sandbox(tmp_path: Path) -> None:
    """The second wall. An ``ffconcat`` script names a file outside the job; without ``-format_whitelist``
    ffmpeg follows it. Unconfined, the file's bytes come out; confined to the script alone, they do not."""
    secret = b"canary-3f9a0c1e"
    canary = make_media(tmp_path / "canary.wav", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.5")
    canary.write_bytes(canary.read_bytes()[: -len(secret) * 8] + secret * 8)
    script = tmp_path / "job" / "master"
    script.parent.mkdir()
    script.write_text(f"ffconcat version 1.0\nfile '{canary}'\n")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file,pipe", "-f", "concat", "-safe", "0",
           "-i", str(script), "-c", "copy", "-f", "s16le", "pipe:1"]
    assert secret in run(cmd, timeout_s=60).stdout
    with pytest.raises(FFmpegError) as info:
        run(cmd, timeout_s=60, sandbox=Sandbox(read=(script,)))
    assert "Permission denied" in info.value.stderr_tail
    assert secret.decode() not in info.value.stderr_tail


@pytest.mark.parametrize(
    ("args", "inputs", "why"),
    [
        (("ffmpeg", "-i", "/job/master", "-i", "/etc/passwd", "out"), ("/job/master",), "not a declared input"),
        (("ffmpeg", "-i", "/job/master", "-i", "/job/master", "out"), ("/job/master",), "read twice"),
        (("ffmpeg", "-i", "/job/master", "out"), ("/job/master", "/job/other"), "never read"),
        (("ffmpeg", "-format_whitelist", "concat", "-i", "/job/master", "out"), ("/job/master",), "the door's"),
    ],
)
def test_the_door_refuses_a_call_that_reads_what_it_does_not_declare(
    args: tuple[str, ...], inputs: tuple[str, ...], why: str
) -> None:
    """Every ``-i`` is one declared input (and so hardened and readable in the sandbox), and only the door
    sets the whitelists: a stage that tried otherwise has a bug, found before anything runs."""
    call = FFmpegCall(kind="probe", args=args, inputs=tuple(master_input(Path(p)) for p in inputs))
    with pytest.raises(ValueError, match=why):
        hardened_argv(call, Limits())


def test_each_kind_of_run_has_its_own_time_limit() -> None:
    """A decode no longer borrows the transcode's limit; the limits grow with the master where the work does."""
    limits = Limits()
    one_hour = {kind: limits.timeout_s(kind, duration_s=3600.0)
                for kind in ("probe", "picture", "audio_decode", "video_decode", "transcode", "quality")}
    assert one_hour == {"probe": 60.0, "picture": 60.0, "audio_decode": 1920.0, "video_decode": 36300.0,
                        "transcode": 72300.0, "quality": 72300.0}


def test_a_sandbox_that_cannot_be_built_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError) as info:
        run(["true"], timeout_s=10, sandbox=Sandbox(read=(tmp_path / "missing",)))
    assert info.value.returncode is None
    if LANDLOCK:
        assert "cannot confine true" in info.value.stderr_tail


def test_without_landlock_the_run_goes_on_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A kernel without Landlock (simulated here: the ABI query is what such a kernel answers) still runs
    the job, under rlimits and ffmpeg's whitelists, and says so in the log."""
    monkeypatch.setattr(sandbox_module, "abi_version", lambda: 0)
    sandbox_module._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.media.sandbox"):
        assert run(["cat", "/etc/hostname"], timeout_s=10, sandbox=Sandbox()).stdout
    assert "no Landlock" in caplog.text


def test_a_confinement_failure_fails_the_job_with_a_reason(
    masters: dict[str, Path], home: Path, cli: CliRunner
) -> None:
    """A decoder that cannot be confined (here: its configured path does not exist) fails the job — exit code
    2, the document printed with the reason — rather than the process."""
    result = cli("process", str(masters["audio"]), "--json", env={"MEDIAWORKER_FFPROBE": "/nonexistent/ffprobe"})
    assert result.returncode == 2, result.stderr
    error = result.document["error"]
    assert error["code"] == "worker_error" and "/nonexistent/ffprobe" in error["message"], error
    assert "Traceback" not in result.stderr
