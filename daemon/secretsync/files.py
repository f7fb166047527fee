"""Atomic write-if-changed for output files.

Like consul-template's renderer, but the temp file is born with its final mode
(never readable by others, not even for an instant), owner and group are set
before the rename, and the directory is fsynced so the rename survives a crash.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

DIR_MODE = 0o750
TEMP_SUFFIX = ".secretsync.tmp"


class WriteError(Exception):
    """An output could not be written; the previous file is untouched."""

    def __init__(self, path: Path, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason  # short word for metrics labels: errno name or "owner"


@dataclass(frozen=True)
class WriteResult:
    """``did_render``: the content changed on disk; ``fixed_attrs``: only mode/owner were fixed."""

    did_render: bool
    fixed_attrs: bool = False


def resolve_uid(owner: str | int | None) -> int:
    """A user name or numeric uid → uid; ``None`` → -1 (leave as is). Raises WriteError."""
    if owner is None:
        return -1
    if isinstance(owner, int) or owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise WriteError(Path(), "owner", f"unknown user {owner!r}") from None


def resolve_gid(group: str | int | None) -> int:
    """A group name or numeric gid → gid; ``None`` → -1 (leave as is). Raises WriteError."""
    if group is None:
        return -1
    if isinstance(group, int) or group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise WriteError(Path(), "owner", f"unknown group {group!r}") from None


def read_current(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist (or is not a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _is_regular(fd):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _fix_attrs(path: Path, mode: int, uid: int, gid: int) -> bool:
    st = os.stat(path, follow_symlinks=False)
    changed = False
    if (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode, follow_symlinks=False)
        changed = True
    if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
        os.chown(path, uid, gid, follow_symlinks=False)
        changed = True
    return changed


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_if_changed(
    path: Path, data: bytes, *, mode: int = 0o600, uid: int = -1, gid: int = -1
) -> WriteResult:
    """Make ``path`` hold exactly ``data`` with ``mode`` and owner ``uid``/``gid`` (-1: keep).

    When the bytes already match, nothing is written; a drifted mode or owner is
    corrected in place. Otherwise a temp file is created in the same directory
    with ``O_EXCL|O_NOFOLLOW`` and the final mode, chowned, written, fsynced,
    renamed over ``path``, and the directory is fsynced. Missing parent
    directories are created with mode 0750. On any failure the temp file is
    removed, the old file is untouched, and WriteError is raised.
    """
    try:
        if read_current(path) == data:
            return WriteResult(did_render=False, fixed_attrs=_fix_attrs(path, mode, uid, gid))
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc) from None

    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits we asked for
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _write_error(path, exc) from None
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        # The rename happened; only its durability is in doubt. Report, do not undo.
        raise _write_error(path, exc) from None
    return WriteResult(did_render=True)


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = errno.errorcode.get(exc.errno or 0, "io_error") if exc.errno else "io_error"
    return WriteError(path, reason.lower(), exc.strerror or str(exc))
