"""supervise.py: a failing task is logged with its traceback, counted, restarted, and reported."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from secretsync import logs
from secretsync.metrics import Metrics
from secretsync.runtime.supervise import UNHEALTHY_AFTER, Supervisor
from tests.support.wait import async_wait_until


async def test_restarts_start_at_the_retry_base_and_double_up_to_the_cap() -> None:
    buffer = io.StringIO()
    logs.configure("info", "json", stream=buffer)
    supervisor = Supervisor(Metrics(), retry_base_s=0.001, restart_cap_s=0.05)
    runs = 0

    async def failing() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("boom")

    task = asyncio.create_task(supervisor.run("push", failing))
    await async_wait_until(lambda: runs >= 12, 10, "restarts")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    delays = [(e["failures"], e["restart_in_s"]) for e in events if e["event"] == "task_failed"]
    assert len(delays) >= 11
    # full jitter within min(cap, base · 2^failures): 2 ms, 4 ms, … never above 50 ms
    assert all(d <= min(0.05, 0.001 * 2**n) + 0.005 for n, d in delays), delays


async def test_a_failing_task_is_restarted_counted_and_reported_by_name() -> None:
    buffer = io.StringIO()
    logs.configure("info", "json", stream=buffer)
    metrics = Metrics()
    supervisor = Supervisor(metrics, restart_cap_s=0.01)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= UNHEALTHY_AFTER + 1:
            # an exception whose text holds data: it must not reach the log
            raise ValueError("CANARY-task-data")
        await asyncio.Event().wait()

    task = asyncio.create_task(supervisor.run("poll", flaky))
    await async_wait_until(lambda: runs == UNHEALTHY_AFTER + 2, 10, "restarts")
    restarts = metrics.registry.get_sample_value("secretsync_task_restarts_total", {"task": "poll"})
    assert restarts == UNHEALTHY_AFTER + 1
    assert supervisor.failing() == ["poll"]  # /healthz names it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "task_failed"]
    assert len(failed) == UNHEALTHY_AFTER + 1
    assert failed[0]["task"] == "poll" and failed[0]["error_type"] == "ValueError"
    assert any("flaky" in frame for frame in failed[0]["traceback"])
    assert "CANARY-task-data" not in buffer.getvalue()


async def test_a_task_that_returns_is_not_restarted() -> None:
    supervisor = Supervisor(Metrics())
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    await supervisor.run("once", once)
    assert runs == [1] and supervisor.failing() == []
