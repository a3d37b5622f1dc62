"""Who touched a file: the kernel's inotify, for tests that must prove a process never read or created something.

Unlike an access time (``relatime`` and ``noatime`` mounts skip updates), inotify reports every ``open`` and
``read`` of a watched file, and every entry created in a watched folder, by any process of the machine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
import struct
from types import TracebackType

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_CREATE = 0x100
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class FileWatch:
    """``with FileWatch(file, folder) as watch: …; watch.events()`` — opens and reads of the files, entries created
    in the folders, since the watch began."""

    def __init__(self, *paths: Path, mask: int = IN_OPEN | IN_ACCESS | IN_CREATE) -> None:
        self._fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._paths: dict[int, Path] = {}
        for path in paths:
            wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"cannot watch {path}")
            self._paths[wd] = path

    def events(self) -> list[tuple[Path, str]]:
        """What happened since the last call: ``(watched path, "open" | "read" | "created <name>")``."""
        found: list[tuple[Path, str]] = []
        while True:
            try:
                buffer = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(buffer):
                wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
                name = buffer[offset + _HEADER.size: offset + _HEADER.size + length].rstrip(b"\0").decode()
                offset += _HEADER.size + length
                path = self._paths.get(wd, Path("?"))
                if mask & IN_OPEN:
                    found.append((path, "open"))
                if mask & IN_ACCESS:
                    found.append((path, "read"))
                if mask & IN_CREATE:
                    found.append((path, f"created {name}"))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FileWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
