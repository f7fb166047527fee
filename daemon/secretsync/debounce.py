"""Quiescence: wait until changes have been quiet for ``settle_s``, but at most ``settle_max_s``.

One type serves every debounce in the daemon (notification batches, config
file reloads), as consul-template's quiescence does: each :meth:`poke`
restarts the quiet period, and the first poke of a burst starts the cap, so
a flapping source still gets through after ``settle_max_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class Quiescence:
    """Tracks one burst of changes. The constructor does no I/O and needs no event loop."""

    def __init__(
        self,
        settle_s: float,
        settle_max_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_s = settle_s
        self.settle_max_s = max(settle_max_s, settle_s)
        self._clock = clock
        self._first_at: float | None = None
        self._last_at = 0.0
        self._poked: asyncio.Event | None = None
        self.pokes = 0

    def __repr__(self) -> str:
        return (
            f"Quiescence(settle_s={self.settle_s}, settle_max_s={self.settle_max_s}, "
            f"active={self.active}, pokes={self.pokes})"
        )

    @property
    def active(self) -> bool:
        """True between the first poke of a burst and :meth:`reset`."""
        return self._first_at is not None

    def configure(self, settle_s: float, settle_max_s: float) -> None:
        """New settle times (a reload); a burst in progress is measured against them."""
        self.settle_s, self.settle_max_s = settle_s, max(settle_max_s, settle_s)
        self._signal()

    def poke(self) -> None:
        """A change happened now: restart the quiet period (and start the cap on a new burst)."""
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        self._last_at = now
        self.pokes += 1
        self._signal()

    def reset(self) -> None:
        """The burst was handled; the next poke starts a new one."""
        self._first_at = None

    def due_at(self) -> float | None:
        """When the burst has settled (clock time), or None when there is no burst."""
        if self._first_at is None:
            return None
        return min(self._last_at + self.settle_s, self._first_at + self.settle_max_s)

    def settled(self) -> bool:
        """True when a burst exists and has settled by now."""
        due = self.due_at()
        return due is not None and due <= self._clock()

    async def wait(self) -> None:
        """Return once a burst exists and has settled; later pokes extend the wait (capped)."""
        while True:
            due = self.due_at()
            event = self._event()
            event.clear()
            if due is None:
                await event.wait()
                continue
            remaining_s = due - self._clock()
            if remaining_s <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining_s)

    def _event(self) -> asyncio.Event:
        if self._poked is None:
            self._poked = asyncio.Event()
        return self._poked

    def _signal(self) -> None:
        if self._poked is not None:
            self._poked.set()
