"""Tell dependent processes that their files changed, once, after the whole pass is written.

The syncer hands over the files of each pass (:meth:`Notifier.submit`) only
after all of them are written. Passes are debounced together by one
:class:`~secretsync.debounce.Quiescence` (``settle`` of quiet, at most
``settle_max`` after the first change), then each target gets the files of
the batch that name it.

Per target, at most one delivery is in flight and at most one batch waits
behind it: everything that settles while a delivery runs is merged into that
waiting batch ("latest wins"), so a slow command is never queued up behind
stale batches, and its next run sees the newest files. A failing, hanging or
missing target never blocks another target, the next pass, or the next poll.

Nothing written is forgotten across a crash: before a file is renamed into
place its targets are recorded in the journal (:mod:`secretsync.output.journal`);
each target is removed from the record once it has been told, and records
still pending at start-up are delivered again (:meth:`Notifier.replay`).

How a single target is told (signal, command, HTTP) and the outcome words are
in :mod:`secretsync.notify.targets`.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secretsync import logs
from secretsync.config.model import Config, NotifyTarget
from secretsync.debounce import Quiescence
from secretsync.metrics import Metrics
from secretsync.notify.targets import OUTCOMES, Result, call_http, run_command, send_signal
from secretsync.output.journal import Journal
from secretsync.state import WrittenFile


@dataclass
class Batch:
    """The files one target is to be told about: path → digest of the content written."""

    files: dict[str, str] = field(default_factory=dict)
    initial: bool = True  # every file is a first write since start-up

    def merge(self, other: Batch) -> None:
        """Take ``other``'s files too; for a file in both, the newer content wins."""
        self.files.update(other.files)
        self.initial = self.initial and other.initial


@dataclass
class _Target:
    waiting: Batch | None = None  # merged batches behind the delivery in flight
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Delivered:
    """The last finished delivery to one target (for the status view)."""

    outcome: str
    at: float  # wall time
    files: tuple[str, ...]


APPLIED_OUTCOMES = frozenset({"ok", "skipped"})  # skipped: not running yet, reads them at start


class Notifier:
    """Delivers notifications. ``journal`` and ``directory_of`` (an output path → its real
    directory) make them survive a crash; both are optional. No I/O in the constructor."""

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        journal: Journal | None = None,
        directory_of: Callable[[Path], Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self.metrics = metrics or Metrics()
        self.journal = journal
        self._directory_of = directory_of
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (splay, not crypto)
        self._flushing = False
        # path → {target: digest} of content not yet told ok (output_applied is 0 while any)
        self._unapplied: dict[str, dict[str, str]] = {}
        self.last: dict[str, Delivered] = {}  # target → its last finished delivery
        self._settle = Quiescence(config.settle_s, config.settle_max_s, clock=clock)
        self._settling: dict[str, Batch] = {}
        self._targets: dict[str, _Target] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._own_pid = os.getpid()
        self._log = logs.get_logger()
        self.batches = 0  # batches dispatched so far
        self.deliveries = 0  # deliveries finished so far

    def __repr__(self) -> str:
        busy = sorted(name for name, t in self._targets.items() if t.task is not None)
        return (
            f"Notifier(targets={sorted(self._config.notify)}, settling={sorted(self._settling)}, "
            f"in_flight={busy}, deliveries={self.deliveries})"
        )

    # -- configuration -----------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Use the targets and settle times of ``config`` from now on.

        Pending changes are kept and delivered with the new definitions; a
        target that no longer exists is dropped at delivery, and its series
        leave /metrics.
        """
        gone = set(self._config.notify) - set(config.notify)
        self._config = config
        self._settle.configure(config.settle_s, config.settle_max_s)
        self.metrics.forget(targets=sorted(gone))
        for name in gone:
            self.last.pop(name, None)
        paths = {str(o.path): set(o.notify) for o in config.outputs}
        for path in list(self._unapplied):
            if path not in paths:
                del self._unapplied[path]
            else:
                for target in set(self._unapplied[path]) - paths[path]:
                    del self._unapplied[path][target]
        self._declare_metrics()

    def _declare_metrics(self) -> None:
        # every series exists from the start, so alerts on rate() see zeros
        for name in self._config.notify:
            for outcome in OUTCOMES:
                self.metrics.notify.labels(target=name, outcome=outcome)
        for output in self._config.outputs:
            self._set_applied(str(output.path))

    # -- convergence -----------------------------------------------------------------------

    def applied(self, path: str) -> bool:
        """True when ``path``'s current content reached every target ok (or it has none)."""
        return not self._unapplied.get(path)

    def _set_applied(self, path: str) -> None:
        self.metrics.output_applied.labels(path=path).set(1 if self.applied(path) else 0)

    # -- input -----------------------------------------------------------------------------

    def submit(self, written: Sequence[WrittenFile]) -> None:
        """Add the files of one pass to the settling batch. Never blocks, never raises."""
        for item in written:
            path = str(item.path)
            for name in item.targets:
                batch = self._settling.setdefault(name, Batch())
                batch.merge(Batch({path: item.digest}, item.initial))
                self._unapplied.setdefault(path, {})[name] = item.digest
            if item.targets:
                self._set_applied(path)
        if self._settling:
            self._idle.clear()
            self._settle.poke()

    def replay(self, paths: Iterable[Path], current_digest: Callable[[Path], str | None]) -> int:
        """Deliver what the journal says is pending for ``paths`` (at start-up). Blocking I/O.

        A record whose content is on disk now is submitted (targets that no
        longer exist are left out); one whose content never reached the disk is
        dropped. Returns how many outputs had something to deliver.
        """
        if self.journal is None:
            return 0
        replayed: list[WrittenFile] = []
        for path in paths:
            directory = self._directory(path)
            record = self.journal.load(path, directory)
            if record is None:
                continue
            targets = tuple(t for t in record.targets if t in self._config.notify)
            if current_digest(path) != record.digest or not targets:
                self.journal.drop(path, directory)
                continue
            replayed.append(WrittenFile(path, targets, record.initial, record.digest))
            self._log.info("notify_replayed", path=str(path), targets=list(targets))
        self.submit(replayed)
        return len(replayed)

    # -- batching --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Dispatch each batch when it has settled; runs until cancelled.

        On cancellation, deliveries still running are cancelled too (a
        command's process group is killed); their journal records stay.
        """
        self._declare_metrics()
        try:
            while True:
                await self._settle.wait()
                self._dispatch()
        finally:
            await self._cancel_deliveries()

    async def close(self) -> None:
        """Cancel every delivery still running (their journal records stay)."""
        await self._cancel_deliveries()

    async def flush(self) -> None:
        """Dispatch the settling batch now and wait until every target is idle.

        Each delivery is bounded by its target's timeout; cancelling ``flush``
        leaves them running (``serve``'s cancellation stops them).
        """
        self._flushing = True  # a stop or `once`: no splay
        try:
            self._dispatch()
            await self._idle.wait()
        finally:
            self._flushing = False

    def _dispatch(self) -> None:
        batches, self._settling = self._settling, {}
        self._settle.reset()
        if not batches:
            self._check_idle()
            return
        self.batches += 1
        self._log.info(
            "notify_batch",
            targets=sorted(batches),
            files=sorted({p for batch in batches.values() for p in batch.files}),
        )
        for name, batch in batches.items():
            target = self._targets.setdefault(name, _Target())
            if target.task is None:
                self._start(name, target, batch)
            elif target.waiting is None:
                target.waiting = batch
            else:
                target.waiting.merge(batch)

    def _start(self, name: str, target: _Target, batch: Batch) -> None:
        target.task = asyncio.create_task(self._run(name, batch), name=f"notify:{name}")

    async def _run(self, name: str, batch: Batch) -> None:
        target = self._targets[name]
        try:
            await self._splay(name)
            outcome = await self._deliver(name, batch)
            self._settled(name, batch, outcome)
            await self._forget(name, batch)
        finally:
            target.task = None
            waiting, target.waiting = target.waiting, None
            if waiting is not None and not _cancelling():
                self._start(name, target, waiting)
            self._check_idle()

    async def _splay(self, name: str) -> None:
        target = self._config.notify.get(name)
        if target is None or target.splay_s <= 0 or self._flushing:
            return
        delay_s = self._rng.uniform(0.0, target.splay_s)
        self._log.debug("notify_splay", target=name, delay_s=round(delay_s, 3))
        await asyncio.sleep(delay_s)

    def _settled(self, name: str, batch: Batch, outcome: str | None) -> None:
        """Record a finished delivery: the status view, and output_applied of its files."""
        if outcome is None:
            return
        self.last[name] = Delivered(outcome, self._wall(), tuple(batch.files))
        for path, digest in batch.files.items():
            pending = self._unapplied.get(path)
            if pending is not None and pending.get(name) == digest and outcome in APPLIED_OUTCOMES:
                del pending[name]
            self._set_applied(path)

    def _check_idle(self) -> None:
        busy = self._settling or any(
            t.task is not None or t.waiting is not None for t in self._targets.values()
        )
        if not busy:
            self._idle.set()

    async def _cancel_deliveries(self) -> None:
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _directory(self, path: Path) -> Path:
        return self._directory_of(path) if self._directory_of is not None else path.parent

    async def _forget(self, name: str, batch: Batch) -> None:
        journal = self.journal
        if journal is None:
            return
        for path, digest in batch.files.items():
            await asyncio.to_thread(
                journal.done, Path(path), self._directory(Path(path)), name, digest
            )

    # -- delivery --------------------------------------------------------------------------

    async def _deliver(self, name: str, batch: Batch) -> str | None:
        """Tell ``name`` about ``batch``; the outcome counted, or None for a target now gone."""
        target = self._config.notify.get(name)
        paths = sorted(batch.files)  # the same order however the writes of a pass finished
        if target is None:
            self._log.warning("notify_target_unknown", target=name, files=paths)
            return None
        started = self._clock()
        attempts = 1
        try:
            result = await self._attempt(name, target, paths, initial=batch.initial)
            while result.retryable and attempts <= target.retries:
                self._log.warning(
                    "notify_retry",
                    target=name,
                    kind=target.kind,
                    outcome=result.outcome,
                    reason=result.reason,
                    retry_in_s=target.retry_backoff_s,
                )
                await asyncio.sleep(target.retry_backoff_s)
                result = await self._attempt(name, target, paths, initial=batch.initial)
                attempts += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the daemon down
            result = Result("error", f"internal error ({type(exc).__name__})")
            self._log.error(
                "notify_internal_error", target=name, **logs.error_fields(exc, with_traceback=True)
            )
        self.deliveries += 1
        return self._record(
            name,
            target,
            paths,
            result,
            initial=batch.initial,
            attempts=attempts,
            duration_s=self._clock() - started,
        )

    async def _attempt(
        self, name: str, target: NotifyTarget, paths: list[str], *, initial: bool
    ) -> Result:
        if target.kind == "command":
            return await run_command(name, target, paths)
        if target.kind == "http":
            return await call_http(name, target, paths, initial=initial)
        return await send_signal(target, own_pid=self._own_pid)

    def _record(
        self,
        name: str,
        target: NotifyTarget,
        paths: list[str],
        result: Result,
        *,
        initial: bool,
        attempts: int,
        duration_s: float,
    ) -> str:
        startup_skip = result.outcome == "not_running" and initial
        # an app that starts after the sidecar is normal: not a failure for alerts
        counted = "skipped" if startup_skip else result.outcome
        self.metrics.notify.labels(target=name, outcome=counted).inc()
        fields: dict[str, Any] = {
            "target": name,
            "kind": target.kind,
            "outcome": result.outcome,
            "files": paths,
            "duration_s": round(duration_s, 3),
            **result.details,
        }
        if attempts > 1:
            fields["attempts"] = attempts
        if result.outcome == "ok":
            self._log.info("notify_sent", **fields)
        elif startup_skip:
            self._log.info("notify_skipped", reason=result.reason, startup=True, **fields)
        elif result.outcome == "not_running":
            self._log.warning("notify_failed", reason=result.reason, **fields)
        else:
            self._log.error("notify_failed", reason=result.reason, **fields)
        return counted


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
