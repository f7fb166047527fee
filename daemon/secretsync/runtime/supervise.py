"""Supervision of the daemon's long-lived tasks.

Each task (the poller, the notifier, the watcher, the reloader, the systemd
watchdog) runs under :meth:`Supervisor.run`: if it fails, the failure is
logged with its traceback (code locations only, see
:func:`secretsync.logs.error_fields`), counted in
``secretsync_task_restarts_total{task}``, and the task is restarted after a
backoff. A task that fails ``UNHEALTHY_AFTER`` times in a row without running
``STABLE_AFTER_S`` in between is reported by :meth:`failing`, which makes
``/healthz`` fail with its name, so the orchestrator restarts the daemon.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from secretsync import backoff, logs
from secretsync.metrics import Metrics

RESTART_CAP_S = 30.0  # the longest wait before a restart
UNHEALTHY_AFTER = 3  # consecutive failures that make /healthz fail
STABLE_AFTER_S = 60.0  # a run this long resets the count


class Supervisor:
    """Runs tasks and restarts them when they fail. No I/O in the constructor."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        restart_cap_s: float = RESTART_CAP_S,
        retry_base_s: float = backoff.BASE_S,
    ) -> None:
        self.metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self.restart_cap_s = restart_cap_s
        self.retry_base_s = retry_base_s
        self._failures: dict[str, int] = {}
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Supervisor(failures={self._failures})"

    def failing(self) -> list[str]:
        """Names of the tasks that keep failing (for /healthz)."""
        return sorted(name for name, n in self._failures.items() if n >= UNHEALTHY_AFTER)

    async def run(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` until it returns; restart it (with backoff) each time it raises.

        Cancellation ends it at once.
        """
        self.metrics.task_restarts.labels(task=name)
        loop = asyncio.get_running_loop()
        while True:
            # running this long without failing clears the count (and /healthz)
            stable = loop.call_later(STABLE_AFTER_S, self._failures.pop, name, None)
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stable.cancel()
                failures = self._failures[name] = self._failures.get(name, 0) + 1
                delay_s = backoff.delay_s(
                    failures, self._rng, base_s=self.retry_base_s, cap_s=self.restart_cap_s
                )
                self.metrics.task_restarts.labels(task=name).inc()
                self._log.error(
                    "task_failed",
                    task=name,
                    failures=failures,
                    restart_in_s=round(delay_s, 2),
                    **logs.error_fields(exc, with_traceback=True),
                )
                await asyncio.sleep(delay_s)
            finally:
                stable.cancel()
