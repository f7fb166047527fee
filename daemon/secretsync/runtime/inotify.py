"""Directory change sources for the watcher: inotify through libc, or stat polling.

:class:`Inotify` holds one inotify descriptor (``inotify_init1(IN_NONBLOCK |
IN_CLOEXEC)`` through ctypes on the C library the interpreter already links):
the daemon sleeps in the kernel between events, and the event loop reads the
descriptor when it becomes readable (``loop.add_reader``). :class:`DirPoller`
is the fallback when inotify cannot be had (no inotify in the kernel or the C
library, ``inotify_init1`` refused, the watch limit reached: ENOSPC): it lists
each directory and compares the ``lstat`` of every entry with the last listing.

Both report changed paths: a file inside a watched directory, or a watched
directory itself (removed, moved, replaced). Neither does I/O in its constructor.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_READ_SIZE = 64 * 1024


class Unavailable(OSError):
    """inotify cannot be used here (use :class:`DirPoller`)."""


def _libc() -> Any:
    import ctypes  # noqa: PLC0415 (only a daemon that watches pays for ctypes)

    try:
        # the C library the interpreter is linked with; no ldconfig or compiler is run
        libc = ctypes.CDLL(None, use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError) as exc:
        raise Unavailable(errno.ENOSYS, f"no inotify in the C library: {exc}") from None
    init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return libc


class Inotify:
    """One inotify descriptor watching directories (non-recursive).

    :meth:`open` creates it (raises :class:`Unavailable`), :meth:`add` watches a
    directory (ENOSPC, the per-user watch limit, raises :class:`Unavailable`; other
    errors raise OSError), :meth:`read` drains what is queued, :meth:`close` ends it.
    """

    def __init__(self) -> None:
        self.fd = -1
        self.overflowed = False  # the kernel dropped events: everything may have changed
        self._dirs: dict[int, Path] = {}
        self._libc: Any = None

    def open(self) -> None:
        import ctypes  # noqa: PLC0415

        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise Unavailable(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd

    def add(self, directory: Path) -> None:
        import ctypes  # noqa: PLC0415

        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:  # fs.inotify.max_user_watches reached
                raise Unavailable(err, f"inotify watch limit reached ({os.strerror(err)})")
            raise OSError(err, os.strerror(err), str(directory))
        self._dirs[wd] = directory

    def read(self) -> set[Path]:
        """The paths changed since the last read (without blocking)."""
        changed: set[Path] = set()
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return changed
            if not data:
                return changed
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True
                    continue
                directory = self._dirs.get(wd)
                if directory is None:
                    continue
                name = raw.split(b"\0", 1)[0]
                # IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED: the directory itself
                changed.add(directory / os.fsdecode(name) if name else directory)
                if mask & IN_IGNORED:
                    del self._dirs[wd]

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


_Stamp = tuple[int, int, int, int, int, int, int]


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DirPoller:
    """Stat polling of a few directories: what changed since the last :meth:`scan`."""

    def __init__(self, directories: Iterable[Path]) -> None:
        self.directories = sorted(directories)
        self._last: dict[Path, _Stamp | None] = {}

    def _listing(self) -> dict[Path, _Stamp | None]:
        seen: dict[Path, _Stamp | None] = {}
        for directory in self.directories:
            try:
                seen[directory] = _stamp(os.stat(directory))
                with os.scandir(directory) as entries:
                    for entry in entries:
                        try:
                            seen[Path(entry.path)] = _stamp(entry.stat(follow_symlinks=False))
                        except OSError:
                            seen[Path(entry.path)] = None
            except OSError:
                seen[directory] = None  # gone, or not readable
        return seen

    def scan(self) -> set[Path]:
        """The paths added, removed or changed (inode, mode, owner, size, times) since the
        last scan; the first scan only records."""
        now = self._listing()
        before, self._last = self._last, now
        if not before:
            return set()
        return {
            path
            for path in before.keys() | now.keys()
            if path not in before or path not in now or before[path] != now[path]
        }
