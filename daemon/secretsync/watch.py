"""Watch the files: restore tampered outputs, reload sync.yaml live.

Two pieces, both run as agent services:

- :class:`Reloader` owns the one reload path, used by SIGHUP and by the file
  watcher alike: parse and validate the file; if it is invalid keep the old
  config (``config_reload_failed``); if it is valid hand it to
  :meth:`Agent.reconfigure`, wake the agent so new outputs are written at once,
  and tell the listeners (``add_listener``). File-triggered reloads are
  debounced, so an editor's burst of writes or a ConfigMap swap gives one reload.
- :class:`Watcher` runs one ``watchfiles.awatch`` over the output directories
  and the config file's directory (non-recursive). An event on an output makes
  the agent compare it with the bytes it last rendered and rewrite it if someone
  else changed it (content, mode or owner); our own atomic writes compare equal
  and cost nothing. Any other event in the config directory (an in-place edit,
  the ``..data`` symlink swap of a Kubernetes ConfigMap) is checked against the
  config bytes last loaded. A directory that does not exist yet is covered by
  watching its nearest existing parent; the watch is rebuilt when the set of
  directories changes (a directory appears or is replaced, a reload adds outputs).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from watchfiles import Change, awatch

from secretsync import logs
from secretsync.agent import Agent
from secretsync.config import Config, ConfigError, load_config
from secretsync.files import TEMP_SUFFIX
from secretsync.sdnotify import SdNotifier

RELOAD_SETTLE_S = 0.5  # a file-triggered reload waits for this much quiet…
RELOAD_SETTLE_MAX_S = 5.0  # …but never longer than this after the first change
WATCH_RECHECK_S = 1.0  # how often an idle watcher re-checks its directories
WATCH_STEP_MS = 50  # watchfiles: yield once no new event came for this long…
WATCH_DEBOUNCE_MS = 1600  # …or after this long at most
WATCH_RETRY_S = 5.0  # after the watch itself fails (inotify limits, permissions)

ReloadListener = Callable[[Config, Config], Awaitable[None] | None]
"""Called as ``fn(old, new)`` after a config was applied; may be a coroutine function."""


def _read_bytes(path: Path) -> bytes | None:
    """The config file's bytes (symlinks followed), or None when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _nearest_dir(path: Path) -> Path:
    """``path`` if it is a directory, else its nearest ancestor that is one."""
    for candidate in (path, *path.parents):
        if os.path.isdir(candidate):  # False on any error (missing, EACCES, ELOOP)
            return candidate
    return Path(path.anchor or "/")


class Reloader:
    """Reloads ``config_path`` into ``agent`` on request; run :meth:`serve` as a service.

    :meth:`request` (SIGHUP) reloads at once; :meth:`file_changed` (the watcher)
    reloads after ``settle_s`` of quiet, at most ``settle_max_s`` after the first
    change. Requests that arrive during a reload cause one more reload after it.
    """

    def __init__(
        self,
        agent: Agent,
        config_path: Path,
        *,
        settle_s: float = RELOAD_SETTLE_S,
        settle_max_s: float = RELOAD_SETTLE_MAX_S,
        clock: Callable[[], float] = time.monotonic,
        sd: SdNotifier | None = None,
    ) -> None:
        self.agent = agent
        self.config_path = Path(config_path)
        self.sd = sd  # systemd: RELOADING=1 … READY=1 around each reload
        self.settle_s = settle_s
        self.settle_max_s = max(settle_max_s, settle_s)
        self._clock = clock
        self._listeners: list[ReloadListener] = []
        self._pending = asyncio.Event()  # a reload is wanted
        self._poke = asyncio.Event()  # any new request (restarts the quiet period)
        self._immediate = False
        self._trigger = "file"
        self.file_requests = 0  # file_changed() calls (tests and debugging)
        self._first_request = 0.0
        self._last_request = 0.0
        self._seen: bytes | None = None  # config bytes at the last load attempt
        self._observed: bytes | None = None  # config bytes at the last check_file()
        self._primed = False
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Reloader(config_path={str(self.config_path)!r}, pending={self._pending.is_set()})"

    def add_listener(self, listener: ReloadListener) -> None:
        """Call ``listener(old, new)`` after each applied reload (metrics server, notifier, …).

        A listener that raises is logged (``reload_listener_failed``); the reload
        stands and the other listeners still run.
        """
        self._listeners.append(listener)

    def request(self, trigger: str = "sighup") -> None:
        """Reload as soon as possible, even if the file looks unchanged (SIGHUP handler)."""
        self._log.info("config_reload_requested", trigger=trigger)
        self._immediate, self._trigger = True, trigger
        self._pending.set()
        self._poke.set()

    def file_changed(self) -> None:
        """The config file may have changed on disk: reload once things are quiet."""
        self.file_requests += 1
        if not self._immediate:
            self._trigger = "file"
        if not self._pending.is_set():
            self._first_request = self._clock()
        self._last_request = self._clock()
        self._pending.set()
        self._poke.set()

    def check_file(self) -> bool:
        """Look at the config file after a filesystem event; True when a reload was asked for.

        Only a change of its bytes since the previous look counts, so unrelated
        activity in the directory (logs, editor swap files) neither reloads nor
        stretches the quiet period of a pending reload.
        """
        if not self._primed:
            return False
        data = _read_bytes(self.config_path)
        if data == self._observed:
            return False
        self._observed = data
        if data == self._seen:
            return False  # put back as it was: a pending reload will find nothing to do
        self._log.debug("config_file_changed", path=str(self.config_path))
        self.file_changed()
        return True

    def changed_on_disk(self) -> bool:
        """True when the config file's bytes differ from those of the last load attempt."""
        return self._primed and _read_bytes(self.config_path) != self._seen

    def prime(self) -> None:
        """Remember the current bytes as loaded (the daemon loaded this file at start)."""
        if not self._primed:
            self._seen, self._primed = _read_bytes(self.config_path), True
            self._observed = self._seen

    async def serve(self) -> None:
        """Run pending reloads one at a time, for the life of the daemon."""
        self.prime()
        while True:
            await self._pending.wait()
            await self._settle()
            immediate, trigger = self._immediate, self._trigger
            self._pending.clear()
            self._immediate, self._trigger = False, "file"
            if not immediate and not self.changed_on_disk():
                # e.g. edited and put back within the quiet period
                self._log.debug("config_reload_skipped", reason="unchanged")
                continue
            try:
                await self.reload(trigger)
            except Exception as exc:  # a bug here must not end reloading for good
                self.agent.metrics.config_reloads.labels(outcome="error").inc()
                self._log.error("config_reload_failed", trigger=trigger, error=repr(exc))

    async def _settle(self) -> None:
        """Wait until file-triggered requests have been quiet for ``settle_s`` (capped)."""
        while not self._immediate:
            until = min(self._last_request + self.settle_s, self._first_request + self.settle_max_s)
            remaining_s = until - self._clock()
            if remaining_s <= 0:
                return
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), remaining_s)

    async def reload(self, trigger: str) -> bool:
        """Load, validate and apply the config file now. True when the new config was applied.

        An invalid file (unreadable, YAML error, schema error) leaves the running
        config in place: ``config_reload_failed`` is logged with the error and
        ``secretsync_config_reloads_total{outcome="error"}`` counted. A valid one is
        applied with :meth:`Agent.reconfigure` (fetched values kept, changed outputs
        re-rendered, new ones synced at once via :meth:`Agent.wake`, removed ones
        left on disk and no longer managed), counted ``ok``, and given to listeners.
        """
        if self.sd is None:
            return await self._reload(trigger)
        with self.sd.reloading():
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> bool:
        # read before parsing: if the file changes in between we reload once more
        # rather than miss the change
        self._seen, self._primed = await asyncio.to_thread(_read_bytes, self.config_path), True
        metrics = self.agent.metrics
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            metrics.config_reloads.labels(outcome="error").inc()
            self._log.error(
                "config_reload_failed",
                trigger=trigger,
                path=str(self.config_path),
                error=str(exc),
                kept="previous config",
            )
            return False
        old = self.agent.config
        self.agent.reconfigure(new)
        metrics.config_reloads.labels(outcome="ok").inc()
        old_outs = {o.path: o for o in old.outputs}
        new_outs = {o.path: o for o in new.outputs}
        self._log.info(
            "config_reloaded",
            trigger=trigger,
            outputs=len(new.outputs),
            added=sorted(str(p) for p in new_outs.keys() - old_outs.keys()),
            removed=sorted(str(p) for p in old_outs.keys() - new_outs.keys()),
            changed=sorted(
                str(p) for p in new_outs.keys() & old_outs.keys() if old_outs[p] != new_outs[p]
            ),
        )
        if old.aws != new.aws:
            # the Secrets Manager client is built once, at start
            self._log.warning("config_restart_needed", fields=["aws"])
        self.agent.wake()
        for listener in self._listeners:
            try:
                result = listener(old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._log.error("reload_listener_failed", listener=repr(listener), error=str(exc))
        return True


class Watcher:
    """One ``watchfiles.awatch`` over the output directories and the config directory.

    Run :meth:`run` as an agent service; :meth:`stop` ends it. ``reloader`` may be
    None to watch outputs only. The constructor does no I/O.
    """

    def __init__(
        self,
        agent: Agent,
        config_path: Path,
        reloader: Reloader | None = None,
        *,
        recheck_s: float = WATCH_RECHECK_S,
    ) -> None:
        self.agent = agent
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

    def on_reload(self, _old: Config, _new: Config) -> None:
        """Reload listener: rebuild the watch if new output directories need it."""
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
        wanted = {out.parent for out in self.agent.outputs} | self.config_dirs()
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
        for path in self.agent.outputs:
            repaired += await self.agent.repair(path)
        return repaired

    async def _handle(self, changes: Iterable[tuple[Change, str]]) -> None:
        outputs = self.agent.outputs
        config_dirs = self.config_dirs()
        drifted: set[Path] = set()
        config_touched = False
        for _change, raw in changes:
            path = Path(raw)
            if path in outputs:
                drifted.add(path)
            elif path.name.endswith(TEMP_SUFFIX):
                continue  # our own temp files
            elif path.parent in config_dirs or path in config_dirs:
                config_touched = True
        for path in sorted(drifted):
            await self.agent.repair(path)
        if config_touched:
            self._check_config()

    def _check_config(self) -> None:
        if self.reloader is not None:
            self.reloader.check_file()


def install(
    agent: Agent, config_path: Path, *, watch: bool, sd: SdNotifier | None = None
) -> Reloader:
    """Wire reloading (and, with ``watch``, the file watcher) into ``agent``'s services.

    Returns the reloader: the caller routes SIGHUP to :meth:`Reloader.request` and
    may add listeners. ``watch=False`` (``--no-watch``) disables drift repair and
    file-triggered reloads; SIGHUP still reloads.
    """
    reloader = Reloader(agent, config_path, sd=sd)
    agent.add_service("reload", reloader.serve)
    if watch:
        watcher = Watcher(agent, config_path, reloader)
        reloader.add_listener(watcher.on_reload)
        agent.add_service("watch", watcher.run)
    return reloader
