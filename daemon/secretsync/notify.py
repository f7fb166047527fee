"""Tell dependent processes that their files changed: signal, command or HTTP call.

The agent hands over the files of each pass (:meth:`Notifier.submit`) only after
all of them are written. Changes are coalesced: a batch is delivered once no
new change arrived for ``settle`` seconds, and never later than ``settle_max``
after its first change, so a flapping secret cannot starve notifications. A
target named by several files of a batch is told once.

Each target of a batch is delivered in its own task: a failing, hanging or
missing target never blocks another target, the next batch, or the next poll.
Deliveries to one target are serialised. Every delivery ends with one fixed
outcome word, logged with the target name and counted in
``secretsync_notify_total{target, outcome}``:

- ``ok``: signal sent, command exited 0, HTTP answered 2xx;
- ``not_running``: no pidfile, no such process, no process matches, stale
  pidfile (its pid does not match ``process``), HTTP connection refused at
  start-up;
- ``refused``: the pid is 1 or secretsync's own pid (never signalled);
- ``timeout``: the command or HTTP call did not finish in time;
- ``error``: anything else (bad pidfile, permission denied, exit code ≠ 0,
  missing executable, HTTP status not 2xx, connection refused).

At start-up (every file of the batch is a first write) a target that is not
running yet is an info line and counted as ``skipped``, not a failure: the app
usually starts after the sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from secretsync import logs
from secretsync.agent import WrittenFile
from secretsync.config import Config, NotifyTarget
from secretsync.metrics import Metrics

Outcome = Literal["ok", "error", "timeout", "not_running", "refused", "skipped"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "not_running", "refused", "skipped")

PROC_ROOT = Path("/proc")
OUTPUT_LIMIT_BYTES = 2048  # command output kept for the log
HTTP_BODY_LIMIT_BYTES = 256  # response body kept for the log on failure
KILL_GRACE_S = 1.0  # SIGTERM → SIGKILL for a command's process group on timeout
PERMISSION_HINT = "permission denied (run as the same user as the app, or grant CAP_KILL)"


@dataclass
class Result:
    """The outcome of one attempt to tell one target."""

    outcome: Outcome
    reason: str | None = None
    retryable: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    paths: dict[str, None] = field(default_factory=dict)  # ordered set of changed files
    initial: bool = True  # every file of the batch for this target is a first write


class Notifier:
    """The daemon's :class:`~secretsync.agent.NotifySink`.

    ``config`` supplies the targets and ``settle``/``settle_max``; it can be
    replaced with :meth:`reconfigure`. The constructor does no I/O; :meth:`serve`
    runs the debounce timer, :meth:`flush` delivers what is pending at once.
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._first_at = 0.0  # monotonic time of the batch's first change
        self._last_at = 0.0  # …and of its latest change
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._own_pid = os.getpid()
        self._log = logs.get_logger()
        self.batches = 0  # batches dispatched so far

    def __repr__(self) -> str:
        return (
            f"Notifier(targets={sorted(self._config.notify)}, pending={sorted(self._pending)}, "
            f"in_flight={len(self._inflight)})"
        )

    # -- configuration -----------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Use the targets and settle times of ``config`` from now on.

        Pending changes are kept and delivered with the new definitions; a pending
        target that no longer exists is logged and dropped at delivery.
        """
        self._config = config
        self._declare_metrics()
        self._wake.set()  # settle times may have changed

    def _declare_metrics(self) -> None:
        # every series exists from the start, so alerts on rate() see zeros
        for name in self._config.notify:
            for outcome in OUTCOMES:
                self.metrics.notify.labels(target=name, outcome=outcome)

    # -- NotifySink --------------------------------------------------------------------

    def submit(self, written: Sequence[WrittenFile]) -> None:
        """Add the files of one pass to the pending batch. Never blocks, never raises."""
        now = self._clock()
        for item in written:
            for name in item.targets:
                if not self._pending:
                    self._first_at = now
                pending = self._pending.setdefault(name, _Pending())
                pending.paths[str(item.path)] = None
                pending.initial = pending.initial and item.initial
        if self._pending:
            self._last_at = now
            self._wake.set()

    async def serve(self) -> None:
        """Deliver each batch when it has settled; runs until cancelled.

        On cancellation, deliveries still running are cancelled too (a command's
        process group is killed).
        """
        self._declare_metrics()
        try:
            while True:
                due = self._due_at()
                if due is None:
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                delay_s = due - self._clock()
                if delay_s <= 0:
                    self._dispatch(self._take())
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay_s)
        finally:
            for task in list(self._inflight):
                task.cancel()
            for task in list(self._inflight):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def flush(self) -> None:
        """Deliver the pending batch now and wait for every delivery in flight.

        Each delivery is bounded by its target's timeout; cancelling ``flush``
        cancels them.
        """
        batch = self._take()
        if batch:
            self._dispatch(batch)
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # -- batching ----------------------------------------------------------------------

    def _due_at(self) -> float | None:
        if not self._pending:
            return None
        return min(
            self._last_at + self._config.settle_s, self._first_at + self._config.settle_max_s
        )

    def _take(self) -> dict[str, _Pending]:
        batch, self._pending = self._pending, {}
        return batch

    def _dispatch(self, batch: dict[str, _Pending]) -> None:
        self.batches += 1
        self._log.info(
            "notify_batch",
            targets=sorted(batch),
            files=sorted({p for pending in batch.values() for p in pending.paths}),
        )
        for name, pending in batch.items():
            task = asyncio.create_task(
                self._deliver(name, list(pending.paths), initial=pending.initial),
                name=f"notify:{name}",
            )
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # -- delivery ----------------------------------------------------------------------

    async def _deliver(self, name: str, paths: list[str], *, initial: bool) -> None:
        target = self._config.notify.get(name)
        if target is None:
            self._log.warning("notify_target_unknown", target=name, files=paths)
            return
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            started = self._clock()
            try:
                result = await self._attempt(name, target, paths, initial=initial)
                attempts = 1
                while result.retryable and attempts <= target.retries:
                    self._log.warning(
                        "notify_retry",
                        target=name,
                        kind=target.kind,
                        outcome=result.outcome,
                        reason=result.reason,
                        retry_in_s=target.retry_backoff_s,
                    )
                    await asyncio.sleep(target.retry_backoff_s)
                    result = await self._attempt(name, target, paths, initial=initial)
                    attempts += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not take the daemon down
                result, attempts = Result("error", f"internal error: {exc!r}"), 1
            elapsed_s = self._clock() - started
            self._record(
                name,
                target,
                paths,
                result,
                initial=initial,
                attempts=attempts,
                duration_s=elapsed_s,
            )

    async def _attempt(
        self, name: str, target: NotifyTarget, paths: list[str], *, initial: bool
    ) -> Result:
        if target.kind == "command":
            return await run_command(name, target, paths)
        if target.kind == "http":
            return await call_http(name, target, paths, initial=initial)
        # /proc scans and os.kill are quick but blocking: keep them off the loop
        return await asyncio.to_thread(send_signal, target, own_pid=self._own_pid)

    def _record(
        self,
        name: str,
        target: NotifyTarget,
        paths: list[str],
        result: Result,
        *,
        initial: bool,
        attempts: int,
        duration_s: float,
    ) -> None:
        startup_skip = result.outcome == "not_running" and initial
        # an app that starts after the sidecar is normal: not a failure for alerts
        counted = "skipped" if startup_skip else result.outcome
        self.metrics.notify.labels(target=name, outcome=counted).inc()
        fields: dict[str, Any] = {
            "target": name,
            "kind": target.kind,
            "outcome": result.outcome,
            "files": paths,
            "duration_s": round(duration_s, 3),
            **result.details,
        }
        if attempts > 1:
            fields["attempts"] = attempts
        if result.outcome == "ok":
            self._log.info("notify_sent", **fields)
        elif startup_skip:
            self._log.info("notify_skipped", reason=result.reason, startup=True, **fields)
        elif result.outcome == "not_running":
            self._log.warning("notify_failed", reason=result.reason, **fields)
        else:
            self._log.error("notify_failed", reason=result.reason, **fields)


# -- signals ---------------------------------------------------------------------------


def read_cmdline(pid: int) -> str | None:
    """``/proc/<pid>/cmdline`` with arguments joined by spaces; None if gone or empty.

    Kernel threads and zombies have an empty command line and give None.
    """
    try:
        raw = (PROC_ROOT / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    args = raw.rstrip(b"\0").split(b"\0")
    text = " ".join(arg.decode("utf-8", "replace") for arg in args)
    return text or None


def find_processes(pattern: str, *, own_pid: int) -> list[int]:
    """Pids whose command line matches ``pattern`` (``re.search``), ours excluded, ascending."""
    regex = re.compile(pattern)
    pids = []
    for entry in PROC_ROOT.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == own_pid:
            continue  # our own command line may well match (e.g. a config path)
        cmdline = read_cmdline(pid)
        if cmdline is not None and regex.search(cmdline):
            pids.append(pid)
    return sorted(pids)


def read_pidfile(path: Path) -> int:
    """The pid in ``path``. Raises FileNotFoundError, or ValueError for anything but a pid > 0."""
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not text.isdigit() or int(text) <= 0:
        # 0 or a negative number would signal a whole process group, or everything
        raise ValueError("the pidfile does not hold a positive pid")
    return int(text)


def send_signal(target: NotifyTarget, *, own_pid: int) -> Result:
    """Signal the target's process(es). Blocking (reads /proc); never raises for OS errors.

    pidfile only: its pid. process only: every pid whose command line matches.
    Both: the pidfile's pid, only if its command line matches (a recycled pid is
    left alone). PID 1 and ``own_pid`` are refused, never signalled.
    """
    signum = signal.Signals[target.signal_name]
    details: dict[str, Any] = {"signal": signum.name}
    if target.pidfile is not None:
        details["pidfile"] = str(target.pidfile)
        try:
            pid = read_pidfile(target.pidfile)
        except FileNotFoundError:
            return Result("not_running", "pidfile does not exist", details=details)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return Result("error", f"cannot read pidfile: {reason}", details=details)
        details["pid"] = pid
        if pid in {1, own_pid}:
            return Result("refused", _refusal(pid, own_pid), details=details)
        if target.process is not None:
            cmdline = read_cmdline(pid)
            if cmdline is None:
                return Result("not_running", f"no process with pid {pid}", details=details)
            if not re.search(target.process, cmdline):
                return Result(
                    "not_running",
                    f"pid {pid} from the pidfile does not match `process` (stale pidfile?)",
                    details=details,
                )
        return _kill([pid], signum, details)

    assert target.process is not None  # guaranteed by NotifyTarget validation
    try:
        pids = find_processes(target.process, own_pid=own_pid)
    except OSError as exc:
        return Result("error", f"cannot scan {PROC_ROOT}: {exc.strerror}", details=details)
    if 1 in pids:
        pids.remove(1)
        if not pids:
            details["pid"] = 1
            return Result("refused", _refusal(1, own_pid), details=details)
        details["refused_pids"] = [1]
    if not pids:
        return Result("not_running", "no process matches `process`", details=details)
    return _kill(pids, signum, details)


def _refusal(pid: int, own_pid: int) -> str:
    who = "PID 1 (init)" if pid == 1 else "secretsync's own pid"
    return f"refusing to signal {who}"


def _kill(pids: list[int], signum: signal.Signals, details: dict[str, Any]) -> Result:
    sent, gone, denied = [], [], []
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            gone.append(pid)
        except PermissionError:
            denied.append(pid)
        else:
            sent.append(pid)
    details["pids"] = sent
    if denied:
        details["denied_pids"] = denied
        return Result("error", PERMISSION_HINT, details=details)
    if not sent:
        return Result("not_running", f"no such process: {gone}", details=details)
    return Result("ok", details=details)


# -- commands --------------------------------------------------------------------------


async def run_command(name: str, target: NotifyTarget, paths: list[str]) -> Result:
    """Run the target's argv (no shell) in its own session and process group.

    The environment gets ``SECRETSYNC_CHANGED_FILES`` (colon-separated paths) and
    ``SECRETSYNC_TARGET``. Output (stdout and stderr) is captured and truncated.
    On timeout or cancellation the whole process group gets SIGTERM, then SIGKILL.
    Output goes to an unlinked temp file rather than a pipe, so a background
    child that keeps the descriptor open cannot hold us up once the command exits.
    """
    assert target.command is not None
    env = {
        **os.environ,
        "SECRETSYNC_CHANGED_FILES": ":".join(paths),
        "SECRETSYNC_TARGET": name,
    }
    details: dict[str, Any] = {"command": target.command[0]}
    with tempfile.TemporaryFile(prefix="secretsync-notify-") as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *target.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return Result("error", "executable not found", details=details)
        except PermissionError:
            return Result("error", "executable not permitted", details=details)
        except OSError as exc:
            return Result("error", f"cannot start: {exc.strerror}", details=details)
        details["pid"] = proc.pid
        try:
            returncode = await asyncio.wait_for(proc.wait(), target.timeout_s)
        except TimeoutError:
            await _kill_group(proc)
            details.update(_output(out))
            return Result(
                "timeout",
                f"no exit within {target.timeout_s:g}s; process group killed",
                retryable=True,
                details=details,
            )
        except asyncio.CancelledError:
            await asyncio.shield(_kill_group(proc))
            raise
        details["exit_code"] = returncode
        details.update(_output(out))
    if returncode != 0:
        return Result("error", f"exit code {returncode}", retryable=True, details=details)
    return Result("ok", details=details)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # the command runs in its own session, so its pgid is its pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
    # children that ignore SIGTERM, or outlived the leader, go now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


def _output(out: Any) -> dict[str, Any]:
    out.seek(0)
    data = out.read(OUTPUT_LIMIT_BYTES + 1)
    if not data:
        return {}
    text = data[:OUTPUT_LIMIT_BYTES].decode("utf-8", "replace").rstrip()
    fields: dict[str, Any] = {"output": text}
    if len(data) > OUTPUT_LIMIT_BYTES:
        fields["output_truncated"] = True
    return fields


# -- HTTP ------------------------------------------------------------------------------


async def call_http(name: str, target: NotifyTarget, paths: list[str], *, initial: bool) -> Result:
    """One HTTP request; success is a 2xx answer.

    Methods other than GET carry ``{"target": name, "changed_files": [...]}`` as
    JSON. A refused connection at start-up counts as ``not_running``. Header
    values and the URL are never logged (they may hold a token).
    """
    http = target.http
    assert http is not None
    details: dict[str, Any] = {"method": http.method}
    body = None if http.method == "GET" else {"target": name, "changed_files": paths}
    timeout = aiohttp.ClientTimeout(total=http.timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(http.method, http.url, headers=http.headers, json=body) as resp,
        ):
            details["status"] = resp.status
            if 200 <= resp.status < 300:
                return Result("ok", details=details)
            snippet = await resp.content.read(HTTP_BODY_LIMIT_BYTES)
            if snippet:
                details["body"] = snippet.decode("utf-8", "replace")
            return Result("error", f"HTTP status {resp.status}", retryable=True, details=details)
    except TimeoutError:
        reason = f"no answer within {http.timeout_s:g}s"
        return Result("timeout", reason, retryable=True, details=details)
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = "connection refused" if refused else f"cannot connect: {exc.strerror}"
        if refused and initial:
            return Result("not_running", reason, details=details)
        return Result("error", reason, retryable=True, details=details)
    except aiohttp.ClientError as exc:
        reason = f"HTTP error: {type(exc).__name__}"
        return Result("error", reason, retryable=True, details=details)
