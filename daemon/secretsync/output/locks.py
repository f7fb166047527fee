"""One writer per output: an exclusive advisory lock held for as long as an output is managed.

The lock is a ``flock`` on ``.<name>.secretsync-lock`` next to the output: it
must sit where any other secretsync (another daemon, a ``once``, another
container sharing the volume) would look for it, whatever their config. The
file holds the holder's pid, for the error message of the one refused. It is
never deleted (deleting a lock file races with the next holder); the kernel
releases the lock when the holder exits, however it exits.

Whoever can write the output's directory can plant something else at the
lock's name. A lock that is not a regular file (a directory, FIFO, symlink,
socket or device) would lock nothing, so it is a refusal
(:class:`LockNotAFile`), like a lock held by another process
(:class:`LockHeld`); so is a lock that cannot be opened for want of file
descriptors. The lock file may also be deleted and remade under a holder,
which would leave two processes each holding a lock on a different file:
:meth:`OutputLock.ensure`, called before every write, checks that the file
at the lock's name is still the one held, and takes the new one otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import stat
import threading
from pathlib import Path

from secretsync.output.files import dir_handle, kind_of_mode

LOCK_SUFFIX = ".secretsync-lock"
LOCK_MODE = 0o644  # others may open it read-only to flock it and read the pid
PID_MAX_BYTES = 32
# Open files the daemon needs besides one per output (its lock): up to 64 metrics
# connections, AWS connection pools (primary, failover, push), notify commands' pipes
# and HTTP targets, the write threads' directory and temp handles, the watcher, logs.
FD_RESERVE = 256


class LockRefused(Exception):
    """Managing an output is refused: its lock cannot be taken (see the subclasses)."""

    safe_message = True  # paths, pids and OS error texts only


class LockHeld(LockRefused):
    """Another process holds the lock of ``path``; ``pid`` is its pid when known."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{path} is managed by another secretsync process ({holder})")
        self.path = path
        self.pid = pid


class LockNotAFile(LockRefused):
    """Something other than a regular file (``kind``) is at the lock's name of ``path``."""

    def __init__(self, path: Path, lock_path: Path, kind: str) -> None:
        super().__init__(
            f"{path}: its lock {lock_path} is a {kind}, not a regular file, so it would "
            "lock nothing; remove it (secretsync never removes it: it may be another "
            "process's)"
        )
        self.path = path
        self.kind = kind


class TooManyOutputs(LockRefused):
    """The open-files limit is too low for one lock per output plus the daemon's own needs."""

    def __init__(self, outputs: int, needed: int, limit: int) -> None:
        super().__init__(
            f"{outputs} outputs need about {needed} open files (one lock each, plus "
            f"{FD_RESERVE} for the daemon), but the open-files limit (RLIMIT_NOFILE) is "
            f"{limit}: raise it (ulimit -n, systemd LimitNOFILE=, the container's nofile "
            "ulimit) or split the outputs between several instances"
        )
        self.outputs = outputs
        self.needed = needed
        self.limit = limit


def lock_name(output_name: str) -> str:
    """The lock file's name for an output file name."""
    return f".{output_name}{LOCK_SUFFIX}"


def check_open_files(outputs: int) -> None:
    """Refuse (TooManyOutputs) to hold ``outputs`` locks when the soft open-files limit
    cannot also cover :data:`FD_RESERVE`. An unlimited limit always passes. The start
    raises the soft limit to the hard one first (see
    :func:`~secretsync.runtime.startup.raise_fd_limit`)."""
    needed = outputs + FD_RESERVE
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    raise TooManyOutputs(outputs, needed, soft)


def _kind_at(dir_fd: int, name: str) -> str | None:
    """What is at ``name`` when it is not a regular file (None: a file, or nothing)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else kind_of_mode(mode)


def _open_lock(dir_fd: int, name: str, path: Path, lock_path: Path) -> int:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | flags, LOCK_MODE, dir_fd=dir_fd)
    except OSError as exc:
        kind = _kind_at(dir_fd, name)
        if kind is not None:
            raise LockNotAFile(path, lock_path, kind) from None
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # created by a process of another user, or on a read-only volume: a read-only
        # handle can still flock it; when there is no file, the first error says why
        try:
            fd = os.open(name, os.O_RDONLY | flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise exc from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise LockNotAFile(path, lock_path, kind_of_mode(mode))
    return fd


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError):
        text = os.pread(fd, PID_MAX_BYTES, 0).decode("ascii", "replace").strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


class OutputLock:
    """The lock of one output. The constructor does no I/O; :meth:`acquire` takes it.

    Thread-safe: writes call :meth:`ensure` in worker threads while a reload may
    :meth:`release` it from the loop.
    """

    def __init__(self, path: Path, directory: Path) -> None:
        self.path = path
        self.directory = directory
        self._fd: int | None = None
        self._released = False
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"OutputLock(path={str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def lock_path(self) -> Path:
        return self.directory / lock_name(self.path.name)

    def acquire(self, dir_fd: int | None = None) -> None:
        """Take the lock without waiting. Raises LockRefused (held by another process,
        not a regular file, no file descriptor left), or OSError when the lock file cannot
        be made (the directory is not writable: the write would fail the same way).
        ``dir_fd``: a handle the caller holds on the lock's directory (from
        :func:`open_dir`, ``create=True``), used instead of walking to it again."""
        with self._mutex:
            if self._fd is None:
                self._fd = self._take(dir_fd)
                self._released = False

    def ensure(self, dir_fd: int | None = None) -> str | None:
        """Before a write: make sure the lock is held and is the file at the lock's name now.

        Returns None when it already was, ``"taken"`` when it was taken now (it
        could not be at start, e.g. on a volume then read-only), ``"retaken"``
        when the file at its name had been replaced and the new one was taken.
        A lock released (its output is no longer managed) is not taken again.
        Raises like :meth:`acquire`. ``dir_fd``: a handle the caller holds on
        the lock's directory (from :func:`open_dir`), used instead of walking
        to it again.
        """
        with self._mutex:
            if self._released:
                return None
            old = self._fd
            if old is not None and self._still_at_its_name(old, dir_fd):
                return None
            self._fd = None
            try:
                self._fd = self._take(dir_fd)
            finally:
                if old is not None:
                    os.close(old)  # an orphaned file locks nobody else out
            return "taken" if old is None else "retaken"

    def _still_at_its_name(self, fd: int, dir_fd: int | None) -> bool:
        # False when the file (or its whole directory) is gone: it is made again. Raises
        # OSError when the directory cannot be reached (a parent swapped for a symlink):
        # the lock held is kept, and the write fails the same way.
        try:
            with dir_handle(self.directory, dir_fd, create=False) as handle:
                here = os.stat(lock_name(self.path.name), dir_fd=handle, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def _take(self, dir_fd: int | None = None) -> int:
        try:
            with dir_handle(self.directory, dir_fd, create=True) as handle:
                fd = _open_lock(handle, lock_name(self.path.name), self.path, self.lock_path)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise LockRefused(
                    f"{self.path}: no file descriptor left to open its lock "
                    f"({exc.strerror}): raise the open-files limit"
                ) from None
            raise
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
        return fd

    def release(self) -> None:
        """Give the lock up (closing the handle releases it) for good. Safe to call twice."""
        with self._mutex:
            fd, self._fd, self._released = self._fd, None, True
            if fd is not None:
                os.close(fd)
