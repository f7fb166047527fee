"""Push refresh: read Secrets Manager events from SQS and check the secrets they name now.

An event is only a hint. :class:`PushListener` reads messages (long poll),
asks :func:`secretsync.push.events.match` which of our secrets a message names,
hands those to the poller (which checks them through the normal path:
DescribeSecret, then GetSecretValue pinned to the version), and deletes every
batch it received, whatever the messages held and whatever happened while
handling them. Events for other secrets cost no Secrets Manager call. Polling
stays the safety net, so a lost event costs at most one poll interval. Bodies
are never logged.

A flood costs little: hints are coalesced per secret by :class:`HintGate`
(at most one check asked per short window, a trailing one for what arrived
inside it, none while the secret is in backoff), and the listener logs one
``push_summary`` line a minute instead of a line per message. Every failure
to set up, read or tend the queue is counted in
``secretsync_push_errors_total{reason}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from secretsync import backoff, logs
from secretsync.metrics import Metrics
from secretsync.push.events import SecretIndex, match

ERROR_CAP_S = 60.0  # the longest wait after the queue failed to answer
HINT_WINDOW_S = 1.0  # at most one check of a secret per window…
HINT_WINDOW_MAX_S = 30.0  # …which grows up to this while a flood goes on
FLOOD_HINTS = 10  # hints of one secret inside one window that make the window grow
SUMMARY_S = 60.0  # one push_summary line per this much time (when something happened)

RetryAt = Callable[[str], float | None]
"""The monotonic time a secret's backoff ends (None or 0: not in backoff)."""


class PushError(Exception):
    """The queue could not be read, set up or tended.

    The message names the step and the AWS error code; ``reason`` is one of
    ``access_denied``, ``not_found``, ``throttled``, ``unavailable``, ``error``
    (the ``reason`` label of ``secretsync_push_errors_total``).
    """

    safe_message = True

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    """One SQS message: its body (never logged) and the handle that deletes it."""

    body: str
    receipt: str


class Queue(Protocol):
    """What the listener needs from a queue (see :mod:`secretsync.push.sqs`)."""

    async def receive(self) -> list[Message]:
        """Long-poll for messages. Raises PushError."""

    async def delete(self, messages: list[Message]) -> None:
        """Delete handled messages. Raises PushError."""

    async def tend(self) -> None:
        """Upkeep when due (lease, stale queues); returns at once otherwise. Raises PushError."""


@dataclass
class _Gate:
    next_ok: float = 0.0  # monotonic: the earliest time the next hint may go
    window_s: float = HINT_WINDOW_S
    held: int = 0  # hints held back inside the current window
    pending: bool = False  # a trailing hint is due at next_ok


@dataclass
class GateStats:
    """What the gate did since the last summary."""

    sent: int = 0
    coalesced: int = 0
    in_backoff: int = 0
    secrets: set[str] = field(default_factory=set)


class HintGate:
    """Per-secret coalescing of push hints. Pure: the caller passes the time.

    :meth:`offer` returns the secrets to check now. The first hint of a secret
    goes at once; hints arriving within its window are held and one trailing
    hint goes when the window ends (so a rotation announced during a flood is
    still checked). While a secret gets :data:`FLOOD_HINTS` or more hints in
    one window, its window doubles, up to ``window_max_s``; a quiet window
    brings it back to ``window_s``. A secret in backoff (``retry_at`` in the
    future) is not hinted: its retry comes with the backoff.
    """

    def __init__(
        self,
        retry_at: RetryAt | None = None,
        *,
        window_s: float = HINT_WINDOW_S,
        window_max_s: float = HINT_WINDOW_MAX_S,
    ) -> None:
        self._retry_at = retry_at or (lambda _sid: None)
        self.window_s = window_s
        self.window_max_s = max(window_s, window_max_s)
        self._gates: dict[str, _Gate] = {}
        self.stats = GateStats()

    def __repr__(self) -> str:
        return f"HintGate(secrets={len(self._gates)}, pending={len(self.pending())})"

    def pending(self) -> list[str]:
        return [sid for sid, gate in self._gates.items() if gate.pending]

    def next_due(self) -> float | None:
        """The earliest time a held hint is due (for :meth:`due`), or None."""
        return min((g.next_ok for g in self._gates.values() if g.pending), default=None)

    def _in_backoff(self, secret_id: str, now: float) -> bool:
        retry = self._retry_at(secret_id)
        if retry and retry > now:
            self.stats.in_backoff += 1
            return True
        return False

    def _send(self, secret_id: str, gate: _Gate, now: float) -> None:
        gate.next_ok, gate.held, gate.pending = now + gate.window_s, 0, False
        self.stats.sent += 1
        self.stats.secrets.add(secret_id)

    def offer(self, secret_ids: Iterable[str], now: float) -> list[str]:
        """Hints for ``secret_ids`` at ``now``: the ones to check now, sorted."""
        out: list[str] = []
        for secret_id in dict.fromkeys(secret_ids):
            gate = self._gates.setdefault(secret_id, _Gate())
            if gate.pending or now < gate.next_ok:
                self.stats.coalesced += 1
                gate.held += 1
                gate.pending = True
                if gate.held == FLOOD_HINTS:
                    gate.window_s = min(gate.window_s * 2, self.window_max_s)
                continue
            if self._in_backoff(secret_id, now):
                continue
            if now >= gate.next_ok + gate.window_s:
                gate.window_s = self.window_s  # a quiet window: back to the short one
            self._send(secret_id, gate, now)
            out.append(secret_id)
        return sorted(out)

    def due(self, now: float) -> list[str]:
        """Held hints whose window has ended at ``now``: the ones to check now, sorted."""
        out: list[str] = []
        for secret_id, gate in self._gates.items():
            if gate.pending and now >= gate.next_ok:
                if self._in_backoff(secret_id, now):
                    gate.pending, gate.held = False, 0
                    continue
                self._send(secret_id, gate, now)
                out.append(secret_id)
        return sorted(out)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the state of secrets no longer configured."""
        wanted = set(keep)
        self._gates = {sid: g for sid, g in self._gates.items() if sid in wanted}


class PushListener:
    """Reads the queue until cancelled. No I/O in the constructor.

    ``secret_ids()`` gives the ids configured now (it follows reloads);
    ``hint(ids)`` asks for those to be checked at once; ``retry_at(id)`` says
    until when a secret is in backoff (hints wait for it).
    """

    def __init__(
        self,
        queue: Queue,
        *,
        secret_ids: Callable[[], Iterable[str]],
        hint: Callable[[Iterable[str]], None],
        metrics: Metrics,
        retry_at: RetryAt | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        window_s: float = HINT_WINDOW_S,
        retry_base_s: float = backoff.BASE_S,
    ) -> None:
        self.queue = queue
        self.retry_base_s = retry_base_s
        self._secret_ids = secret_ids
        self._hint = hint
        self.metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._clock = clock
        self._wall = wall_clock
        self.gate = HintGate(retry_at, window_s=window_s)
        self.handled = 0
        self._index: SecretIndex | None = None
        self._counts: collections.Counter[str] = collections.Counter()
        self._reasons: collections.Counter[str] = collections.Counter()
        self._summary_at = clock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"PushListener(queue={self.queue!r}, handled={self.handled})"

    async def run(self) -> None:
        """Tend, receive, match, hint, delete; a queue that fails is retried with backoff.

        A failed upkeep (:meth:`Queue.tend`) is counted and logged but never
        stops the reading.
        """
        failures = 0
        try:
            while True:
                try:
                    await self.queue.tend()
                except PushError as exc:
                    self._count_error(exc)
                    self._log.warning("push_upkeep_failed", error=str(exc), reason=exc.reason)
                try:
                    messages = await self.queue.receive()
                    try:
                        self.handle(messages)
                    finally:
                        await self.queue.delete(messages)  # the whole batch, always
                except PushError as exc:
                    self._count_error(exc)
                    failures += 1
                    delay_s = backoff.delay_s(
                        failures, self._rng, base_s=self.retry_base_s, cap_s=ERROR_CAP_S
                    )
                    self._log.warning(
                        "push_failed",
                        error=str(exc),
                        reason=exc.reason,
                        failures=failures,
                        retry_in_s=round(delay_s, 2),
                    )
                    await asyncio.sleep(delay_s)
                else:
                    failures = 0
                self.summarise()
        finally:
            self._cancel_timer()

    def _count_error(self, exc: PushError) -> None:
        self.metrics.push_errors.labels(reason=exc.reason).inc()

    def _ours(self) -> SecretIndex:
        ids = tuple(self._secret_ids())
        if self._index is None or self._index.ids != tuple(dict.fromkeys(ids)):
            self._index = SecretIndex(ids)  # a reload changed the secrets
            self.gate.forget(self._index.ids)
        return self._index

    def handle(self, messages: list[Message]) -> None:
        """Classify and count each message; hint the secrets the matched ones name.

        Never raises for a message: one that cannot be classified for any
        reason is counted ``invalid``.
        """
        if not messages:
            return
        self.metrics.push_last_message.set(self._wall())
        ours = self._ours()
        hinted: set[str] = set()
        for message in messages:
            try:
                verdict = match(message.body, ours)
                outcome, reason = verdict.outcome, verdict.reason
                hinted.update(verdict.secret_ids)
            except Exception:  # a bug must cost one message, not the listener
                outcome, reason = "invalid", "unreadable"
            self.metrics.push_messages.labels(outcome=outcome).inc()
            self._counts[outcome] += 1
            if outcome == "invalid":
                self._reasons[reason] += 1
            self.handled += 1
        if hinted:
            self._pass(self.gate.offer(hinted, self._clock()), trailing=False)
        self._arm_timer()

    def _pass(self, secret_ids: list[str], *, trailing: bool) -> None:
        if secret_ids:
            self._log.info("push_hint", secrets=secret_ids, trailing=trailing)
            self._hint(secret_ids)

    def _arm_timer(self) -> None:
        """Wake at the earliest held hint's due time (earlier than the armed one, if any)."""
        due = self.gate.next_due()
        if due is None or (self._timer is not None and self._timer_due <= due):
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer_due = due
        self._timer = loop.call_later(max(0.0, due - self._clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._pass(self.gate.due(self._clock()), trailing=True)
        self._arm_timer()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def summarise(self, *, force: bool = False) -> None:
        """Log one ``push_summary`` of what happened since the last one, at most every minute."""
        now = self._clock()
        if not force and now - self._summary_at < SUMMARY_S:
            return
        stats = self.gate.stats
        if self._counts or stats.sent or stats.in_backoff:
            log = self._log.warning if self._counts["invalid"] else self._log.info
            with contextlib.suppress(Exception):  # logging must never stop the listener
                log(
                    "push_summary",
                    period_s=round(now - self._summary_at, 1),
                    matched=self._counts["matched"],
                    ignored=self._counts["ignored"],
                    invalid=self._counts["invalid"],
                    invalid_reasons=dict(self._reasons),
                    checks=stats.sent,
                    coalesced=stats.coalesced,
                    waited_for_backoff=stats.in_backoff,
                    secrets=sorted(stats.secrets),
                )
        self._counts.clear()
        self._reasons.clear()
        self.gate.stats = GateStats()
        self._summary_at = now
