"""The poller: when to run a sync cycle.

Regular cycles come every ``poll.interval`` (± ``poll.jitter``); a secret in
transient backoff gets a retry cycle of its own when its backoff expires;
:meth:`Poller.wake` (a config reload, a push hint) starts a regular cycle at
once. A cycle that raises (a bug: source, render and write failures never
raise) is logged with its traceback and the next attempt still comes, after
a backoff, so a persistent bug can neither stop syncing nor spin the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable

from secretsync import backoff, logs
from secretsync.state import CycleReport
from secretsync.sync.syncer import Syncer

CycleHook = Callable[[CycleReport], None]
FAILED_CYCLE_CAP_S = 60.0  # the longest wait after cycles that raised


class Poller:
    """Runs :meth:`Syncer.cycle` on schedule. No I/O in the constructor."""

    def __init__(
        self,
        syncer: Syncer,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        retry_base_s: float = backoff.BASE_S,
    ) -> None:
        self.syncer = syncer
        self.retry_base_s = retry_base_s
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._wake: asyncio.Event | None = None
        self._regular_wanted = False
        self._hinted: set[str] = set()
        self._hooks: list[CycleHook] = []
        self.failed_cycles = 0  # consecutive cycles that raised
        self.cycles = 0

    def __repr__(self) -> str:
        return f"Poller(cycles={self.cycles}, failed_cycles={self.failed_cycles})"

    @property
    def last_cycle_started(self) -> float | None:
        return self.syncer.last_cycle_started

    def add_cycle_hook(self, hook: CycleHook) -> None:
        """Call ``hook(report)`` after every cycle (sd_notify status, …)."""
        self._hooks.append(hook)

    def wake(self) -> None:
        """Start a regular cycle at once (or right after the one in flight)."""
        self._regular_wanted = True
        self._event().set()

    def hint(self, secret_ids: Iterable[str]) -> None:
        """Check these secrets at once (a push event named them), without a full cycle."""
        self._hinted.update(secret_ids)
        if self._hinted:
            self._event().set()

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def interval_s(self) -> float:
        """The next regular interval, jittered."""
        poll = self.syncer.config.poll
        return poll.interval_s * (1 + self._rng.uniform(-poll.jitter, poll.jitter))

    def next_wake(self, next_regular: float) -> tuple[float, bool]:
        """(monotonic time, regular?) of the next cycle: a backoff retry may come first."""
        retry = self.syncer.next_retry_at()
        if retry is not None and retry < next_regular:
            return retry, False
        return next_regular, True

    async def run(self) -> None:
        """Cycle until cancelled."""
        log = logs.get_logger()
        wake = self._event()
        regular, next_regular = True, 0.0
        only: set[str] | None = None
        while True:
            wake.clear()  # a wake() or hint() during this cycle asks for another one
            try:
                report = await self.syncer.cycle(regular=regular, only=only)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed_cycles += 1
                delay = backoff.delay_s(
                    self.failed_cycles,
                    self._rng,
                    base_s=self.retry_base_s,
                    cap_s=FAILED_CYCLE_CAP_S,
                )
                log.error(
                    "cycle_failed",
                    failures=self.failed_cycles,
                    retry_in_s=round(delay, 2),
                    **logs.error_fields(exc, with_traceback=True),
                )
                # the next attempt is a regular cycle, however long the bug lasts
                regular, next_regular, only = True, self._clock() + max(delay, 0.05), None
            else:
                self.failed_cycles = 0
                self.cycles += 1
                for hook in self._hooks:
                    hook(report)
                if regular and only is None:
                    next_regular = self._clock() + self.interval_s()
            wake_at, regular = self.next_wake(next_regular)
            only = None
            if not wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, wake_at - self._clock()))
            if self._regular_wanted or (regular and self._clock() >= wake_at):
                # a regular cycle checks everything, hinted secrets included
                regular, self._regular_wanted = True, False
                self._hinted.clear()
            elif self._hinted:
                only, self._hinted = set(self._hinted), set()
