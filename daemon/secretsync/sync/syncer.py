"""The syncer: check secrets, fetch new versions, render and write the outputs they feed.

A cycle asks the source once (``current_version``) for each unique secret that
is due, fetches a value only for a version it does not hold, re-renders just
the outputs that use a changed secret (or whose last attempt failed), has the
writer write them, and hands the files that changed to the notifier only when
the whole pass is written. Failures keep the last good file: transient source
errors back off per secret (:mod:`secretsync.backoff`, never longer than the
poll interval), permanent ones are retried at the next regular cycle, and an
output that cannot be rendered costs that output alone. The source is any
:class:`~secretsync.source.protocol.SecretSource`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from secretsync import backoff, logs
from secretsync.config.model import Config
from secretsync.metrics import Metrics
from secretsync.output.files import WriteError
from secretsync.output.render import RenderError, collect_entries, leaf_strings, render_entries
from secretsync.output.writer import OutputWriter
from secretsync.source.protocol import SecretSource, SecretValue, SourceError
from secretsync.state import CycleReport, OutputState, SecretState, WrittenFile


class NotifySink(Protocol):
    """What the syncer needs from a notifier (see notify.py)."""

    def submit(self, written: Sequence[WrittenFile]) -> None:
        """Take the files of one pass, after all of them are written. Must not block."""


@dataclass(frozen=True)
class Prepared:
    """One output rendered from the values held, or why it cannot be (keys only, no values)."""

    data: bytes | None
    keys: list[str]
    versions: dict[str, str]
    error: str | None = None
    reason: str | None = None  # sync_errors reason: fetch, throttled, render


@dataclass(frozen=True)
class Removed:
    """What a reconfiguration stopped managing."""

    paths: list[Path] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


class Syncer:
    """Keeps every output of ``config`` in step with ``source`` through ``writer``.

    The constructor does no I/O. :meth:`cycle` runs one pass; scheduling passes
    is the poller's job.
    """

    def __init__(
        self,
        config: Config,
        source: SecretSource,
        writer: OutputWriter,
        *,
        metrics: Metrics,
        notifier: NotifySink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.writer = writer
        self.metrics = metrics
        self.notifier = notifier
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._secrets: dict[str, SecretState] = {}
        self._outputs: dict[Path, OutputState] = {}
        self._unsent: list[WrittenFile] = []  # written, but the notifier refused them
        self.cycles = 0
        self.last_cycle_started: float | None = None  # monotonic
        self._ready_once = False  # every output was written or found current once
        self._log = logs.get_logger()
        self.reconfigure(config)

    def __repr__(self) -> str:
        return (
            f"Syncer(outputs={len(self._outputs)}, secrets={len(self._secrets)}, "
            f"cycles={self.cycles}, writes={self.writer.writes})"
        )

    # -- configuration ---------------------------------------------------------------------

    def reconfigure(self, config: Config) -> Removed:
        """Switch to a validated config, keeping fetched values. No I/O.

        New and changed outputs are rendered at the next cycle; removed outputs
        are left on disk and forgotten (state, metric series); secrets no longer
        used stop being polled and their values are dropped.
        """
        self.config = config
        removed_secrets = [sid for sid in self._secrets if sid not in set(config.secret_ids)]
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
        removed_paths = [p for p in self._outputs if p not in outputs]
        self._outputs = outputs
        logs.release_secrets_except(config.secret_ids)
        self.metrics.forget(paths=[str(p) for p in removed_paths], secrets=removed_secrets)
        self.metrics.declare(paths=[str(p) for p in outputs], secrets=config.secret_ids)
        return Removed(removed_paths, removed_secrets)

    # -- state for health, readiness, the watcher and the status view ----------------------

    @property
    def outputs(self) -> dict[Path, OutputState]:
        return dict(self._outputs)

    @property
    def secrets(self) -> dict[str, SecretState]:
        return dict(self._secrets)

    def current(self, state: OutputState) -> bool:
        """The output's last attempt succeeded and every secret it uses checked fine."""
        return state.ok and all(self._secrets[s].checked_ok for s in state.config.secret_ids)

    def all_current(self) -> bool:
        """True when every output is current (see :meth:`current`)."""
        return all(self.current(st) for st in self._outputs.values())

    def not_ready(self) -> list[str]:
        """Paths of the outputs that keep ``/readyz`` from answering 200 (empty: ready).

        ``metrics.readiness: synced`` (the default): the outputs not yet written
        nor found current since start, until every output has been once; from
        then on none, for the life of the process: an outage, staleness or an
        output added by a reload never take readiness back (the files on disk
        are the last good ones; :meth:`stale` reports the rest).
        ``metrics.readiness: fresh``: :meth:`stale`.
        """
        if self.config.metrics.readiness == "fresh":
            return self.stale()
        if self._ready_once:
            return []
        pending = [
            str(path)
            for path, st in self._outputs.items()
            if st.confirmed_at is None and st.initial
        ]
        self._ready_once = not pending
        return pending

    def stale(self) -> list[str]:
        """Paths of outputs never synced, or not confirmed current within ``stale_after``."""
        limit = self._wall() - self.config.stale_after_s
        return [
            str(path)
            for path, st in self._outputs.items()
            if st.confirmed_at is None or st.confirmed_at < limit
        ]

    def next_retry_at(self) -> float | None:
        """The earliest monotonic time a secret in backoff is due, or None."""
        return min((st.retry_at for st in self._secrets.values() if st.retry_at), default=None)

    # -- one cycle -------------------------------------------------------------------------

    async def cycle(
        self, *, regular: bool = True, only: Collection[str] | None = None
    ) -> CycleReport:
        """One pass: check due secrets, fetch new versions, render and write affected outputs.

        A regular cycle checks every secret not in transient backoff; a retry
        cycle (``regular=False``) only those whose backoff has expired; with
        ``only`` (a push hint), exactly those secrets, backoff or not. Never
        raises for source, render or write failures: they are logged, counted
        and kept for retry. Files written are handed to the notifier at the
        end, also when the cycle is cancelled after some writes completed.
        """
        started = self._clock()
        self.last_cycle_started = started
        report = CycleReport()
        try:
            if only is not None:
                due = [st for sid, st in self._secrets.items() if sid in only]
            else:
                due = [
                    st
                    for st in self._secrets.values()
                    if (st.retry_at and st.retry_at <= started) or (regular and not st.retry_at)
                ]
            report.secrets_checked = len(due)
            await self._pass(due, report)
        finally:
            report.files_written = self.submit_written()
        self.cycles += 1
        report.duration_s = self._clock() - started
        self.metrics.poll_duration.observe(report.duration_s)
        self.metrics.ready.set(0 if self.not_ready() else 1)
        self.metrics.fresh.set(0 if self.stale() else 1)
        # an unchanged poll is routine: a summary at info only when something changed or failed
        quiet = not (report.secrets_changed or report.files_written or report.errors)
        (self._log.debug if quiet else self._log.info)(
            "poll_cycle",
            secrets_checked=report.secrets_checked,
            secrets_changed=len(report.secrets_changed),
            files_written=len(report.files_written),
            errors=report.errors,
            duration_s=round(report.duration_s, 4),
            regular=regular,
        )
        return report

    async def _pass(self, due: list[SecretState], report: CycleReport) -> None:
        """Check ``due`` and sync what they feed, each output as soon as its secrets are in.

        An output's write starts while other secrets are still being checked
        (pipelined, so fsyncs overlap network waits at scale); the notifier
        still gets the files only when the whole pass is done (see
        :meth:`cycle`).
        """
        due_ids = {st.secret_id for st in due}
        changed: set[str] = set()
        waiting_on: dict[str, set[str]] = {}  # output path → due secrets not checked yet
        readers: dict[str, list[OutputState]] = {}  # secret → outputs waiting on it
        for state in self._outputs.values():
            ids = set(state.config.secret_ids) & due_ids
            waiting_on[str(state.path)] = ids
            for sid in ids:
                readers.setdefault(sid, []).append(state)
        results: list[asyncio.Task[bool]] = []

        async with asyncio.TaskGroup() as group:

            def settle(state: OutputState) -> None:
                ids = set(state.config.secret_ids)
                if state.dirty or ids & changed:
                    results.append(group.create_task(self._sync_output(state)))
                    return
                checked = ids & due_ids
                failed = [self._secrets[s] for s in checked if not self._secrets[s].checked_ok]
                if failed:
                    report.errors += 1
                    for st in failed:
                        self._count_error(state, st.error)
                elif checked and state.ok:
                    self._mark_current(state)

            async def check_then_settle(st: SecretState) -> None:
                if await self.check(st):
                    changed.add(st.secret_id)
                for state in readers.get(st.secret_id, ()):
                    left = waiting_on[str(state.path)]
                    left.discard(st.secret_id)
                    if not left:
                        settle(state)

            for state in self._outputs.values():
                if not waiting_on[str(state.path)]:
                    settle(state)  # nothing to wait for (a dirty output, a retry cycle)
            for st in due:
                group.create_task(check_then_settle(st))
        report.secrets_changed = sorted(changed)
        report.errors += sum(1 for task in results if not task.result())

    def submit_written(self) -> list[WrittenFile]:
        """Hand the files the writer wrote since the last call to the notifier, all at once."""
        written, self._unsent = self._unsent + self.writer.take_written(), []
        if written and self.notifier is not None:
            try:
                self.notifier.submit(written)
            except BaseException:
                self._unsent = written  # handed over by the next pass
                raise
        return written

    async def check(self, st: SecretState) -> bool:
        """Check one secret and fetch its current value if new. True when it changed.

        Never raises (but for cancellation): failures are recorded on ``st``
        with the next retry time.
        """
        try:
            held = st.version_id if st.value is not None else None
            read = await self.source.read(st.secret_id, held)
            version_id, value = read.version_id, read.value
            changed = value is not None
            if value is not None:
                logs.hold_secret(st.secret_id, leaf_strings(value))
                previous, st.value, st.version_id = st.version_id, value, version_id
                self.metrics.secret_changes.labels(secret=st.secret_id).inc()
                self.metrics.hold_version(st.secret_id, version_id, previous)
                self._log.info(
                    "secret_changed",
                    secret=st.secret_id,
                    version_id=version_id,
                    previous_version_id=previous,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, SourceError) else _unexpected(st.secret_id, exc)
            self._record_failure(st, error)
            return False
        st.error, st.checked_ok, st.failures, st.retry_at = None, True, 0, 0.0
        st.checked_at, st.region = self._wall(), read.region
        return changed

    def _record_failure(self, st: SecretState, exc: SourceError) -> None:
        st.error, st.checked_ok = exc, False
        if exc.transient:
            st.failures += 1
            # capped at the poll interval: however long the outage, the first check after
            # the backend returns comes within one poll (a longer wait saves no call: the
            # regular poll would make it anyway)
            delay = backoff.retry_delay_s(st.failures, self._rng, cap_s=self.config.poll.interval_s)
            st.retry_at = self._clock() + delay
        else:
            st.failures, st.retry_at = 0, 0.0
        self._log.warning(
            "secret_check_failed",
            secret=st.secret_id,
            code=exc.code,
            transient=exc.transient,
            error=str(exc),
            failures=st.failures,
            retry_in_s=round(st.retry_at - self._clock(), 2) if st.retry_at else None,
        )

    def prepare(self, state: OutputState) -> Prepared:
        """Render ``state``'s output from the values held (shared by sync and the dry run).

        Any failure of one output is that output's error: a secret not held, a
        render error, or any unexpected exception while rendering (named by
        type and the output's secrets, never by a value).
        """
        out = state.config
        values: dict[str, SecretValue] = {}
        for sid in out.secret_ids:
            st = self._secrets[sid]
            if st.value is None:
                reason = "throttled" if st.error is not None and st.error.throttled else "fetch"
                message = str(st.error) if st.error else f"secret {sid!r}: no value fetched yet"
                return Prepared(None, [], {}, message, reason)
            values[sid] = st.value
        versions = {sid: v.version_id for sid, v in values.items()}
        try:
            entries = collect_entries(out, values)  # rendered once, keys from the same pass
            keys = sorted(entries)
            data = render_entries(out, entries)
        except RenderError as exc:
            return Prepared(None, [], versions, str(exc), "render")
        except Exception as exc:  # a renderer bug must cost this output alone
            secrets = ", ".join(map(repr, out.secret_ids))
            message = f"cannot render from secret(s) {secrets}: unexpected {type(exc).__name__}"
            return Prepared(None, [], versions, message, "render")
        return Prepared(data, keys, versions)

    async def _sync_output(self, state: OutputState) -> bool:
        prepared = self.prepare(state)
        if prepared.data is None:
            if prepared.reason == "render":
                self._fail(state, "render", prepared.error or "render error")
            else:
                state.ok, state.dirty = False, True
                for sid in state.config.secret_ids:
                    if self._secrets[sid].value is None:
                        self._count_error(state, self._secrets[sid].error)
            return False
        try:
            await self.writer.write(state, prepared.data, prepared.versions)
        except WriteError as exc:
            self._fail(state, "write", str(exc), errno=exc.reason)
            return False
        state.dirty, state.initial, state.ok = False, False, True
        if all(self._secrets[sid].checked_ok for sid in state.config.secret_ids):
            self._mark_current(state)
        return True

    async def repair(self, path: Path) -> bool:
        """Drift repair of one managed output (see :meth:`OutputWriter.repair`)."""
        state = self._outputs.get(path)
        if state is None:
            return False
        try:
            return await self.writer.repair(state)
        except WriteError as exc:
            self._fail(state, "write", str(exc), errno=exc.reason)
            return False

    def _mark_current(self, state: OutputState) -> None:
        state.confirmed_at = self._wall()
        state.error = state.error_code = None
        self.metrics.last_success.labels(path=str(state.config.path)).set(state.confirmed_at)

    def _fail(self, state: OutputState, reason: str, message: str, **fields: str) -> None:
        state.ok, state.dirty, state.error = False, True, message
        state.error_code = "RenderError" if reason == "render" else "WriteError"
        self.metrics.sync_errors.labels(path=str(state.config.path), reason=reason).inc()
        self._log.error(
            "output_failed", path=str(state.config.path), reason=reason, error=message, **fields
        )

    def _count_error(self, state: OutputState, error: SourceError | None) -> None:
        reason = "throttled" if error is not None and error.throttled else "fetch"
        state.error = str(error) if error else "secret unavailable"
        state.error_code = error.code if error else "NotFetched"
        self.metrics.sync_errors.labels(path=str(state.config.path), reason=reason).inc()


def _unexpected(secret_id: str, exc: BaseException) -> SourceError:
    # a bug in a source, not an AWS answer: treat it as transient so it backs off
    return SourceError(secret_id, type(exc).__name__, "unexpected error", transient=True)
