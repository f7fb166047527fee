"""``secretsync once``: sync every output once, tell the targets, exit.

It takes the outputs' locks like the daemon (a path held by a running
``secretsync run`` is refused: exit 2, nothing written), delivers any
notification a crashed run left pending, runs one cycle, and flushes the
notifications without waiting for ``settle`` (the pass is complete). The dry
run (:func:`dry_run`) takes no lock and writes nothing.

A stop signal cancels the work: writes already started finish, notifications
due are delivered within ``shutdown_timeout``, and the exit code is
128 + the signal number.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from secretsync.config.model import Config
from secretsync.exitcodes import EXIT_FAILURE, EXIT_OK, stopped_by
from secretsync.metrics import Metrics, NullMetrics
from secretsync.output.writer import OutputWriter
from secretsync.runtime.compose import Core
from secretsync.runtime.signals import SignalCapture
from secretsync.source.protocol import SecretSource
from secretsync.sync.syncer import Syncer

if TYPE_CHECKING:
    from secretsync.sync.plan import PlannedOutput


async def dry_run(config: Config, *, source: SecretSource | None = None) -> list[PlannedOutput]:
    """What ``once`` would write (keys only); no lock taken, nothing written."""
    from secretsync.sync.plan import plan  # noqa: PLC0415

    metrics = NullMetrics()
    async with contextlib.AsyncExitStack() as stack:
        core = Core(config, metrics, with_notifier=False, writes_in_thread=False)
        secrets = await core.open_source(stack, source)
        writer = OutputWriter(metrics, locking=False)
        return await plan(Syncer(config, secrets, writer, metrics=metrics))


async def run_once(
    config: Config,
    signals: SignalCapture,
    *,
    notify: bool = True,
    source: SecretSource | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Sync every output once. Returns 0 when all are current, 1 when one is not,
    128 + signal when stopped by a signal. Raises StartupError (exit 2)."""
    # nothing scrapes the metrics of one pass: by default they go nowhere (and
    # prometheus_client is never imported)
    # the writes run on the loop: `once` serves nothing while it writes, and a thread
    # per write costs a GIL hand-over at each of its system calls
    core = Core(
        config,
        metrics or NullMetrics(),
        with_notifier=notify and bool(config.notify),
        writes_in_thread=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals.attach(loop, lambda _signum, _forced: stop.set(), lambda: None)
    try:
        async with contextlib.AsyncExitStack() as stack:
            syncer = await core.start(stack, source)
            stopped = await _until_stopped(syncer.cycle(), stop)
            await core.writer.drain()
            syncer.submit_written()
            notifier = core.notifier
            if notifier is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(notifier.flush(), config.shutdown_timeout_s)
                await notifier.close()
            if stopped or signals.stop_requested:
                return stopped_by(signals.stop_signal)
            return EXIT_OK if syncer.all_current() else EXIT_FAILURE
    finally:
        signals.detach()
        core.close()


async def _until_stopped(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first; True when stopped."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True
