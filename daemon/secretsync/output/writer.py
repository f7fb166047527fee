"""The output writer: the one owner of every write to an output file.

It holds the per-output lock files (one writer per output), resolves each
output's directory once, sweeps our stale temp files, and performs writes and
drift repairs one at a time per output. Every write and repair first makes
sure the output's lock is held (:meth:`OutputLock.ensure`): a lock that could
not be taken at start (a read-only volume) is taken before the first write
that succeeds, and a lock file replaced under us is taken again, or the write
is refused. A journal that cannot record a write costs that notification's
crash-safety, never the write.

A write runs in a worker thread (``run``: fsync can take a while, and the
daemon must keep answering health checks and push events meanwhile), or on
the loop itself for a command that serves nothing while it writes (``once``):
a thread hands the GIL back and forth with the loop at each of a write's ≈ 20
system calls, which at 1,000 outputs costs more CPU than the overlap saves.
Either way it runs inside a task that is shielded from cancellation: once
started, it finishes, and what it wrote is committed (``last_bytes``, metrics,
the notification journal, the list :meth:`take_written` hands over) even if
the cycle that asked for it is cancelled by a shutdown. :meth:`drain` waits
for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from secretsync import logs
from secretsync.metrics import Metrics
from secretsync.output.files import (
    WriteError,
    WriteResult,
    open_dir,
    real_dir,
    resolve_gid,
    resolve_uid,
    sweep_temps,
    write_error,
    write_if_changed,
)
from secretsync.output.journal import Journal, JournalError, digest_of
from secretsync.output.locks import LockRefused, OutputLock, check_open_files
from secretsync.state import OutputState, WrittenFile

if TYPE_CHECKING:
    from secretsync.config.model import OutputConfig


class OutputWriter:
    """Writes outputs. ``journal`` records pending notifications before each rename.

    ``in_thread``: each write and repair runs in a worker thread (the default,
    for ``run``); False runs them on the event loop's thread, blocking it for the
    length of the write (for ``once``, which serves nothing while it writes).

    Every file whose content changed is kept until :meth:`take_written` hands it
    over (the syncer, once its pass is done), also when the pass that asked for
    the write was cancelled meanwhile. No I/O in the constructor.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        journal: Journal | None = None,
        locking: bool = True,
        in_thread: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.in_thread = in_thread
        self.journal = journal
        self._changed: list[WrittenFile] = []
        self.locking = locking
        self._wall = wall_clock
        self._locks: dict[Path, OutputLock] = {}
        self._dirs: dict[Path, Path] = {}
        self._mutex: dict[Path, asyncio.Lock] = {}
        self._inflight: set[asyncio.Task[WrittenFile | None]] = set()
        self._log = logs.get_logger()
        self.writes = 0
        self.repairs = 0

    def __repr__(self) -> str:
        return (
            f"OutputWriter(managed={len(self._dirs)}, writes={self.writes}, "
            f"repairs={self.repairs}, in_flight={len(self._inflight)})"
        )

    # -- what is managed -------------------------------------------------------------------

    def directory(self, path: Path) -> Path:
        """The real directory of a managed output (resolved when management started)."""
        found = self._dirs.get(path)
        return found if found is not None else real_dir(path)

    def manage(self, paths: Iterable[Path]) -> list[Path]:
        """Start managing ``paths``: resolve directories, take their locks, sweep old temps.

        All or nothing: if one lock is refused (held by another process, not a
        regular file, or more outputs than the open-files limit allows, see
        :func:`check_open_files`), the locks taken by this call are released and
        LockRefused is raised. A lock that cannot be made because the directory
        cannot be written is not a refusal: it is logged, and taken before the
        first write. Blocking (call it in a thread from the loop). Returns the
        newly managed paths.
        """
        new = [p for p in dict.fromkeys(paths) if p not in self._dirs]
        if self.locking and new:
            check_open_files(len(self._locks) + len(new))
        taken: list[OutputLock] = []
        parents: dict[Path, Path] = {}  # each directory resolved once, not once per output
        for path in new:
            if path.parent not in parents:
                parents[path.parent] = real_dir(path)
        dirs = {path: parents[path.parent] for path in new}
        groups: dict[Path, list[Path]] = {}
        for path in new:
            groups.setdefault(dirs[path], []).append(path)
        try:
            for directory, group in groups.items():
                # one walk to each directory serves all its locks (one handle open at a time)
                with _handle_if(self.locking, directory) as dir_fd:
                    for path in group:
                        lock = OutputLock(path, directory)
                        if self.locking:
                            self._acquire(lock, dir_fd)
                        self._locks[path] = lock
                        if lock.held:
                            taken.append(lock)
        except BaseException:
            for lock in taken:
                lock.release()
            for path in new:
                self._locks.pop(path, None)
            raise
        by_dir: dict[Path, list[str]] = {}
        for path in new:
            self._dirs[path] = dirs[path]
            if self._locks[path].held or not self.locking:
                by_dir.setdefault(dirs[path], []).append(path.name)
        for directory, names in by_dir.items():  # one listing per directory, not per output
            removed = sweep_temps(directory, names)
            if removed:
                self._log.warning(
                    "stale_temp_files_removed", directory=str(directory), count=len(removed)
                )
        return new

    def _acquire(self, lock: OutputLock, dir_fd: int | None) -> None:
        """Take ``lock`` at start; a directory that cannot be written now is no refusal."""
        try:
            lock.acquire(dir_fd)
        except LockRefused:
            raise
        except OSError as exc:
            # not a conflict: the directory cannot be written now (a read-only volume);
            # the lock is taken before the first write
            self._log.warning(
                "output_lock_unavailable",
                path=str(lock.path),
                error=exc.strerror,
                retry="before each write",
            )

    def unmanage(self, paths: Iterable[Path]) -> None:
        """Stop managing ``paths`` (removed by a reload): release their locks."""
        for path in paths:
            self._dirs.pop(path, None)
            lock = self._locks.pop(path, None)
            if lock is not None:
                lock.release()

    def close(self) -> None:
        """Release every lock (at exit)."""
        self.unmanage(list(self._dirs))

    # -- writes ----------------------------------------------------------------------------

    def _mutex_for(self, path: Path) -> asyncio.Lock:
        mutex = self._mutex.get(path)
        if mutex is None:
            mutex = self._mutex[path] = asyncio.Lock()
        return mutex

    def _locked_write(
        self,
        out: OutputConfig,
        data: bytes,
        *,
        uid: int,
        gid: int,
        directory: Path,
        lock: list[str | None],
        before_replace: Callable[[int], None] | None,
    ) -> WriteResult:
        """Blocking (where :meth:`_blocking` runs it): make sure ``out``'s lock is held
        (how, into ``lock[0]``), then :func:`write_if_changed`. One walk to the directory
        serves both (each walk is a system call per component, and each call in a thread
        a GIL hand-over)."""
        with _open_write_dir(out.path, directory) as dir_fd:
            lock[0] = self._ensure_lock(out.path, dir_fd)
            return write_if_changed(
                out.path,
                data,
                mode=out.mode,
                uid=uid,
                gid=gid,
                directory=directory,
                before_replace=before_replace,
                dir_fd=dir_fd,
            )

    def _ensure_lock(self, path: Path, dir_fd: int) -> str | None:
        """Make sure ``path``'s lock is held before writing it (blocking); see
        :meth:`OutputLock.ensure`; ``dir_fd`` is the handle the write holds on its
        directory. Raises WriteError (reason ``locked``, or the errno when the lock
        file cannot be made, as the write could not be either)."""
        lock = self._locks.get(path)
        if not self.locking or lock is None:
            return None
        try:
            how = lock.ensure(dir_fd)
        except LockRefused as exc:
            raise WriteError(path, "locked", f"not written: {exc}") from None
        except OSError as exc:
            # the write would fail the same way (a read-only or unreachable directory)
            raise write_error(path, lock.directory, exc) from None
        if how == "taken":
            sweep_temps(lock.directory, [path.name])  # ours to sweep only now
        return how

    def _report(self, path: Path, lock: str | None, result: WriteResult | None) -> None:
        if lock == "taken":
            self._log.info("output_lock_taken", path=str(path), when="before a write")
        elif lock == "retaken":
            self._log.warning("output_lock_replaced", path=str(path), action="lock taken again")
        if result is not None and result.removed is not None:
            self._log.warning("output_non_file_removed", path=str(path), kind=result.removed)

    async def _blocking(self, work: Callable[[], WriteResult]) -> WriteResult:
        """Run one write's file system work where :attr:`in_thread` says."""
        if self.in_thread:
            return await asyncio.to_thread(work)
        return work()

    async def write(
        self, state: OutputState, data: bytes, versions: dict[str, str]
    ) -> WrittenFile | None:
        """Make ``state``'s file hold ``data``; return the WrittenFile if its content changed.

        Raises WriteError (the old file stays). Cancelling the caller does not
        stop a write that has started: it completes and is committed.
        """
        task = asyncio.ensure_future(self._write_and_commit(state, data, versions))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def _write_and_commit(
        self, state: OutputState, data: bytes, versions: dict[str, str]
    ) -> WrittenFile | None:
        out = state.config
        uid, gid = resolve_uid(out.owner), resolve_gid(out.group)
        digest = digest_of(data)
        directory = self.directory(out.path)
        journal, targets = self.journal, tuple(out.notify)
        journal_failed: list[JournalError] = []
        lock: list[str | None] = [None]

        def record(_inode: int) -> None:
            if journal is not None and targets:
                try:
                    journal.record(out.path, directory, digest, targets, state.initial)
                except JournalError as exc:
                    journal_failed.append(exc)  # the write goes on: it matters more

        def locked_write() -> WriteResult:
            return self._locked_write(
                out, data, uid=uid, gid=gid, directory=directory, lock=lock, before_replace=record
            )

        async with self._mutex_for(out.path):
            try:
                result = await self._blocking(locked_write)
            finally:
                self._report(out.path, lock[0], None)
            # committed under the mutex: a repair that runs next compares with these bytes
            state.last_bytes, state.versions = data, dict(versions)
        self._report(out.path, None, result)
        for exc in journal_failed:
            self._log.warning(
                "notify_journal_failed",
                path=str(out.path),
                error=str(exc),
                effect="written; a crash before its targets are told loses the notification",
            )
        if result.fixed_attrs:
            self._log.info("file_attrs_fixed", path=str(out.path))
        if not result.did_render:
            return None
        self.writes += 1
        state.written_at = self._wall()
        self.metrics.file_writes.labels(path=str(out.path)).inc()
        self._log.info("file_written", path=str(out.path), format=out.format, size=len(data))
        written = WrittenFile(out.path, targets, state.initial, digest)
        self._changed.append(written)
        return written

    def take_written(self) -> list[WrittenFile]:
        """The files whose content changed since the last call, in the order written."""
        taken, self._changed = self._changed, []
        return taken

    async def repair(self, state: OutputState) -> bool:
        """Restore the file from the last bytes written if someone else changed it.

        Content, mode and owner are all put back (a chmod by someone else is
        drift too). No AWS call, nobody notified. Returns True when a repair
        was needed; False for a file never written or already right (e.g. the
        event came from our own atomic write). Raises WriteError.
        """
        out = state.config
        if state.last_bytes is None or out.path not in self._dirs:
            return False
        uid, gid = resolve_uid(out.owner), resolve_gid(out.group)
        directory = self.directory(out.path)
        # a pending journal record stays valid: the bytes put back have its digest
        async with self._mutex_for(out.path):
            # compared under the mutex: a write that has just renamed new content into
            # place committed last_bytes before releasing it, so it is never undone
            if state.last_bytes is None or out.path not in self._dirs:
                return False
            data = state.last_bytes
            lock: list[str | None] = [None]

            def locked_repair() -> WriteResult:
                return self._locked_write(
                    out, data, uid=uid, gid=gid, directory=directory, lock=lock, before_replace=None
                )

            try:
                result = await asyncio.shield(self._blocking(locked_repair))
            finally:
                self._report(out.path, lock[0], None)
        self._report(out.path, None, result)
        if not (result.did_render or result.fixed_attrs):
            return False
        self.repairs += 1
        self.metrics.drift_repairs.labels(path=str(out.path)).inc()
        self._log.warning(
            "drift_repaired", path=str(out.path), what="content" if result.did_render else "attrs"
        )
        return True

    async def drain(self) -> None:
        """Wait until every write in flight has finished and been committed."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))


@contextlib.contextmanager
def _handle_if(wanted: bool, directory: Path) -> Iterator[int | None]:
    """A handle on ``directory`` (made if missing) when ``wanted``; None when not, or when
    the walk fails (each lock then walks again, and says why)."""
    with contextlib.ExitStack() as stack:
        dir_fd: int | None = None
        if wanted:
            with contextlib.suppress(OSError):
                dir_fd = stack.enter_context(open_dir(directory, create=True))
        yield dir_fd


@contextlib.contextmanager
def _open_write_dir(path: Path, directory: Path) -> Iterator[int]:
    """A handle on an output's directory (made if missing, see :func:`open_dir`); the
    OSError of the walk is the output's WriteError, as :func:`write_if_changed` says it."""
    try:
        with open_dir(directory, create=True) as dir_fd:
            yield dir_fd
    except OSError as exc:  # the walk's: what is done with the handle raises WriteError
        raise write_error(path, directory, exc) from None


__all__ = ["OutputWriter", "WriteError"]
