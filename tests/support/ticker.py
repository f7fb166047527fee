"""Prove the event loop stayed free: a task that counts its wake-ups while a block runs.

    async with Ticker() as ticker:
        await something()
    assert ticker.ticks >= 20

A blocked loop (or a thread holding the GIL) gives ~0 ticks however long the
block takes; a free loop gives one tick per ``interval_s``, give or take the
machine's load. Assert a count far below the expected one: it is not a timing
assert, only a proof the loop ran.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class Ticker:
    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run(), name="ticker")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
