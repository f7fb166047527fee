"""Watch the files: restore tampered outputs, notice config edits.

:class:`Watcher` runs one ``watchfiles.awatch`` over the output directories
and the config file's directory (non-recursive). An event on an output makes
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

from watchfiles import Change, awatch

from secretsync import logs
from secretsync.output.files import TEMP_SUFFIX
from secretsync.output.journal import PENDING_SUFFIX
from secretsync.output.locks import LOCK_SUFFIX
from secretsync.runtime.reload import Reloader

WATCH_RECHECK_S = 5.0  # how often an idle watcher re-checks its directories
WATCH_STEP_MS = 200  # watchfiles: yield once no new event came for this long… (also how
# often its thread wakes up to look at the stop event: 20 times a second cost 1.6 CPU-s per
# 10 minutes at idle)
WATCH_DEBOUNCE_MS = 1600  # …or after this long at most
WATCH_RETRY_S = 5.0  # after the watch itself fails (inotify limits, permissions)
OUR_SUFFIXES = (TEMP_SUFFIX, LOCK_SUFFIX, PENDING_SUFFIX)

Repair = Callable[[Path], Awaitable[bool]]


def _nearest_dir(path: Path) -> Path:
    """``path`` if it is a directory, else its nearest ancestor that is one."""
    for candidate in (path, *path.parents):
        if os.path.isdir(candidate):  # False on any error (missing, EACCES, ELOOP)
            return candidate
    return Path(path.anchor or "/")


class Watcher:
    """One ``watchfiles.awatch`` over the output directories and the config directory.

    ``outputs()`` gives the managed output paths, ``repair(path)`` restores one.
    Run :meth:`run` for the life of the daemon; :meth:`stop` ends it.
    ``reloader`` may be None to watch outputs only. The constructor does no I/O.
    """

    def __init__(
        self,
        config_path: Path,
        outputs: Callable[[], Iterable[Path]],
        repair: Repair,
        reloader: Reloader | None = None,
        *,
        recheck_s: float = WATCH_RECHECK_S,
    ) -> None:
        self._outputs = outputs
        self._repair = repair
        self.config_path = Path(config_path).absolute()
        self.reloader = reloader
        self.recheck_s = recheck_s
        self.batches = 0  # event batches handled (tests and debugging)
        self.watching: frozenset[Path] = frozenset()  # directories under a settled watch
        self._stopped = False
        self._roots: set[Path] = set()  # what the current awatch covers
        self._rebuild = asyncio.Event()  # the stop event of the current awatch
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Watcher(config_path={str(self.config_path)!r}, batches={self.batches})"

    def stop(self) -> None:
        """End :meth:`run` within one watchfiles step."""
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
        while not self._stopped:
            roots = self._roots = self.roots()
            self._rebuild = asyncio.Event()
            self.watching = frozenset()
            if self._stopped:
                break
            self._log.debug("watch_started", paths=sorted(str(p) for p in roots))
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
        swept = False
        async for changes in awatch(
            *sorted(roots),
            watch_filter=None,
            stop_event=self._rebuild,
            recursive=False,
            step=WATCH_STEP_MS,
            debounce=WATCH_DEBOUNCE_MS,
            rust_timeout=int(self.recheck_s * 1000),
            yield_on_timeout=True,
            ignore_permission_denied=True,
        ):
            if not swept:
                # the watch is in place now: catch whatever changed while it was built
                swept = True
                await self.sweep()
                self._check_config()
                self.watching = frozenset(roots)
            if changes:
                await self._handle(changes)
                self.batches += 1
            paths = {Path(p) for _, p in changes}
            if self.roots() != roots or paths & roots:
                # a directory appeared, or a watched one was removed or replaced
                self._rebuild.set()

    async def sweep(self) -> int:
        """Check every output against its last rendered bytes; return how many were repaired."""
        repaired = 0
        for path in list(self._outputs()):
            repaired += await self._repair(path)
        return repaired

    async def _handle(self, changes: Iterable[tuple[Change, str]]) -> None:
        outputs = set(self._outputs())
        config_dirs = self.config_dirs()
        drifted: set[Path] = set()
        config_touched = False
        for _change, raw in changes:
            path = Path(raw)
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
