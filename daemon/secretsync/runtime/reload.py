"""Config reload: the one path used by SIGHUP and by the file watcher alike.

Parse and validate the file; if it is invalid keep the old config
(``config_reload_failed``); if it is valid hand it to the runtime's ``apply``
(which may still refuse it, e.g. when a new output is held by another
process), and log what changed. File-triggered reloads are debounced with a
:class:`~secretsync.debounce.Quiescence`, so an editor's burst of writes or a
ConfigMap swap gives one reload; SIGHUP reloads at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from secretsync import logs
from secretsync.config.loader import MAX_CONFIG_BYTES
from secretsync.config.model import Config, ConfigError, load_config
from secretsync.debounce import Quiescence
from secretsync.metrics import Metrics
from secretsync.runtime.sdnotify import SdNotifier

RELOAD_SETTLE_S = 0.5  # a file-triggered reload waits for this much quiet…
RELOAD_SETTLE_MAX_S = 5.0  # …but never longer than this after the first change

ApplyConfig = Callable[[Config, Config], Awaitable[None]]
"""``apply(old, new)``: switch to ``new``; raise :class:`ReloadRefused` to keep ``old``."""


class ReloadRefused(Exception):
    """A valid config that cannot be applied now; ``str()`` says why (no secret values)."""

    safe_message = True


def read_bytes(path: Path) -> bytes | None:
    """The config file's bytes (symlinks followed; at most one byte past the size limit,
    enough to see a change), or None when it cannot be read."""
    try:
        with path.open("rb") as stream:
            return stream.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return None


class Reloader:
    """Reloads ``config_path``; run :meth:`serve` for the life of the daemon.

    :meth:`request` (SIGHUP) reloads at once; :meth:`file_changed` (the
    watcher) reloads once the file has been quiet for ``settle_s``, at most
    ``settle_max_s`` after the first change. Requests that arrive during a
    reload cause one more reload after it. No I/O in the constructor.
    """

    def __init__(
        self,
        config_path: Path,
        current: Callable[[], Config],
        apply: ApplyConfig,
        *,
        metrics: Metrics,
        sd: SdNotifier | None = None,
        settle_s: float = RELOAD_SETTLE_S,
        settle_max_s: float = RELOAD_SETTLE_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_path = Path(config_path)
        self._current = current  # the runtime owns the live config; we only read it
        self._apply = apply
        self.metrics = metrics
        self.sd = sd  # systemd: RELOADING=1 … READY=1 around each reload
        self._quiet = Quiescence(settle_s, settle_max_s, clock=clock)
        self._pending: asyncio.Event | None = None
        self._immediate = False
        self._trigger = "file"
        self.file_requests = 0  # file_changed() calls (tests and debugging)
        self.reloads = 0
        self._seen: bytes | None = None  # config bytes at the last load attempt
        self._observed: bytes | None = None  # config bytes at the last check_file()
        self._primed = False
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Reloader(config_path={str(self.config_path)!r}, reloads={self.reloads})"

    def _event(self) -> asyncio.Event:
        if self._pending is None:
            self._pending = asyncio.Event()
        return self._pending

    def request(self, trigger: str = "sighup") -> None:
        """Reload as soon as possible, even if the file looks unchanged (SIGHUP)."""
        self._log.info("config_reload_requested", trigger=trigger)
        self._immediate, self._trigger = True, trigger
        self._event().set()
        self._quiet.poke()

    def file_changed(self) -> None:
        """The config file may have changed on disk: reload once things are quiet."""
        self.file_requests += 1
        if not self._immediate:
            self._trigger = "file"
        self._event().set()
        self._quiet.poke()

    def check_file(self) -> bool:
        """Look at the config file after a filesystem event; True when a reload was asked for.

        Only a change of its bytes since the previous look counts, so unrelated
        activity in the directory (logs, editor swap files) neither reloads nor
        stretches the quiet period of a pending reload.
        """
        if not self._primed:
            return False
        data = read_bytes(self.config_path)
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
        return self._primed and read_bytes(self.config_path) != self._seen

    def prime(self) -> None:
        """Remember the current bytes as loaded (the daemon loaded this file at start)."""
        if not self._primed:
            self._seen, self._primed = read_bytes(self.config_path), True
            self._observed = self._seen

    async def serve(self) -> None:
        """Run pending reloads one at a time, for the life of the daemon."""
        self.prime()
        pending = self._event()
        while True:
            await pending.wait()
            if not self._immediate:
                await self._quiet.wait()
            immediate, trigger = self._immediate, self._trigger
            pending.clear()
            self._quiet.reset()
            self._immediate, self._trigger = False, "file"
            if not immediate and not self.changed_on_disk():
                # e.g. edited and put back within the quiet period
                self._log.debug("config_reload_skipped", reason="unchanged")
                continue
            await self.reload(trigger)

    async def reload(self, trigger: str) -> bool:
        """Load, validate and apply the config file now. True when the new config was applied.

        An invalid or refused config leaves the running one in place:
        ``config_reload_failed`` is logged with the reason and
        ``secretsync_config_reloads_total{outcome="error"}`` counted.
        """
        if self.sd is None:
            return await self._reload(trigger)
        with self.sd.reloading():
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> bool:
        # read before parsing: if the file changes in between we reload once more
        # rather than miss the change
        self._seen, self._primed = await asyncio.to_thread(read_bytes, self.config_path), True
        old = self._current()
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
            await self._apply(old, new)
        except (ConfigError, ReloadRefused) as exc:
            self._failed(trigger, str(exc))
            return False
        except Exception as exc:  # a bug in applying must not end reloading for good
            self._failed(trigger, None, **logs.error_fields(exc, with_traceback=True))
            return False
        self.reloads += 1
        self.metrics.config_reloads.labels(outcome="ok").inc()
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
        return True

    def _failed(self, trigger: str, error: str | None, **fields: object) -> None:
        self.metrics.config_reloads.labels(outcome="error").inc()
        if error is not None:
            fields["error"] = error
        self._log.error(
            "config_reload_failed",
            trigger=trigger,
            path=str(self.config_path),
            kept="previous config",
            **fields,
        )
