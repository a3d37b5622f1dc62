"""Landlock: what a decoder may touch on this machine, enforced by the kernel.

ffmpeg's own whitelists (``-protocol_whitelist``, ``-format_whitelist``) keep a crafted master from making it
open anything; this module is the second wall, for the day a decoder bug lets a file run code. Before exec,
the child restricts itself (Linux ≥ 5.13, Landlock ABI 1+) so that it may

* read and map only the system's programs and libraries (``/usr`` and friends), the linker cache, the CPU
  and NUMA topology in ``/sys``, and the paths the job names (the master);
* write only under the job's output folder;
* execute only its own program and the ELF interpreter: it cannot start a shell or any other program;
* with ABI 4+, neither connect nor bind a TCP socket; with ABI 6+, neither reach an abstract Unix socket nor
  signal a process outside its sandbox.

The ruleset is built in the parent (:func:`build_ruleset`), so that the child, between fork and exec, only
makes two system calls (:func:`restrict_self`). A kernel without Landlock (or a seccomp profile that hides it)
gets a logged warning and the whitelists alone; any other failure is a :class:`SandboxError`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
import errno
import functools
import logging
import os
from pathlib import Path
import shutil
import sys
from typing import Literal

log = logging.getLogger(__name__)

# x86_64 and aarch64 share the generic syscall numbers for Landlock (added after the tables were unified).
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (include/uapi/linux/landlock.h), and the ABI that introduced each.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only rights a rule on a file may hold
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = READ_FILE | READ_DIR
_WRITE = _READ | WRITE_FILE | TRUNCATE | MAKE_REG | MAKE_DIR | REMOVE_FILE | REMOVE_DIR | REFER

SYSTEM_READABLE: tuple[str, ...] = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache",
    "/sys/devices/system/cpu", "/sys/devices/system/node", "/dev/null", "/dev/urandom",
)
"""What any dynamically linked decoder needs to start; missing entries are skipped. Not ``/etc`` (passwords,
certificates), not ``/proc`` (other processes' command lines), not ``/home`` or ``/tmp``."""

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class SandboxError(OSError):
    """The sandbox could not be set up although the kernel supports it."""


@dataclass(frozen=True)
class Sandbox:
    """The paths one subprocess may use beyond the system's libraries: ``read`` (files or folders, read only)
    and ``write`` (folders: read, create, write, rename and delete beneath them)."""

    read: tuple[Path, ...] = ()
    write: tuple[Path, ...] = ()


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI (1…), or 0 when Landlock is absent, disabled or hidden by seccomp."""
    if _LIBC is None:
        return 0
    version = _LIBC.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(version))


def build_ruleset(program: str, sandbox: Sandbox) -> int | None:
    """A Landlock ruleset file descriptor for running ``program`` in ``sandbox``; the caller closes it.

    Returns ``None`` (after one logged warning per process) where the kernel has no Landlock. Raises
    ``SandboxError`` when the kernel has it but a rule cannot be added (a path that does not exist)."""
    abi = abi_version()
    if abi == 0:
        _warn_once("this kernel has no Landlock: decoders are confined by rlimits and ffmpeg's "
                   "protocol and format whitelists only, not to the job's folder")
        return None
    if abi < 4:
        _warn_once(f"Landlock ABI {abi} cannot restrict TCP: decoders keep network access "
                   "(ffmpeg's protocol whitelist still refuses every network protocol)")
    assert _LIBC is not None
    attr = _RulesetAttr(_FS_BY_ABI.get(abi, _FS_BY_ABI[5]), _NET_BIND_TCP | _NET_CONNECT_TCP,
                        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct as this ABI knows it
    fd = int(_LIBC.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)))
    if fd < 0:
        raise SandboxError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    handled = attr.handled_access_fs
    try:
        for system_path in SYSTEM_READABLE:
            if os.path.exists(system_path):
                _allow(fd, Path(system_path), _READ & handled)
        executable = _resolve_program(program)
        for path in (executable, *_interpreters(executable)):
            _allow(fd, path, (READ_FILE | EXECUTE) & handled)
        for path in sandbox.read:
            _allow(fd, path, _READ & handled)
        for path in sandbox.write:
            _allow(fd, path, _WRITE & handled)
    except BaseException:
        os.close(fd)
        raise
    return fd


def restrict_self(ruleset_fd: int) -> None:
    """In the child, before exec: no new privileges, then enter the ruleset. Raises ``OSError``.

    Only system calls here — this runs between fork and exec, where allocating or taking locks is unsafe."""
    assert _LIBC is not None
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if _LIBC.syscall(_SYS_RESTRICT_SELF, ruleset_fd, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def _allow(ruleset_fd: int, path: Path, rights: int) -> None:
    assert _LIBC is not None
    try:
        path_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        code = exc.errno or errno.EINVAL
        raise SandboxError(code, f"cannot open {path} for a Landlock rule: {exc.strerror}") from exc
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(rights, path_fd)
        if _LIBC.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            code = ctypes.get_errno()
            raise SandboxError(code, f"landlock_add_rule({path}): {os.strerror(code)}")
    finally:
        os.close(path_fd)


def _resolve_program(program: str) -> Path:
    found = program if os.sep in program else shutil.which(program)
    if found is None:
        raise SandboxError(errno.ENOENT, f"{program} is not on PATH")
    return Path(found).resolve()


def _interpreters(executable: Path) -> list[Path]:
    """The ELF interpreter (``ld-linux…``) the kernel opens for exec, or a script's ``#!`` program."""
    try:
        with open(executable, "rb") as reader:
            head = reader.read(4096)
    except OSError:
        return []
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].split()
        if not line:
            return []
        interpreter = Path(os.fsdecode(line[0])).resolve()
        return [interpreter, *_interpreters(interpreter)] if interpreter != executable else [interpreter]
    if not head.startswith(b"\x7fELF") or head[4] != 2:  # 64-bit ELF only; anything else runs without one
        return []
    order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
    phoff = int.from_bytes(head[32:40], order)
    phentsize, phnum = int.from_bytes(head[54:56], order), int.from_bytes(head[56:58], order)
    with open(executable, "rb") as reader:
        for index in range(phnum):
            reader.seek(phoff + index * phentsize)
            header = reader.read(phentsize)
            if int.from_bytes(header[0:4], order) == 3:  # PT_INTERP
                offset, size = int.from_bytes(header[8:16], order), int.from_bytes(header[32:40], order)
                reader.seek(offset)
                return [Path(os.fsdecode(reader.read(size).rstrip(b"\0"))).resolve()]
    return []


@functools.cache
def _warn_once(message: str) -> None:
    """Log ``message`` the first time only: the kernel does not change while the worker runs."""
    log.warning(message)
