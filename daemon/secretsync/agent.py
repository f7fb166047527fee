"""The loop: poll → render → write → notify. The agent owns every long-lived task.

A cycle asks Secrets Manager once (DescribeSecret) for each unique secret that
is due, fetches a value only for a VersionId it has not seen, re-renders just
the outputs that use a changed secret (or whose last attempt failed), writes
them atomically, and only then hands the written files to the notifier.
Failures keep the last good file and are retried: transient ones per secret
with exponential backoff and full jitter, permanent ones at the next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from secretsync import logs
from secretsync.config import Config, OutputConfig
from secretsync.files import (
    WriteError,
    WriteResult,
    read_current,
    resolve_gid,
    resolve_uid,
    write_if_changed,
)
from secretsync.metrics import Metrics
from secretsync.render import RenderError, SecretValue, collect, render
from secretsync.server import Probes
from secretsync.source import THROTTLE_CODES, SecretsSource, SourceError

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
SHUTDOWN_GRACE_S = 3.0


@dataclass(frozen=True)
class WrittenFile:
    """An output whose content changed on disk in a pass."""

    path: Path
    targets: tuple[str, ...]
    initial: bool  # first sync of this output since the daemon started


class NotifySink(Protocol):
    """What the agent needs from a notifier (see notify.py)."""

    def submit(self, written: Sequence[WrittenFile]) -> None:
        """Take the files of one pass, after all of them are written. Must not block."""

    async def serve(self) -> None:
        """Run for the daemon's life (debounce timers); cancelled at shutdown."""

    async def flush(self) -> None:
        """Deliver whatever is pending now (``once``, shutdown)."""


@dataclass
class SecretState:
    secret_id: str
    version_id: str | None = None
    value: SecretValue | None = None
    failures: int = 0  # consecutive transient failures
    retry_at: float = 0.0  # monotonic; 0 = check at every regular cycle
    error: SourceError | None = None
    checked_ok: bool = False  # the last check succeeded

    def __repr__(self) -> str:
        return (
            f"SecretState(secret_id={self.secret_id!r}, version_id={self.version_id!r}, "
            f"failures={self.failures}, error={self.error and self.error.code!r})"
        )


@dataclass
class OutputState:
    config: OutputConfig
    last_bytes: bytes | None = None  # what we last wrote or confirmed on disk
    synced_at: float | None = None  # wall time the output was last confirmed current
    ok: bool = False  # the last attempt succeeded
    dirty: bool = True  # must be (re-)rendered at the next cycle
    error: str | None = None
    initial: bool = True  # no successful sync yet in this process

    def __repr__(self) -> str:
        return f"OutputState(path={str(self.config.path)!r}, ok={self.ok}, dirty={self.dirty})"


@dataclass(frozen=True)
class PlannedOutput:
    """Dry-run result for one output: keys only, never values."""

    config: OutputConfig
    would_write: bool | None  # None: cannot be rendered (see error)
    keys: list[str]
    error: str | None


@dataclass
class CycleReport:
    """What one cycle did; logged as the ``poll_cycle`` summary line."""

    secrets_checked: int = 0
    secrets_changed: list[str] = field(default_factory=list)
    files_written: list[WrittenFile] = field(default_factory=list)
    errors: int = 0
    duration_s: float = 0.0


class Agent:
    """Keeps every output of ``config`` in step with Secrets Manager.

    Collaborators are injected: ``source`` (started by the caller), ``metrics``
    (a fresh registry if omitted), ``notifier`` (optional). The constructor does
    no I/O; :meth:`cycle` runs one pass, :meth:`run` loops until ``stop`` is set.
    """

    def __init__(
        self,
        config: Config,
        source: SecretsSource,
        *,
        metrics: Metrics | None = None,
        notifier: NotifySink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.metrics = metrics or Metrics()
        self.notifier = notifier
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._secrets: dict[str, SecretState] = {}
        self._outputs: dict[Path, OutputState] = {}
        self._write_lock = asyncio.Lock()
        self._services: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._cycle_hooks: list[Callable[[CycleReport], None]] = []
        self.cycles = 0
        self.files_written = 0
        self.last_cycle_started: float | None = None  # monotonic
        self._wake = asyncio.Event()
        self._log = logs.get_logger()
        self._apply(config)

    def __repr__(self) -> str:
        return (
            f"Agent(outputs={len(self._outputs)}, secrets={len(self._secrets)}, "
            f"cycles={self.cycles}, files_written={self.files_written})"
        )

    def add_service(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as a task for the life of :meth:`run` (metrics server, watcher, …).

        The task is cancelled at shutdown; if it fails, the error is logged and the
        daemon carries on polling.
        """
        self._services.append((name, factory))

    def add_cycle_hook(self, hook: Callable[[CycleReport], None]) -> None:
        """Call ``hook(report)`` after every cycle (sd_notify status, readiness, …)."""
        self._cycle_hooks.append(hook)

    # -- configuration -----------------------------------------------------------------

    def _apply(self, config: Config) -> None:
        self.config = config
        self._secrets = {
            sid: self._secrets.get(sid) or SecretState(sid) for sid in config.secret_ids
        }
        outputs: dict[Path, OutputState] = {}
        for out in config.outputs:
            state = self._outputs.get(out.path)
            if state is None:
                state = OutputState(out)
            elif state.config != out:
                state.config, state.dirty = out, True
            outputs[out.path] = state
        self._outputs = outputs
        self.metrics.declare(
            paths=[str(p) for p in outputs], secrets=config.secret_ids, targets=config.notify
        )

    def reconfigure(self, config: Config) -> None:
        """Switch to a new validated config without losing fetched values.

        New outputs and changed outputs are rendered at the next cycle; removed
        outputs are left on disk and no longer managed; secrets no longer used
        stop being polled.
        """
        self._apply(config)

    # -- state for health, readiness and the watcher ---------------------------------------

    @property
    def outputs(self) -> dict[Path, OutputState]:
        return dict(self._outputs)

    @property
    def secrets(self) -> dict[str, SecretState]:
        return dict(self._secrets)

    def all_current(self) -> bool:
        """True when every output's last attempt succeeded and all its secrets checked fine."""
        return all(
            st.ok and all(self._secrets[s].checked_ok for s in st.config.secret_ids)
            for st in self._outputs.values()
        )

    def probes(self) -> Probes:
        """Callables through which the metrics server reads health and readiness."""
        return Probes(
            last_poll_started=lambda: self.last_cycle_started,
            poll_interval_s=lambda: self.config.poll.interval_s,
            not_ready=self.not_ready,
        )

    def not_ready(self) -> list[str]:
        """Paths of outputs never synced, or not confirmed current within ``stale_after``."""
        limit = self._wall() - self.config.stale_after_s
        return [
            str(path)
            for path, st in self._outputs.items()
            if st.synced_at is None or st.synced_at < limit
        ]

    # -- one cycle ---------------------------------------------------------------------

    async def cycle(self, *, regular: bool = True) -> CycleReport:
        """One pass: check due secrets, fetch new versions, render and write affected outputs.

        A regular cycle checks every secret not in transient backoff; a retry cycle
        (``regular=False``) only those whose backoff has expired. Never raises for
        AWS, render or write failures: they are logged, counted and kept for retry.
        """
        started = self._clock()
        self.last_cycle_started = started
        report = CycleReport()
        due = [
            st
            for st in self._secrets.values()
            if (st.retry_at and st.retry_at <= started) or (regular and not st.retry_at)
        ]
        report.secrets_checked = len(due)
        changed_flags = await asyncio.gather(*(self._check(st) for st in due))
        changed = {st.secret_id for st, flag in zip(due, changed_flags, strict=True) if flag}
        report.secrets_changed = sorted(changed)
        checked = {st.secret_id for st in due}

        for state in list(self._outputs.values()):
            ids = set(state.config.secret_ids)
            if state.dirty or ids & changed:
                written = await self._sync_output(state)
                if written is not None:
                    report.files_written.append(written)
                if not state.ok:
                    report.errors += 1
            elif ids & checked:
                failed = [
                    self._secrets[s] for s in ids & checked if not self._secrets[s].checked_ok
                ]
                if failed:
                    report.errors += 1
                    for st in failed:
                        self._count_error(state, st.error)
                elif state.ok:
                    self._mark_current(state)

        if report.files_written and self.notifier is not None:
            self.notifier.submit(report.files_written)
        self.files_written += len(report.files_written)
        self.cycles += 1
        report.duration_s = self._clock() - started
        self.metrics.poll_duration.observe(report.duration_s)
        self.metrics.ready.set(0 if self.not_ready() else 1)
        for hook in self._cycle_hooks:
            hook(report)
        self._log.info(
            "poll_cycle",
            secrets_checked=report.secrets_checked,
            secrets_changed=len(report.secrets_changed),
            files_written=len(report.files_written),
            errors=report.errors,
            duration_s=round(report.duration_s, 4),
            regular=regular,
        )
        return report

    async def _check(self, st: SecretState) -> bool:
        """Describe one secret and fetch its AWSCURRENT value if new. True when it changed."""
        try:
            version_id = await self.source.current_version(st.secret_id)
            changed = version_id != st.version_id or st.value is None
            if changed:
                value = await self.source.fetch(st.secret_id, version_id)
                logs.register_secret_values(_leaf_strings(value))
                previous, st.value, st.version_id = st.version_id, value, version_id
                self.metrics.secret_changes.labels(secret=st.secret_id).inc()
                self._log.info(
                    "secret_changed",
                    secret=st.secret_id,
                    version_id=version_id,
                    previous_version_id=previous,
                )
        except SourceError as exc:
            st.error, st.checked_ok = exc, False
            if exc.transient:
                st.failures += 1
                backoff_s = self._rng.uniform(
                    0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**st.failures)
                )
                st.retry_at = self._clock() + backoff_s
            else:
                st.failures, st.retry_at = 0, 0.0
            self._log.warning(
                "secret_check_failed",
                secret=st.secret_id,
                code=exc.code,
                transient=exc.transient,
                error=str(exc),
                retry_in_s=round(st.retry_at - self._clock(), 2) if st.retry_at else None,
            )
            return False
        st.error, st.checked_ok, st.failures, st.retry_at = None, True, 0, 0.0
        return changed

    async def _sync_output(self, state: OutputState) -> WrittenFile | None:
        out = state.config
        values = {sid: self._secrets[sid].value for sid in out.secret_ids}
        missing = [self._secrets[sid] for sid, value in values.items() if value is None]
        if missing:
            state.ok, state.dirty = False, True
            for st in missing:
                self._count_error(state, st.error)
            return None
        try:
            data = render(out, {sid: v for sid, v in values.items() if v is not None})
        except RenderError as exc:
            self._fail(state, "render", str(exc))
            return None
        try:
            result = await self._write(out, data)
        except WriteError as exc:
            self._fail(state, "write", str(exc), errno=exc.reason)
            return None
        state.last_bytes, state.dirty = data, False
        initial, state.initial = state.initial, False
        ok_sources = all(self._secrets[sid].checked_ok for sid in out.secret_ids)
        state.ok = True
        if ok_sources:
            self._mark_current(state)
        if result.fixed_attrs:
            self._log.info("file_attrs_fixed", path=str(out.path))
        if not result.did_render:
            return None
        self.metrics.file_writes.labels(path=str(out.path)).inc()
        self._log.info("file_written", path=str(out.path), format=out.format, size=len(data))
        return WrittenFile(out.path, tuple(out.notify), initial)

    async def _write(self, out: OutputConfig, data: bytes) -> WriteResult:
        uid, gid = resolve_uid(out.owner), resolve_gid(out.group)
        async with self._write_lock:
            # a thread: fsync can take a while and must not stall the loop; if the
            # waiting task is cancelled the thread still finishes its write atomically
            return await asyncio.to_thread(
                write_if_changed, out.path, data, mode=out.mode, uid=uid, gid=gid
            )

    def _mark_current(self, state: OutputState) -> None:
        state.synced_at = self._wall()
        state.error = None
        self.metrics.last_success.labels(path=str(state.config.path)).set(state.synced_at)

    def _fail(self, state: OutputState, reason: str, message: str, **fields: str) -> None:
        state.ok, state.dirty, state.error = False, True, message
        self.metrics.sync_errors.labels(path=str(state.config.path), reason=reason).inc()
        self._log.error(
            "output_failed", path=str(state.config.path), reason=reason, error=message, **fields
        )

    def _count_error(self, state: OutputState, error: SourceError | None) -> None:
        reason = "throttled" if error and error.code in THROTTLE_CODES else "fetch"
        state.error = str(error) if error else "secret unavailable"
        self.metrics.sync_errors.labels(path=str(state.config.path), reason=reason).inc()

    # -- dry run -------------------------------------------------------------------------

    async def plan(self) -> list[PlannedOutput]:
        """Check and fetch like a cycle, render every output, compare with disk; write nothing."""
        due = list(self._secrets.values())
        await asyncio.gather(*(self._check(st) for st in due))
        planned = []
        for state in self._outputs.values():
            out = state.config
            values = {sid: self._secrets[sid].value for sid in out.secret_ids}
            try:
                for st in (self._secrets[sid] for sid in out.secret_ids):
                    if st.value is None:
                        raise RenderError(str(st.error) if st.error else "secret unavailable")
                present = {sid: v for sid, v in values.items() if v is not None}
                keys = sorted(collect(out, present))
                data = render(out, present)
            except RenderError as exc:
                planned.append(PlannedOutput(out, None, [], str(exc)))
                continue
            current = await asyncio.to_thread(read_current, out.path)
            planned.append(PlannedOutput(out, current != data, keys, None))
        return planned

    # -- drift repair (used by the watcher) ----------------------------------------------

    async def repair(self, path: Path) -> bool:
        """Restore ``path`` from the last rendered bytes if someone else changed it.

        Content, mode and owner are all put back (a chmod by someone else is drift
        too). Makes no AWS call and notifies nobody. Returns True when a repair was
        needed; False for an unmanaged path, one never written, or a file that is
        already right (e.g. the event came from our own atomic write).
        """
        state = self._outputs.get(path)
        if state is None or state.last_bytes is None:
            return False
        out = state.config
        try:
            uid, gid = resolve_uid(out.owner), resolve_gid(out.group)
            async with self._write_lock:
                # compare under the write lock: a cycle that has just renamed new
                # content into place sets last_bytes before it releases the lock, so
                # its own write is never taken for drift (nor undone)
                if self._outputs.get(path) is not state or state.last_bytes is None:
                    return False
                result = await asyncio.to_thread(
                    write_if_changed, path, state.last_bytes, mode=out.mode, uid=uid, gid=gid
                )
        except WriteError as exc:
            self._fail(state, "write", str(exc), errno=exc.reason)
            return False
        if not (result.did_render or result.fixed_attrs):
            return False
        self.metrics.drift_repairs.labels(path=str(path)).inc()
        self._log.warning(
            "drift_repaired", path=str(path), what="content" if result.did_render else "attrs"
        )
        return True

    def wake(self) -> None:
        """Cut the current wait short: a regular cycle starts at once (or right after
        the one in flight). Used after a config reload so new outputs appear now."""
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    async def _service(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.error("service_failed", service=name, error=str(exc))

    def _next_wake(self, next_regular: float) -> tuple[float, bool]:
        """(monotonic time, regular?) of the next cycle: a backoff retry may come first."""
        retries = [st.retry_at for st in self._secrets.values() if st.retry_at]
        earliest = min(retries, default=next_regular)
        return (earliest, False) if earliest < next_regular else (next_regular, True)

    def _interval_s(self) -> float:
        poll = self.config.poll
        return poll.interval_s * (1 + self._rng.uniform(-poll.jitter, poll.jitter))

    async def _sleep(self, stop_wait: asyncio.Task[bool], timeout_s: float) -> bool:
        """Wait for stop, :meth:`wake` or ``timeout_s``; True when woken."""
        woken = asyncio.create_task(self._wake.wait(), name="wake-wait")
        try:
            await asyncio.wait(
                {stop_wait, woken},
                timeout=max(0.0, timeout_s),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            woken.cancel()
        return self._wake.is_set() and not stop_wait.done()

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until ``stop`` is set, then stop within a few seconds.

        A cycle in flight gets ``SHUTDOWN_GRACE_S`` to finish (a write in progress
        always completes: it runs in a thread), then is cancelled.
        """
        background: list[asyncio.Task[None]] = []
        if self.notifier is not None:
            background.append(asyncio.create_task(self.notifier.serve(), name="notify"))
        for name, factory in self._services:
            background.append(asyncio.create_task(self._service(name, factory), name=name))
        stop_wait = asyncio.create_task(stop.wait(), name="stop-wait")
        regular, next_regular = True, 0.0
        try:
            while not stop.is_set():
                self._wake.clear()  # a wake() during this cycle asks for another one
                cycle = asyncio.create_task(self.cycle(regular=regular), name="cycle")
                await asyncio.wait({cycle, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not cycle.done():
                    await asyncio.wait({cycle}, timeout=SHUTDOWN_GRACE_S)
                    if not cycle.done():
                        cycle.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await cycle
                    break
                if cycle.exception() is not None:
                    # a bug, not an AWS/render/write failure (those never raise): keep
                    # the daemon alive and the last good files in place
                    self._log.error("cycle_failed", error=repr(cycle.exception()))
                if regular:
                    next_regular = self._clock() + self._interval_s()
                wake_at, regular = self._next_wake(next_regular)
                if await self._sleep(stop_wait, wake_at - self._clock()):
                    regular = True
        finally:
            stop_wait.cancel()
            if self.notifier is not None:
                with contextlib.suppress(Exception, TimeoutError):
                    await asyncio.wait_for(self.notifier.flush(), SHUTDOWN_GRACE_S)
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _leaf_strings(value: SecretValue) -> list[str]:
    """The raw secret text and every string inside it, for log redaction."""
    if value.text is None:
        return []
    leaves = [value.text]
    with contextlib.suppress(ValueError):
        data = json.loads(value.text)
        if isinstance(data, dict):
            leaves += [str(v) for v in data.values() if isinstance(v, str | int | float)]
    return leaves
