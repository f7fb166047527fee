"""How one notify target is told: a signal, a command or an HTTP call.

Every attempt ends in a :class:`Result` with one fixed outcome word:

- ``ok``: signal sent, command exited 0, HTTP answered 2xx;
- ``not_running``: no pidfile, no such process, no process matches, stale
  pidfile (its pid does not match ``process``), HTTP connection refused at
  start-up;
- ``refused``: the pid is 1 or secretsync's own pid (never signalled);
- ``timeout``: the command or HTTP call did not finish in time;
- ``error``: anything else (bad pidfile, a ``process`` match over its time
  budget, permission denied, exit code ≠ 0, missing executable, HTTP status
  not 2xx (a redirect included: never followed), connection refused).

``skipped`` is never returned here: the notifier counts a ``not_running`` at
start-up as ``skipped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from secretsync.config.model import NotifyTarget
from secretsync.notify.procs import SCAN_TIMEOUT_S, PidfileError, read_pidfile, scan_processes

Outcome = Literal["ok", "error", "timeout", "not_running", "refused", "skipped"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "not_running", "refused", "skipped")

OUTPUT_LIMIT_BYTES = 2048  # command output kept for the log
HTTP_BODY_LIMIT_BYTES = 256  # response body kept for the log on failure
KILL_GRACE_S = 1.0  # SIGTERM → SIGKILL for a command's process group on timeout…
CANCEL_GRACE_S = 0.2  # …and when the delivery is cancelled (a shutdown with a deadline)
_READ_CHUNK_BYTES = 65536
_DRAIN_LIMIT_BYTES = 1024 * 1024  # read after the command exited, at most
PERMISSION_HINT = "permission denied (run as the same user as the app, or grant CAP_KILL)"


@dataclass
class Result:
    """The outcome of one attempt to tell one target."""

    outcome: Outcome
    reason: str | None = None
    retryable: bool = False
    details: dict[str, Any] = field(default_factory=dict)


# -- signals ---------------------------------------------------------------------------


async def send_signal(
    target: NotifyTarget, *, own_pid: int, scan_timeout_s: float = SCAN_TIMEOUT_S
) -> Result:
    """Signal the target's process(es); never raises for OS errors.

    pidfile only: its pid. process only: every pid whose command line matches.
    Both: the pidfile's pid, only if its command line matches (a recycled pid is
    left alone). PID 1 and ``own_pid`` are refused, never signalled. A bad
    pidfile (see :func:`~secretsync.notify.procs.read_pidfile`) is an ``error``; so is
    a ``process`` match that exceeds its time budget, ``scan_timeout_s``
    (:func:`~secretsync.notify.procs.scan_processes`).
    """
    signum = signal.Signals[target.signal_name]
    details: dict[str, Any] = {"signal": signum.name}
    if target.pidfile is not None:
        details["pidfile"] = str(target.pidfile)
        try:
            # instant for a local file; a hung network mount would hold a thread, not the loop
            pid = await asyncio.to_thread(read_pidfile, target.pidfile)
        except FileNotFoundError:
            return Result("not_running", "pidfile does not exist", details=details)
        except PidfileError as exc:
            return Result("error", f"bad pidfile: {exc.reason}", details=details)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return Result("error", f"cannot read pidfile: {reason}", details=details)
        details["pid"] = pid
        if pid in {1, own_pid}:
            return Result("refused", _refusal(pid, own_pid), details=details)
        if target.process is not None:
            match = await scan_processes(
                target.process, own_pid=own_pid, pid=pid, timeout_s=scan_timeout_s
            )
            if match.error is not None:
                return Result("error", match.error, details=details)
            if match.gone:
                return Result("not_running", f"no process with pid {pid}", details=details)
            if not match.pids:
                return Result(
                    "not_running",
                    f"pid {pid} from the pidfile does not match `process` (stale pidfile?)",
                    details=details,
                )
        return _kill([pid], signum, details)

    assert target.process is not None  # guaranteed by NotifyTarget validation
    scan = await scan_processes(target.process, own_pid=own_pid, timeout_s=scan_timeout_s)
    if scan.error is not None:
        return Result("error", scan.error, details=details)
    if scan.capped:
        details["scan_capped"] = True  # too many processes: later ones were not examined
    pids = list(scan.pids)
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

    The environment gets ``SECRETSYNC_CHANGED_FILES`` (sorted, colon-separated paths) and
    ``SECRETSYNC_TARGET``. Output (stdout and stderr, one pipe: no temp file, so
    a read-only root filesystem is fine) is read while the command runs; the
    first OUTPUT_LIMIT_BYTES are kept for the log, the rest is discarded, so a
    chatty command never blocks on a full pipe. Once the command itself has
    exited, what is already in the pipe is read and the pipe is closed: a
    background child that still holds it open cannot hold us up (but gets
    EPIPE/SIGPIPE if it writes to it later). On timeout or cancellation the
    whole process group gets SIGTERM, then SIGKILL.
    """
    assert target.command is not None
    env = {
        **os.environ,
        "SECRETSYNC_CHANGED_FILES": ":".join(paths),
        "SECRETSYNC_TARGET": name,
    }
    details: dict[str, Any] = {"command": target.command[0]}
    read_fd, write_fd = os.pipe()  # both close-on-exec; the child gets write_fd as 1 and 2
    capture = _OutputCapture(read_fd)
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *target.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
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
        finally:
            os.close(write_fd)  # else the pipe never reaches EOF
        details["pid"] = proc.pid
        capture.start()
        try:
            returncode = await asyncio.wait_for(proc.wait(), target.timeout_s)
        except TimeoutError:
            await _kill_group(proc)
            details.update(capture.finish())
            return Result(
                "timeout",
                f"no exit within {target.timeout_s:g}s; process group killed",
                retryable=True,
                details=details,
            )
        except asyncio.CancelledError:
            # a shutdown with a deadline: no long grace for the group
            await asyncio.shield(_kill_group(proc, CANCEL_GRACE_S))
            raise
        details["exit_code"] = returncode
        details.update(capture.finish())
    finally:
        capture.close()
    if returncode != 0:
        return Result("error", f"exit code {returncode}", retryable=True, details=details)
    return Result("ok", details=details)


async def _kill_group(proc: asyncio.subprocess.Process, grace_s: float = KILL_GRACE_S) -> None:
    # the command runs in its own session, so its pgid is its pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace_s)
    # children that ignore SIGTERM, or outlived the leader, go now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


class _OutputCapture:
    """The read end of a command's output pipe, read by the event loop as data comes.

    Keeps the first ``limit_bytes`` (plus one, to know it was truncated) and
    counts and discards the rest.
    """

    def __init__(self, fd: int, limit_bytes: int = OUTPUT_LIMIT_BYTES) -> None:
        self._fd = fd
        self._limit_bytes = limit_bytes
        self._kept = bytearray()
        self._total_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        os.set_blocking(fd, False)

    def start(self) -> None:
        """Read whenever the pipe is readable, until EOF."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    def finish(self) -> dict[str, Any]:
        """Read what is in the pipe now (bounded), close it, return the log fields.

        Called once the command has exited: everything it wrote is in the pipe
        already; whatever a surviving background child writes later is not waited for.
        """
        self._stop_reading()
        drained = 0
        while drained < _DRAIN_LIMIT_BYTES:
            got = self._read_chunk()
            if got <= 0:
                break
            drained += got
        self.close()
        if not self._kept:
            return {}
        text = self._kept[: self._limit_bytes].decode("utf-8", "replace").rstrip()
        fields: dict[str, Any] = {"output": text}
        if self._total_bytes > self._limit_bytes:
            fields["output_truncated"] = True
        return fields

    def close(self) -> None:
        if not self._closed:
            self._stop_reading()
            self._closed = True
            os.close(self._fd)

    def _on_readable(self) -> None:
        # one read per wake-up: a command that writes without pause cannot starve the loop
        if self._read_chunk() == 0:
            self._stop_reading()  # EOF or a read error: nothing more will come

    def _stop_reading(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def _read_chunk(self) -> int:
        """Bytes read; -1 if none are there yet, 0 at EOF or on error."""
        try:
            chunk = os.read(self._fd, _READ_CHUNK_BYTES)
        except BlockingIOError:
            return -1
        except OSError:
            return 0
        room = self._limit_bytes + 1 - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]
        self._total_bytes += len(chunk)
        return len(chunk)


# -- HTTP ------------------------------------------------------------------------------


async def call_http(name: str, target: NotifyTarget, paths: list[str], *, initial: bool) -> Result:
    """One HTTP request; success is a 2xx answer.

    Redirects are not followed: a 3xx is an error (following one would send the
    headers, a token among them, and the body wherever the answer points).
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
            session.request(
                http.method, http.url, headers=http.headers, json=body, allow_redirects=False
            ) as resp,
        ):
            details["status"] = resp.status
            if 200 <= resp.status < 300:
                return Result("ok", details=details)
            if 300 <= resp.status < 400:  # Location is not logged: it may carry a token
                reason = f"HTTP status {resp.status} (redirects are not followed)"
                return Result("error", reason, retryable=True, details=details)
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
