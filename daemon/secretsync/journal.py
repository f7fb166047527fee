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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from secretsync.files import open_dir, read_current, write_if_changed

PENDING_SUFFIX = ".secretsync-pending"
RECORD_MAX_BYTES = 64 * 1024


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
        """The record of ``path``, or None (none, unreadable, or not for this path)."""
        raw = read_current(self.location(path, directory))
        if raw is None or len(raw) > RECORD_MAX_BYTES:
            return None
        try:
            data = json.loads(raw)
            record = Record(
                path=str(data["path"]),
                digest=str(data["digest"]),
                targets=tuple(str(t) for t in data["targets"]),
                initial=bool(data["initial"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return record if record.path == str(path) else None

    def record(
        self, path: Path, directory: Path, digest: str, targets: tuple[str, ...], initial: bool
    ) -> None:
        """``path`` is about to hold content ``digest``: ``targets`` must be told.

        Targets of an earlier record still pending are kept (they have not been
        told about the earlier change either). Raises OSError.
        """
        if not targets:
            return
        with self._lock:
            old = self.load(path, directory)
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
            old = self.load(path, directory)
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
        body = json.dumps(
            {
                "path": record.path,
                "digest": record.digest,
                "targets": list(record.targets),
                "initial": record.initial,
            },
            sort_keys=True,
        ).encode()
        write_if_changed(where, body, mode=0o600, directory=where.parent)
        self.writes += 1

    def _remove(self, path: Path, directory: Path) -> None:
        where = self.location(path, directory)
        with open_dir(where.parent) as dir_fd, contextlib.suppress(FileNotFoundError):
            os.unlink(where.name, dir_fd=dir_fd)
            os.fsync(dir_fd)
