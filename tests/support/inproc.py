"""``secretsync run`` in the test's own event loop: a real Runtime with an in-memory store.

Everything but the store is real (files, locks, the watcher, the reloader,
the notifier); the metrics server is left out unless asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import load_config
from secretsync.metrics import Metrics
from secretsync.runtime.reload import Reloader
from secretsync.runtime.run import Runtime
from secretsync.runtime.signals import SignalCapture
from secretsync.runtime.watch import Watcher
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer
from tests.support.memsource import MemorySource
from tests.support.wait import async_wait_until


@dataclass
class Running:
    runtime: Runtime
    source: MemorySource
    task: asyncio.Task[int]

    @property
    def syncer(self) -> Syncer:
        assert self.runtime.syncer is not None
        return self.runtime.syncer

    @property
    def poller(self) -> Poller:
        assert self.runtime.poller is not None
        return self.runtime.poller

    @property
    def reloader(self) -> Reloader:
        assert self.runtime.reloader is not None
        return self.runtime.reloader

    @property
    def watcher(self) -> Watcher:
        assert self.runtime.watcher is not None
        return self.runtime.watcher

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def stop(self) -> int:
        if not self.task.done():
            self.runtime.request_stop()
        return await asyncio.wait_for(self.task, 20)


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def run_inproc() -> AsyncIterator[Start]:
    """``await run_inproc(config_path, store, **runtime_kwargs)``; stopped at teardown."""
    started: list[Running] = []

    async def start(config_path: Path, store: MemorySource, **kwargs: Any) -> Running:
        kwargs.setdefault("serve_metrics", False)
        runtime = Runtime(
            config_path, load_config(config_path), SignalCapture(), source=store, **kwargs
        )
        task = asyncio.create_task(runtime.run())
        running = Running(runtime, store, task)
        started.append(running)
        await async_wait_until(lambda: runtime.poller is not None or task.done(), 20, "start-up")
        if task.done():
            task.result()
        return running

    yield start
    for running in started:
        await running.stop()
