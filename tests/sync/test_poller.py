"""poller.py: scheduling cycles; a cycle that raises never stops syncing nor spins."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secretsync import logs
from secretsync.state import WrittenFile
from secretsync.sync.poller import Poller
from tests.support.harness import make_config, seeded_source
from tests.support.seeds import KAFKA_ID, kafka_secret
from tests.support.wait import async_wait_until


class LowerBound(random.Random):
    """Full jitter at its minimum: retries come as soon as the poller allows."""

    def uniform(self, a: float, b: float) -> float:
        return a


class HostileSink:
    """A notifier that fails ``failures`` times with an exception carrying data, then works."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[WrittenFile]] = []

    def submit(self, written: Sequence[WrittenFile]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise UnicodeEncodeError("utf-8", "CANARY-poller-\ud800", 14, 15, "surrogates")
        self.batches.append(list(written))


async def test_a_cycle_that_raises_still_schedules_the_next_attempt(
    tmp_path: Path, make_rig: Any
) -> None:
    buffer = io.StringIO()
    logs.configure("info", "json", stream=buffer)
    sink = HostileSink(failures=2)
    config = make_config(tmp_path, poll={"interval": "1h", "jitter": 0})
    r = make_rig(config, seeded_source(), notifier=sink)
    poller = Poller(r.syncer, rng=LowerBound())
    task = asyncio.create_task(poller.run())
    try:
        # the first cycle raises (after writing), the next attempt comes without waiting an
        # hour, raises again, and the one after hands the files over: none is lost
        await async_wait_until(lambda: len(sink.batches) == 1, 10, "the first files notified")
        assert len(sink.batches[0]) == 3
        r.source.put(KAFKA_ID, kafka_secret(password="CANARY-after-bug"))
        poller.wake()
        await async_wait_until(lambda: len(sink.batches) == 2, 10, "the rotation notified")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "cycle_failed"]
    assert [e["failures"] for e in failed] == [1, 2]
    assert all(e["error_type"] == "UnicodeEncodeError" and e["retry_in_s"] >= 0 for e in failed)
    assert "CANARY" not in buffer.getvalue()  # no repr, no message of a foreign exception


async def test_wake_starts_a_regular_cycle_now(tmp_path: Path, make_rig: Any) -> None:
    r = make_rig(make_config(tmp_path, poll={"interval": "1h", "jitter": 0}), seeded_source())
    poller = Poller(r.syncer)
    task = asyncio.create_task(poller.run())
    try:
        await async_wait_until(lambda: poller.cycles == 1, 10, "the first cycle")
        poller.wake()
        await async_wait_until(lambda: poller.cycles == 2, 10, "a cycle long before an hour")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
