"""debounce.py: one quiescence type for notification batches and config reloads."""

from __future__ import annotations

import asyncio

from secretsync.debounce import Quiescence
from tests.support.harness import FakeClock
from tests.support.wait import async_wait_until


def test_quiet_period_restarts_on_each_poke_but_the_cap_holds() -> None:
    clock = FakeClock(0.0)
    q = Quiescence(2.0, 5.0, clock=clock)
    assert q.due_at() is None and not q.settled()
    q.poke()
    assert q.due_at() == 2.0
    for _ in range(10):  # a change every second: never quiet for 2 s…
        clock.advance(1.0)
        q.poke()
    assert q.due_at() == 5.0  # …but due 5 s after the first change
    clock.now = 5.0
    assert q.settled()
    q.reset()
    assert q.due_at() is None and not q.active


async def test_wait_returns_once_settled_and_follows_new_settle_times() -> None:
    q = Quiescence(3600.0, 3600.0)
    waiter = asyncio.create_task(q.wait())
    q.poke()
    await asyncio.sleep(0)
    assert not waiter.done()
    q.configure(0.0, 0.0)  # a reload shortens the settle time: the wait ends now
    await async_wait_until(waiter.done, 5, "the wait to end")
