"""Atomic write-if-changed for output files.

Like consul-template's renderer, but the temp file is born with its final mode
(never readable by others, not even for an instant), owner and group are set
before the rename, and the directory is fsynced so the rename survives a crash.

Directories are reached through handles, never through a path string: every
component of an output's directory is opened with ``O_NOFOLLOW`` from the root
down, so a directory that someone replaces with a symlink after secretsync
started managing the output is refused, not followed. Symlinks that exist in
the configured path when management starts are resolved once (see
:func:`real_dir`) and then trusted, like the rest of the operator's config.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import os
import pwd
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DIR_MODE = 0o750
TEMP_SUFFIX = ".secretsync.tmp"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WriteError(Exception):
    """An output could not be written; the previous file is untouched."""

    safe_message = True  # paths and OS error texts only

    def __init__(self, path: Path, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason  # short word for metrics labels: errno name or "owner"


@dataclass(frozen=True)
class WriteResult:
    """``did_render``: the content changed on disk; ``fixed_attrs``: only mode/owner were
    fixed; ``removed``: what was in the way at the file's name and was removed first (see
    :func:`remove_non_file`), None when nothing was."""

    did_render: bool
    fixed_attrs: bool = False
    removed: str | None = None


def _resolve_id(value: str | int | None, lookup: Callable[[str], int], what: str) -> int:
    if value is None:
        return -1
    if isinstance(value, int) or (value.isascii() and value.isdigit()):
        return int(value)
    try:
        return lookup(value)
    except KeyError:
        raise WriteError(Path(), "owner", f"unknown {what} {value!r}") from None


def resolve_uid(owner: str | int | None) -> int:
    """A user name or numeric uid → uid; ``None`` → -1 (leave as is). Raises WriteError."""
    return _resolve_id(owner, lambda name: pwd.getpwnam(name).pw_uid, "user")


def resolve_gid(group: str | int | None) -> int:
    """A group name or numeric gid → gid; ``None`` → -1 (leave as is). Raises WriteError."""
    return _resolve_id(group, lambda name: grp.getgrnam(name).gr_gid, "group")


def real_dir(path: Path) -> Path:
    """The directory of ``path`` with the symlinks that exist now resolved.

    Called once when secretsync starts managing an output; later writes walk
    this directory without following any symlink.
    """
    return Path(os.path.realpath(path.parent))


@contextlib.contextmanager
def open_dir(directory: Path, *, create: bool = False) -> Iterator[int]:
    """Yield a handle on ``directory``, opened component by component without following links.

    With ``create``, missing components are made with mode 0750 each. Raises
    OSError: ``ELOOP``/``ENOTDIR`` when a component is a symlink or not a
    directory, ``ENOENT`` when one is missing and ``create`` is False.
    """
    if not directory.is_absolute():
        raise OSError(errno.EINVAL, "not an absolute path", str(directory))
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in directory.parts[1:]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # made by someone else meanwhile
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(child, DIR_MODE)  # the umask may have removed bits
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def dir_handle(directory: Path, held: int | None, *, create: bool = False) -> Iterator[int]:
    """``held``, a handle its owner already holds on ``directory`` (and closes), else a
    new handle from :func:`open_dir`, closed on exit."""
    if held is not None:
        yield held
        return
    with open_dir(directory, create=create) as dir_fd:
        yield dir_fd


def _open_regular(dir_fd: int, name: str) -> int | None:
    """A read handle on regular file ``name`` in ``dir_fd``; None if missing, a link or special."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd
        )
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _read_fd(fd: int, limit: int | None = None) -> bytes:
    """Read to the end, or at most ``limit`` bytes."""
    chunks = []
    left = limit
    while left is None or left > 0:
        chunk = os.read(fd, 1 << 16 if left is None else min(1 << 16, left))
        if not chunk:
            break
        chunks.append(chunk)
        if left is not None:
            left -= len(chunk)
    return b"".join(chunks)


def _holds(dir_fd: int, name: str, data: bytes) -> bool:
    """True when ``name`` is a regular file with exactly ``data`` (a file of another size,
    however large, is not read; one that grows meanwhile is read one byte past ``data``)."""
    fd = _open_regular(dir_fd, name)
    if fd is None:
        return False
    try:
        return os.fstat(fd).st_size == len(data) and _read_fd(fd, len(data) + 1) == data
    finally:
        os.close(fd)


@contextlib.contextmanager
def _regular_file(path: Path) -> Iterator[int | None]:
    """A read-only fd of the regular file at ``path`` (closed on exit), or None when
    :func:`_open_regular` refuses it; the directory is reached as :func:`open_dir` does."""
    with open_dir(Path(os.path.abspath(path.parent))) as dir_fd:
        fd = _open_regular(dir_fd, path.name)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)


def read_current(path: Path, *, max_bytes: int | None = None) -> bytes | None:
    """The file's bytes, or None when it does not exist, is not a regular file, or its
    directory cannot be reached without following a symlink.

    With ``max_bytes``, a file larger than that is None too, and is never read
    further than one byte past the cap (its size is checked first; one that
    grows while it is read is still cut there), so a huge or sparse file
    costs no memory.
    """
    try:
        with _regular_file(path) as fd:
            if fd is None:
                return None
            if max_bytes is None:
                return _read_fd(fd)
            if os.fstat(fd).st_size > max_bytes:
                return None
            data = _read_fd(fd, max_bytes + 1)
            return None if len(data) > max_bytes else data
    except OSError:
        return None


def digest_file(path: Path, *, max_bytes: int) -> str | None:
    """sha256 (hex) of the regular file at ``path``, read in chunks (constant memory);
    None when :func:`read_current` would give None or the file is larger than
    ``max_bytes`` (it is not read at all: hashing a huge sparse file would take minutes)."""
    try:
        with _regular_file(path) as fd:
            if fd is None or os.fstat(fd).st_size > max_bytes:
                return None
            digest = hashlib.sha256()
            left = max_bytes + 1
            while left > 0 and (chunk := os.read(fd, min(1 << 16, left))):
                digest.update(chunk)
                left -= len(chunk)
            return None if left <= 0 else digest.hexdigest()
    except OSError:
        return None


_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def kind_of_mode(mode: int) -> str:
    """A word for a file type (``st_mode``): file, directory, symlink, fifo, socket, device."""
    return next((word for test, word in _KINDS if test(mode)), "device")


def remove_non_file(dir_fd: int, name: str) -> str | None:
    """Clear ``name`` in ``dir_fd`` of anything that is not a regular file.

    A symlink (never its target), FIFO, socket or device node is unlinked; an
    empty directory is removed. Returns what was removed (see
    :func:`kind_of_mode`), or None when the name is free or a regular file.
    Raises OSError: ``ENOTEMPTY`` for a directory that holds something (its
    content is never deleted), or whatever stops the removal.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    kind = kind_of_mode(st.st_mode)
    try:
        if kind == "directory":
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:  # removed by someone else meanwhile
        pass
    return kind


def _fix_attrs(dir_fd: int, name: str, mode: int, uid: int, gid: int) -> bool:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        changed = False
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
            changed = True
        if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
            os.fchown(fd, uid, gid)
            changed = True
        return changed
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_if_changed(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    uid: int = -1,
    gid: int = -1,
    directory: Path | None = None,
    before_replace: Callable[[int], None] | None = None,
    dir_fd: int | None = None,
) -> WriteResult:
    """Make ``path`` hold exactly ``data`` with ``mode`` and owner ``uid``/``gid`` (-1: keep).

    ``directory`` is the real directory to write in (:func:`real_dir` of the
    path when management started; by default it is resolved now). It is
    walked without following symlinks; missing components are created 0750.

    When the bytes already match, nothing is written; a drifted mode or owner is
    corrected in place. Something other than a regular file at ``path`` (a
    symlink, FIFO, socket, device or empty directory) is removed first and named
    in the result; a directory that holds something is a WriteError (reason
    ``not_a_file``) and is left alone. Otherwise a temp file is created in the same directory
    with ``O_EXCL|O_NOFOLLOW`` and the final mode, chowned, written, fsynced,
    ``before_replace(inode of the temp file)`` is called (the notification
    journal records it), the temp file is renamed over ``path``, and the
    directory is fsynced. On any failure the temp file is removed, the old file
    is untouched, and WriteError is raised (an exception raised by
    ``before_replace`` propagates as it is, after the clean-up).

    ``dir_fd``: a handle the caller already holds on ``directory`` (opened with
    :func:`open_dir`, ``create=True``), used instead of walking to it again.
    """
    directory = directory if directory is not None else real_dir(path)
    name = path.name
    try:
        with dir_handle(directory, dir_fd, create=True) as handle:
            if _holds(handle, name, data):
                return WriteResult(False, fixed_attrs=_fix_attrs(handle, name, mode, uid, gid))
            try:
                removed = remove_non_file(handle, name)
            except OSError as exc:
                if _is_dir(handle, name):
                    raise _not_a_file(path, exc) from None
                raise
            _replace(handle, name, data, mode, uid, gid, before_replace)
            os.fsync(handle)  # the rename is durable once the directory is
    except OSError as exc:
        raise write_error(path, directory, exc) from None
    except (OverflowError, ValueError) as exc:  # an owner id the kernel cannot take
        raise WriteError(path, "owner", f"cannot set owner/group: {type(exc).__name__}") from None
    return WriteResult(did_render=True, removed=removed)


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _not_a_file(path: Path, exc: OSError) -> WriteError:
    why = (
        "it holds files, and secretsync removes only an empty one"
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST)
        else f"it cannot be removed: {exc.strerror or type(exc).__name__}"
    )
    return WriteError(
        path, "not_a_file", f"a directory is in the way at the output's name ({why}): remove it"
    )


def _replace(  # noqa: PLR0917 (one private step of write_if_changed)
    dir_fd: int,
    name: str,
    data: bytes,
    mode: int,
    uid: int,
    gid: int,
    before_replace: Callable[[int], None] | None,
) -> None:
    tmp = f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits we asked for
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace(inode)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        # whatever went wrong (a full disk, a bad owner id, a journal failure, a
        # signal), a copy of the secret must not stay behind
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def temp_owner(filename: str) -> str | None:
    """The output file name a temp file of ours belongs to, or None if it is not ours."""
    match = _TEMP_RE.match(filename)
    return match.group("name") if match else None


def sweep_temps(directory: Path, names: Iterable[str]) -> list[str]:
    """Remove our stale temp files for the outputs ``names`` in ``directory``.

    Only regular files matching our pattern (``.<name>.<8 hex>.secretsync.tmp``)
    for one of ``names`` are removed: a crash (kill -9, power loss) between
    creating a temp file and renaming it leaves a copy of a secret behind.
    Call it only for outputs this process holds the lock of. Returns the
    removed file names; a directory that cannot be read gives an empty list.
    """
    wanted = set(names)
    removed: list[str] = []
    try:
        with open_dir(directory) as dir_fd:
            for entry in os.listdir(dir_fd):
                if temp_owner(entry) not in wanted:
                    continue
                with contextlib.suppress(OSError):
                    st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        os.unlink(entry, dir_fd=dir_fd)
                        removed.append(entry)
    except OSError:
        return removed
    return removed


def write_error(path: Path, directory: Path, exc: OSError) -> WriteError:
    """The WriteError for an OSError met while writing ``path`` in ``directory``."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return WriteError(
            path,
            "parent_not_directory",
            "a parent directory is a symlink or not a directory (symlinks are not followed "
            "below the directory resolved at start)",
        )
    reason = errno.errorcode.get(exc.errno or 0, "io_error") if exc.errno else "io_error"
    return WriteError(path, reason.lower(), f"{exc.strerror or exc} (in directory {directory})")
