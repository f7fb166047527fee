"""Watch the files: restore tampered outputs, notice config edits.

:class:`Watcher` watches the output directories and the config file's
directory (non-recursive) with inotify, sleeping in the kernel between events
(:mod:`secretsync.runtime.inotify`); where inotify cannot be had (``inotify_init1``
fails, or the watch limit is reached: ENOSPC), or when ``SECRETSYNC_WATCH=poll``
is set, it polls the directories' ``lstat`` every WATCH_POLL_S instead. An event on an output makes
the syncer compare it with the bytes it last wrote and rewrite it if someone
else changed it (content, mode or owner); our own atomic writes compare equal
and cost nothing, and our temp, lock and journal files are ignored. Any other
event in the config directory (an in-place edit, the ``..data`` symlink swap
of a Kubernetes ConfigMap) is checked against the config bytes last loaded
and may trigger a reload (:mod:`secretsync.runtime.reload`). A directory that does not
exist yet is covered by watching its nearest existing parent; the watch is
rebuilt when the set of directories changes (a directory appears or is
replaced, a reload adds outputs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from secretsync import logs
from secretsync.output.files import TEMP_SUFFIX
from secretsync.output.journal import PENDING_SUFFIX
from secretsync.output.locks import LOCK_SUFFIX
from secretsync.runtime.inotify import DirPoller, Inotify, Unavailable
from secretsync.runtime.reload import Reloader

WATCH_RECHECK_S = 5.0  # how often an idle watcher re-checks its directories
WATCH_STEP_S = 0.2  # a batch ends once no new event came for this long…
WATCH_DEBOUNCE_S = 1.6  # …or after this long at most
WATCH_RETRY_S = 5.0  # after the watch itself fails (permissions, a directory gone)
WATCH_POLL_S = 1.0  # the polling fallback lists the directories this often
WATCH_ENV = "SECRETSYNC_WATCH"  # "poll": use the polling fallback even where inotify works
OUR_SUFFIXES = (TEMP_SUFFIX, LOCK_SUFFIX, PENDING_SUFFIX)

Repair = Callable[[Path], Awaitable[bool]]


def _nearest_dir(path: Path) -> Path:
    """``path`` if it is a directory, else its nearest ancestor that is one."""
    for candidate in (path, *path.parents):
        if os.path.isdir(candidate):  # False on any error (missing, EACCES, ELOOP)
            return candidate
    return Path(path.anchor or "/")


class Watcher:
    """One watch (inotify, or polling) over the output directories and the config directory.

    ``outputs()`` gives the managed output paths, ``repair(path)`` restores one.
    Run :meth:`run` for the life of the daemon; :meth:`stop` ends it.
    ``reloader`` may be None to watch outputs only. ``poll``: use the polling
    fallback (default: when ``SECRETSYNC_WATCH=poll``); ``backend`` says which
    one runs (``inotify`` or ``poll``, once :meth:`run` started). The constructor
    does no I/O.
    """

    def __init__(
        self,
        config_path: Path,
        outputs: Callable[[], Iterable[Path]],
        repair: Repair,
        reloader: Reloader | None = None,
        *,
        recheck_s: float = WATCH_RECHECK_S,
        poll: bool | None = None,
    ) -> None:
        self._outputs = outputs
        self._repair = repair
        self.config_path = Path(config_path).absolute()
        self.reloader = reloader
        self.recheck_s = recheck_s
        self.poll = (
            os.environ.get(WATCH_ENV, "").strip().lower() == "poll" if poll is None else poll
        )
        self.backend = "poll" if self.poll else "inotify"
        self.batches = 0  # event batches handled (tests and debugging)
        self.watching: frozenset[Path] = frozenset()  # directories under a settled watch
        self._stopped = False
        self._roots: set[Path] = set()  # what the current watch covers
        self._rebuild = asyncio.Event()  # set: end the current watch (stop, or rebuild)
        self._ready = asyncio.Event()  # set: the current watch has events to read
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Watcher(config_path={str(self.config_path)!r}, batches={self.batches})"

    def stop(self) -> None:
        """End :meth:`run` soon (at its next await)."""
        self._stopped = True
        self._rebuild.set()

    def on_reload(self) -> None:
        """After a reload: rebuild the watch if new output directories need it."""
        if self.roots() != self._roots:
            self._rebuild.set()

    def config_dirs(self) -> set[Path]:
        """The config file's directory and, if it is a symlink, its target's directory."""
        dirs = {self.config_path.parent}
        # a ConfigMap's target dir (..2024_…) changes on every swap: the set follows it
        dirs.add(Path(os.path.realpath(self.config_path)).parent)
        return dirs

    def roots(self) -> set[Path]:
        """What to watch now: each directory, or its nearest existing parent if missing."""
        wanted = {out.parent for out in self._outputs()} | self.config_dirs()
        return {_nearest_dir(d) for d in wanted}

    async def run(self) -> None:
        """Watch until :meth:`stop` (or cancellation), rebuilding the watch as needed."""
        if self.poll:
            self._log.info("watch_polling", reason=f"{WATCH_ENV}=poll", interval_s=WATCH_POLL_S)
        while not self._stopped:
            roots = self._roots = self.roots()
            self._rebuild = asyncio.Event()
            self.watching = frozenset()
            if self._stopped:
                break
            self._log.debug(
                "watch_started", backend=self.backend, paths=sorted(str(p) for p in roots)
            )
            try:
                await self._watch(roots)
            except (OSError, RuntimeError) as exc:
                # inotify limits, permission denied, a directory gone at the wrong moment
                self._log.warning(
                    "watch_failed", error=str(exc), retry_in_s=WATCH_RETRY_S, paths=len(roots)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rebuild.wait(), WATCH_RETRY_S)

    async def _watch(self, roots: set[Path]) -> None:
        if not self.poll:
            inotify = Inotify()
            try:
                inotify.open()
                for root in sorted(roots):
                    try:
                        inotify.add(root)
                    except PermissionError as exc:
                        # as before: a directory we may not read is left out, not retried
                        self._log.warning("watch_skipped", path=str(root), error=exc.strerror)
            except Unavailable as exc:
                inotify.close()
                self._log.warning("watch_polling", reason=str(exc), interval_s=WATCH_POLL_S)
                self.poll, self.backend = True, "poll"
            except BaseException:
                inotify.close()
                raise
            else:
                try:
                    await self._watch_inotify(roots, inotify)
                finally:
                    inotify.close()
                return
        await self._watch_polling(roots)

    async def _started(self, roots: set[Path]) -> None:
        # the watch is in place now: catch whatever changed while it was built
        await self.sweep()
        self._check_config()
        self.watching = frozenset(roots)
        self._log.debug("watch_ready", backend=self.backend, paths=len(roots))

    async def _watch_inotify(self, roots: set[Path], inotify: Inotify) -> None:
        loop = asyncio.get_running_loop()
        ready = self._ready = asyncio.Event()
        loop.add_reader(inotify.fd, ready.set)
        try:
            await self._started(roots)
            while not self._rebuild.is_set():
                if not await self._wait_for(ready, self.recheck_s):
                    if self.roots() != roots:
                        self._rebuild.set()
                    continue
                changes: set[Path] = set()
                started = loop.time()
                # one batch: until no new event came for a step, or the debounce at most
                while True:
                    ready.clear()
                    changes |= inotify.read()
                    left = started + WATCH_DEBOUNCE_S - loop.time()
                    if left <= 0 or not await self._wait_for(ready, min(WATCH_STEP_S, left)):
                        break
                    if self._rebuild.is_set():
                        break
                if inotify.overflowed:
                    inotify.overflowed = False
                    changes |= set(self._outputs()) | {self.config_path}
                await self._batch(changes, roots)
        finally:
            loop.remove_reader(inotify.fd)

    async def _watch_polling(self, roots: set[Path]) -> None:
        poller = DirPoller(roots)
        poller.scan()
        await self._started(roots)
        waited = 0.0
        while not self._rebuild.is_set():
            if await self._wait_for(self._rebuild, WATCH_POLL_S):
                break
            waited += WATCH_POLL_S
            changes = poller.scan()
            if changes:
                await self._batch(changes, roots)
            elif waited >= self.recheck_s:
                waited = 0.0
                if self.roots() != roots:
                    self._rebuild.set()

    async def _wait_for(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait until ``event`` (or a stop or rebuild) is set; False after ``timeout_s``."""
        if event.is_set() or self._rebuild.is_set():
            return True
        waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._rebuild.wait())}
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)

    async def _batch(self, changes: set[Path], roots: set[Path]) -> None:
        if changes:
            await self._handle(changes)
            self.batches += 1
        if self.roots() != roots or changes & roots:
            # a directory appeared, or a watched one was removed or replaced
            self._rebuild.set()

    async def sweep(self) -> int:
        """Check every output against its last rendered bytes; return how many were repaired."""
        repaired = 0
        for path in list(self._outputs()):
            repaired += await self._repair(path)
        return repaired

    async def _handle(self, changes: Iterable[Path]) -> None:
        outputs = set(self._outputs())
        config_dirs = self.config_dirs()
        drifted: set[Path] = set()
        config_touched = False
        for path in changes:
            if path in outputs:
                drifted.add(path)
            elif path.name.endswith(OUR_SUFFIXES):
                continue  # our own temp, lock and journal files
            elif path.parent in config_dirs or path in config_dirs:
                config_touched = True
        for path in sorted(drifted):
            await self._repair(path)
        if config_touched:
            self._check_config()

    def _check_config(self) -> None:
        if self.reloader is not None:
            self.reloader.check_file()
