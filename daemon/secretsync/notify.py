"""Tell dependent processes that their files changed: signal, command or HTTP call.

The agent hands over the files of each pass (:meth:`Notifier.submit`) only after
all of them are written. Changes are coalesced: a batch is delivered once no
new change arrived for ``settle`` seconds, and never later than ``settle_max``
after its first change, so a flapping secret cannot starve notifications. A
target named by several files of a batch is told once.

Each target of a batch is delivered in its own task: a failing, hanging or
missing target never blocks another target, the next batch, or the next poll.
Deliveries to one target are serialised. Every delivery ends with one fixed
outcome word (see :mod:`secretsync.targets`, which tells one target), logged
with the target name and counted in ``secretsync_notify_total{target, outcome}``.

At start-up (every file of the batch is a first write) a target that is not
running yet is an info line and counted as ``skipped``, not a failure: the app
usually starts after the sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secretsync import logs
from secretsync.agent import WrittenFile
from secretsync.config import Config, NotifyTarget
from secretsync.metrics import Metrics
from secretsync.targets import OUTCOMES, Result, call_http, run_command, send_signal


@dataclass
class _Pending:
    paths: dict[str, None] = field(default_factory=dict)  # ordered set of changed files
    initial: bool = True  # every file of the batch for this target is a first write


class Notifier:
    """The daemon's :class:`~secretsync.agent.NotifySink`.

    ``config`` supplies the targets and ``settle``/``settle_max``; it can be
    replaced with :meth:`reconfigure`. The constructor does no I/O; :meth:`serve`
    runs the debounce timer, :meth:`flush` delivers what is pending at once.
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._first_at = 0.0  # monotonic time of the batch's first change
        self._last_at = 0.0  # …and of its latest change
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._own_pid = os.getpid()
        self._log = logs.get_logger()
        self.batches = 0  # batches dispatched so far

    def __repr__(self) -> str:
        return (
            f"Notifier(targets={sorted(self._config.notify)}, pending={sorted(self._pending)}, "
            f"in_flight={len(self._inflight)})"
        )

    # -- configuration -----------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Use the targets and settle times of ``config`` from now on.

        Pending changes are kept and delivered with the new definitions; a pending
        target that no longer exists is logged and dropped at delivery.
        """
        self._config = config
        self._declare_metrics()
        self._wake.set()  # settle times may have changed

    def _declare_metrics(self) -> None:
        # every series exists from the start, so alerts on rate() see zeros
        for name in self._config.notify:
            for outcome in OUTCOMES:
                self.metrics.notify.labels(target=name, outcome=outcome)

    # -- NotifySink --------------------------------------------------------------------

    def submit(self, written: Sequence[WrittenFile]) -> None:
        """Add the files of one pass to the pending batch. Never blocks, never raises."""
        now = self._clock()
        for item in written:
            for name in item.targets:
                if not self._pending:
                    self._first_at = now
                pending = self._pending.setdefault(name, _Pending())
                pending.paths[str(item.path)] = None
                pending.initial = pending.initial and item.initial
        if self._pending:
            self._last_at = now
            self._wake.set()

    async def serve(self) -> None:
        """Deliver each batch when it has settled; runs until cancelled.

        On cancellation, deliveries still running are cancelled too (a command's
        process group is killed).
        """
        self._declare_metrics()
        try:
            while True:
                due = self._due_at()
                if due is None:
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                delay_s = due - self._clock()
                if delay_s <= 0:
                    self._dispatch(self._take())
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay_s)
        finally:
            for task in list(self._inflight):
                task.cancel()
            for task in list(self._inflight):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def flush(self) -> None:
        """Deliver the pending batch now and wait for every delivery in flight.

        Each delivery is bounded by its target's timeout; cancelling ``flush``
        cancels them.
        """
        batch = self._take()
        if batch:
            self._dispatch(batch)
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # -- batching ----------------------------------------------------------------------

    def _due_at(self) -> float | None:
        if not self._pending:
            return None
        return min(
            self._last_at + self._config.settle_s, self._first_at + self._config.settle_max_s
        )

    def _take(self) -> dict[str, _Pending]:
        batch, self._pending = self._pending, {}
        return batch

    def _dispatch(self, batch: dict[str, _Pending]) -> None:
        self.batches += 1
        self._log.info(
            "notify_batch",
            targets=sorted(batch),
            files=sorted({p for pending in batch.values() for p in pending.paths}),
        )
        for name, pending in batch.items():
            task = asyncio.create_task(
                self._deliver(name, list(pending.paths), initial=pending.initial),
                name=f"notify:{name}",
            )
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # -- delivery ----------------------------------------------------------------------

    async def _deliver(self, name: str, paths: list[str], *, initial: bool) -> None:
        target = self._config.notify.get(name)
        if target is None:
            self._log.warning("notify_target_unknown", target=name, files=paths)
            return
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            started = self._clock()
            try:
                result = await self._attempt(name, target, paths, initial=initial)
                attempts = 1
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
                    result = await self._attempt(name, target, paths, initial=initial)
                    attempts += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not take the daemon down
                result, attempts = Result("error", f"internal error: {exc!r}"), 1
            elapsed_s = self._clock() - started
            self._record(
                name,
                target,
                paths,
                result,
                initial=initial,
                attempts=attempts,
                duration_s=elapsed_s,
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
    ) -> None:
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
