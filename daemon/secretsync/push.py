"""Push refresh: read Secrets Manager events from SQS and check the secrets they name now.

An event is only a hint. :class:`PushListener` reads messages (long poll),
asks :func:`secretsync.events.match` which of our secrets a message names,
hands those to the poller (which checks them through the normal path:
DescribeSecret, then GetSecretValue pinned to the version), and deletes every
message it has handled, the malformed ones included. Events for other secrets
cost no Secrets Manager call. Polling stays the safety net, so a lost event
costs at most one poll interval. Bodies are never logged.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from secretsync import backoff, logs
from secretsync.events import match
from secretsync.metrics import Metrics

ERROR_CAP_S = 60.0  # the longest wait after the queue failed to answer


class PushError(Exception):
    """The queue could not be read or set up; the message names the step and the AWS code."""

    safe_message = True


@dataclass(frozen=True)
class Message:
    """One SQS message: its body (never logged) and the handle that deletes it."""

    body: str
    receipt: str


class Queue(Protocol):
    """What the listener needs from a queue (see :mod:`secretsync.pushqueue`)."""

    async def receive(self) -> list[Message]:
        """Long-poll for messages. Raises PushError."""

    async def delete(self, messages: list[Message]) -> None:
        """Delete handled messages. Raises PushError."""


class PushListener:
    """Reads the queue until cancelled. No I/O in the constructor.

    ``secret_ids()`` gives the ids configured now (it follows reloads);
    ``hint(ids)`` asks for those to be checked at once.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        secret_ids: Callable[[], Iterable[str]],
        hint: Callable[[Iterable[str]], None],
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self._secret_ids = secret_ids
        self._hint = hint
        self.metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self.handled = 0
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"PushListener(queue={self.queue!r}, handled={self.handled})"

    async def run(self) -> None:
        """Receive, match, hint, delete; a queue that fails is retried with backoff."""
        failures = 0
        while True:
            try:
                messages = await self.queue.receive()
                self.handle(messages)
                await self.queue.delete(messages)
            except PushError as exc:
                failures += 1
                delay_s = backoff.delay_s(failures, self._rng, cap_s=ERROR_CAP_S)
                self._log.warning(
                    "push_failed", error=str(exc), failures=failures, retry_in_s=round(delay_s, 2)
                )
                await asyncio.sleep(delay_s)
            else:
                failures = 0

    def handle(self, messages: list[Message]) -> None:
        """Classify and count each message; hint the secrets the matched ones name."""
        if not messages:
            return
        ours = list(self._secret_ids())
        hinted: set[str] = set()
        for message in messages:
            verdict = match(message.body, ours)
            self.metrics.push_messages.labels(outcome=verdict.outcome).inc()
            self.handled += 1
            if verdict.outcome == "matched":
                hinted.update(verdict.secret_ids)
                self._log.info("push_matched", secrets=list(verdict.secret_ids))
            elif verdict.outcome == "invalid":
                self._log.warning("push_invalid", reason=verdict.reason, size=len(message.body))
            else:
                self._log.debug("push_ignored", reason=verdict.reason)
        if hinted:
            self._hint(sorted(hinted))
