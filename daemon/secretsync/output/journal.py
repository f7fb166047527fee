"""The pending-notification journal: changes written to disk whose targets were not yet told.

An output's targets are told ``settle`` … ``settle_max`` after its file was
written. If the daemon dies in that window, the restart finds the bytes
already in place, writes nothing and would tell nobody. So before an output's
new content is renamed into place, a record (which targets, and the sha256 of
the content being written) is written atomically; when a target has been
told, it is removed from the record, and the record goes with its last
target. At start-up each record whose content is the file on disk now is
delivered again; a record whose content never made it to disk (the crash came
before the rename) is dropped, since the next sync writes and notifies anew.

Records live next to their output as ``.<name>.secretsync-pending`` (a place
that survives a container restart wherever the output does), or in
``state_dir`` when one is configured, named after a hash of the output path.
Every method is blocking (small files, fsync) and thread-safe.

Whoever can write the output's directory can plant anything at a record's
name, so a record is read with suspicion: one larger than
:data:`RECORD_MAX_BYTES` is never read past the cap, and one that cannot be
read or parsed, for whatever reason, is absent (never an exception). What is
not a regular file at the name is removed before a record is written there
(never a directory's content); when that fails, only the record fails
(:class:`JournalError`): the caller writes the output anyway.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from secretsync import logs
from secretsync.output.files import (
    WriteError,
    kind_of_mode,
    open_dir,
    read_current,
    remove_non_file,
    write_if_changed,
)

PENDING_SUFFIX = ".secretsync-pending"
RECORD_MAX_BYTES = 64 * 1024


class JournalError(Exception):
    """A record could not be written (the notification is not crash-safe); names paths only."""

    safe_message = True


def digest_of(data: bytes) -> str:
    """The identity of some output content (sha256, hex)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Record:
    """Targets still to be told that ``path`` now holds the content with ``digest``."""

    path: str
    digest: str
    targets: tuple[str, ...]
    initial: bool


class Journal:
    """Records of pending notifications. The constructor does no I/O."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._log = logs.get_logger()
        self.writes = 0

    def __repr__(self) -> str:
        return f"Journal(state_dir={self.state_dir!r}, writes={self.writes})"

    def location(self, path: Path, directory: Path) -> Path:
        """Where the record of output ``path`` (in real directory ``directory``) lives."""
        if self.state_dir is not None:
            key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
            return self.state_dir / f"pending-{key}.json"
        return directory / f".{path.name}{PENDING_SUFFIX}"

    def load(self, path: Path, directory: Path) -> Record | None:
        """The record of ``path``, or None: none, not a regular file, larger than
        RECORD_MAX_BYTES (never read past the cap), unparseable in any way (nested
        too deeply, not UTF-8, wrong types, …), or not for this path. Never raises.
        Something at the record's name that is not a usable record is logged."""
        where = self.location(path, directory)
        record, problem = _read_record(where)
        if problem is not None:
            self._log.warning("notify_journal_ignored", path=str(path), problem=problem)
        return record if record is not None and record.path == str(path) else None

    def _load_quietly(self, path: Path, directory: Path) -> Record | None:
        record, _ = _read_record(self.location(path, directory))
        return record if record is not None and record.path == str(path) else None

    def record(
        self, path: Path, directory: Path, digest: str, targets: tuple[str, ...], initial: bool
    ) -> None:
        """``path`` is about to hold content ``digest``: ``targets`` must be told.

        Targets of an earlier record still pending are kept (they have not been
        told about the earlier change either). Something other than a regular
        file at the record's name is removed first (and logged). Raises
        JournalError when the record cannot be written.
        """
        if not targets:
            return
        with self._lock:
            old = self._load_quietly(path, directory)
            merged = tuple(dict.fromkeys((*(old.targets if old else ()), *targets)))
            initial = initial and (old.initial if old else True)
            self._store(path, directory, Record(str(path), digest, merged, initial))

    def done(self, path: Path, directory: Path, target: str, digest: str) -> None:
        """``target`` was told about content ``digest`` of ``path``.

        If the record is for newer content, the target stays (it has not been
        told about that yet). Never raises: a journal that cannot be updated
        only means a repeated notification after a crash.
        """
        with self._lock, contextlib.suppress(OSError):
            old = self._load_quietly(path, directory)
            if old is None or old.digest != digest or target not in old.targets:
                return
            left = tuple(t for t in old.targets if t != target)
            if left:
                self._store(path, directory, Record(old.path, old.digest, left, old.initial))
            else:
                self._remove(path, directory)

    def drop(self, path: Path, directory: Path) -> None:
        """Forget the record of ``path`` (its content never reached the disk). Never raises."""
        with self._lock, contextlib.suppress(OSError):
            self._remove(path, directory)

    def _store(self, path: Path, directory: Path, record: Record) -> None:
        where = self.location(path, directory)
        try:
            with open_dir(where.parent, create=True) as dir_fd:
                removed = remove_non_file(dir_fd, where.name)
        except OSError as exc:
            what = "a directory that holds files" if exc.errno == errno.ENOTEMPTY else "it"
            raise JournalError(
                f"{where}: something other than a file is in the way and {what} cannot be "
                f"removed ({exc.strerror or type(exc).__name__})"
            ) from None
        if removed is not None:
            self._log.warning("notify_journal_non_file_removed", path=str(where), kind=removed)
        body = json.dumps(
            {
                "path": record.path,
                "digest": record.digest,
                "targets": list(record.targets),
                "initial": record.initial,
            },
            sort_keys=True,
        ).encode()
        try:
            write_if_changed(where, body, mode=0o600, directory=where.parent)
        except WriteError as exc:
            raise JournalError(str(exc)) from None
        self.writes += 1

    def _remove(self, path: Path, directory: Path) -> None:
        where = self.location(path, directory)
        with open_dir(where.parent) as dir_fd, contextlib.suppress(FileNotFoundError):
            os.unlink(where.name, dir_fd=dir_fd)
            os.fsync(dir_fd)


def _read_record(where: Path) -> tuple[Record | None, str | None]:
    """(the record at ``where``, None) or (None, why it is unusable); (None, None) if none."""
    raw = read_current(where, max_bytes=RECORD_MAX_BYTES)
    if raw is None:
        try:
            st = os.lstat(where)
        except OSError:
            return None, None  # no record (or nothing we can see)
        if not stat.S_ISREG(st.st_mode):
            return None, f"not a regular file: a {kind_of_mode(st.st_mode)}"
        if st.st_size > RECORD_MAX_BYTES:
            return None, f"larger than {RECORD_MAX_BYTES} bytes (not read)"
        return None, "unreadable"
    try:
        data = json.loads(raw)
        path, digest, targets, initial = (
            data["path"],
            data["digest"],
            data["targets"],
            data["initial"],
        )
    except Exception:  # whatever the bytes hold: nesting too deep, wrong types, …
        return None, "not a valid record"
    if not (
        isinstance(path, str)
        and isinstance(digest, str)
        and isinstance(targets, list)
        and all(isinstance(t, str) for t in targets)
        and isinstance(initial, bool)
    ):
        return None, "not a valid record"
    return Record(path, digest, tuple(targets), initial), None
