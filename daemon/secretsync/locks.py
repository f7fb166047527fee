"""One writer per output: an exclusive advisory lock held for as long as an output is managed.

The lock is a ``flock`` on ``.<name>.secretsync-lock`` next to the output: it
must sit where any other secretsync (another daemon, a ``once``, another
container sharing the volume) would look for it, whatever their config. The
file holds the holder's pid, for the error message of the one refused. It is
never deleted (deleting a lock file races with the next holder); the kernel
releases the lock when the holder exits, however it exits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from secretsync.files import open_dir

LOCK_SUFFIX = ".secretsync-lock"
LOCK_MODE = 0o644  # others may open it read-only to flock it and read the pid
PID_MAX_BYTES = 32


class LockHeld(Exception):
    """Another process holds the lock of ``path``; ``pid`` is its pid when known."""

    safe_message = True

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{path} is managed by another secretsync process ({holder})")
        self.path = path
        self.pid = pid


def lock_name(output_name: str) -> str:
    """The lock file's name for an output file name."""
    return f".{output_name}{LOCK_SUFFIX}"


def _open_lock(dir_fd: int, name: str) -> int:
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(name, os.O_RDWR | flags, LOCK_MODE, dir_fd=dir_fd)
    except PermissionError:
        # created by a process of another user: a read-only handle can still flock it
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd
        )
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "lock file is not a regular file", name)
    return fd


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError):
        text = os.pread(fd, PID_MAX_BYTES, 0).decode("ascii", "replace").strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


class OutputLock:
    """The lock of one output. The constructor does no I/O; :meth:`acquire` takes it."""

    def __init__(self, path: Path, directory: Path) -> None:
        self.path = path
        self.directory = directory
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"OutputLock(path={str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting. Raises LockHeld, or OSError when the lock file
        cannot be made (the directory is not writable: the write will fail the same way)."""
        if self._fd is not None:
            return
        with open_dir(self.directory, create=True) as dir_fd:
            fd = _open_lock(dir_fd, lock_name(self.path.name))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise LockHeld(self.path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # a read-only handle cannot record our pid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the handle releases it). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
