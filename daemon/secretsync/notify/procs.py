"""Find the processes a signal target names: pidfiles and /proc command lines.

Pidfiles are read as small regular files only (:func:`read_pidfile`): no FIFO
that blocks forever, no symbolic link to /dev/zero or to a /proc counter, no
pseudo-file.

A ``process`` regex is matched in a short-lived child process
(:func:`scan_processes`): Python's ``re`` holds the GIL for as long as one
search takes, and a hostile command line (hundreds of KB of ``java java ...``
against ``java .*Foo``) can take minutes. The child reads at most
CMDLINE_LIMIT_BYTES of each command line (a longer one is truncated: a match
beyond it is not seen), examines at most SCAN_MAX_ENTRIES processes and is
killed after SCAN_TIMEOUT_S. The daemon's event loop only waits on a pipe.

This module is also the child's program (``python -I -S procs.py``), so it
imports nothing but the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import re
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC_ROOT = Path("/proc")
PID_MAX_PATH = Path("/proc/sys/kernel/pid_max")
PID_MAX_FALLBACK = 4_194_304  # the kernel's largest possible pid_max (64-bit)
PIDFILE_MAX_BYTES = 32  # a pid is at most 7 digits; a pidfile is never larger than this
CMDLINE_LIMIT_BYTES = 64 * 1024  # of each /proc/<pid>/cmdline; the rest is not matched
SCAN_TIMEOUT_S = 5.0  # wall-clock budget of one scan, child start-up included
SCAN_MAX_ENTRIES = 32_768  # /proc/<pid> entries examined per scan

_SCANNER = str(Path(__file__).resolve())
_REQUEST_LIMIT_BYTES = 1024 * 1024


class PidfileError(ValueError):
    """A pidfile that is not a small regular file holding one plausible pid.

    ``reason`` says what is wrong with the file, never what it holds.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Scan:
    """What a process scan found.

    ``error`` is set when the scan itself failed (time budget exceeded, /proc
    unreadable); ``gone`` when a single-pid match found no such process (or an
    empty command line); ``capped`` when SCAN_MAX_ENTRIES was reached and later
    processes were not examined.
    """

    pids: tuple[int, ...] = ()
    error: str | None = None
    gone: bool = False
    capped: bool = False


# -- pidfiles --------------------------------------------------------------------------


@functools.cache
def pid_max() -> int:
    """The kernel's pid_max, read once; PID_MAX_FALLBACK if it cannot be read."""
    try:
        with PID_MAX_PATH.open("rb") as fh:
            value = int(fh.read(PIDFILE_MAX_BYTES).strip())
    except (OSError, ValueError):
        return PID_MAX_FALLBACK
    return value if value > 0 else PID_MAX_FALLBACK


def read_pidfile(path: Path) -> int:
    """The pid in the pidfile ``path``: a regular file of 1-32 bytes, ASCII digits.

    Surrounding whitespace is allowed. A symbolic link as the last component is
    refused (a directory symlink above it is fine), so are FIFOs, devices,
    directories and /proc or /sys pseudo-files (their size is 0 or 4096), pid 0
    and a pid above the kernel's pid_max. Never blocks on the file's type.

    Raises FileNotFoundError, PidfileError, or another OSError (e.g. permission).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PidfileError(
                "it is a symbolic link (not followed: point `pidfile` at the file itself)"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PidfileError(f"not a regular file ({_file_kind(info.st_mode)})")
        if not 1 <= info.st_size <= PIDFILE_MAX_BYTES:
            raise PidfileError(
                f"its size is {info.st_size} bytes, expected 1 to {PIDFILE_MAX_BYTES} "
                "(a /proc or /sys pseudo-file, or not a pidfile)"
            )
        data = b""
        while len(data) < PIDFILE_MAX_BYTES:
            chunk = os.read(fd, PIDFILE_MAX_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return _parse_pid(data)


def _parse_pid(data: bytes) -> int:
    text = data.strip()  # ASCII whitespace only
    if not text or not text.isdigit():  # bytes.isdigit() is ASCII-only: no "４２"
        raise PidfileError("it does not hold a pid (ASCII digits expected)")
    pid = int(text)
    if pid == 0:
        raise PidfileError("the pid must be positive (0 would signal a whole process group)")
    if pid > pid_max():
        raise PidfileError(f"the pid is above the kernel's pid_max ({pid_max()})")
    return pid


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "unknown type"


# -- command lines -----------------------------------------------------------------------


def read_cmdline(
    pid: int, *, limit_bytes: int = CMDLINE_LIMIT_BYTES, proc_root: Path = PROC_ROOT
) -> str | None:
    """The first ``limit_bytes`` of ``/proc/<pid>/cmdline``, arguments joined by spaces.

    None if the process is gone or its command line is empty (kernel threads,
    zombies). A longer command line is cut, possibly inside an argument or a
    UTF-8 sequence (decoded with replacement characters).
    """
    try:
        with (proc_root / str(pid) / "cmdline").open("rb") as fh:
            raw = fh.read(limit_bytes)
    except OSError:
        return None
    args = raw.rstrip(b"\0").split(b"\0")
    text = " ".join(arg.decode("utf-8", "replace") for arg in args)
    return text or None


def find_processes(
    pattern: str,
    *,
    exclude: frozenset[int] = frozenset(),
    max_entries: int = SCAN_MAX_ENTRIES,
    cmdline_limit_bytes: int = CMDLINE_LIMIT_BYTES,
    proc_root: Path = PROC_ROOT,
) -> Scan:
    """Pids whose command line matches ``pattern`` (``re.search``), ascending.

    Runs the regex in this process, for as long as it takes: the daemon calls
    :func:`scan_processes` instead, which runs this in a child with a budget.
    Pids in ``exclude`` are skipped. Raises OSError if ``proc_root`` cannot be listed.
    """
    regex = re.compile(pattern)
    pids = []
    examined = 0
    capped = False
    with os.scandir(proc_root) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            if examined >= max_entries:
                capped = True
                break
            examined += 1
            pid = int(entry.name)
            if pid in exclude:
                continue
            cmdline = read_cmdline(pid, limit_bytes=cmdline_limit_bytes, proc_root=proc_root)
            if cmdline is not None and regex.search(cmdline):
                pids.append(pid)
    return Scan(pids=tuple(sorted(pids)), capped=capped)


# -- the bounded matcher -----------------------------------------------------------------


async def scan_processes(
    pattern: str,
    *,
    own_pid: int,
    pid: int | None = None,
    timeout_s: float = SCAN_TIMEOUT_S,
    max_entries: int = SCAN_MAX_ENTRIES,
    cmdline_limit_bytes: int = CMDLINE_LIMIT_BYTES,
    proc_root: Path = PROC_ROOT,
) -> Scan:
    """Match ``pattern`` against command lines in a child process, within ``timeout_s``.

    Without ``pid``: every process but ``own_pid`` (and the child itself). With
    ``pid``: only that one (``pids`` is ``(pid,)`` or empty; ``gone`` if it has
    no command line). Never raises for a failed scan: ``error`` says why, e.g.
    "process scan exceeded its time budget (5s)" after the child was killed.
    Cancelling kills the child too.
    """
    request = {
        "pattern": pattern,
        "exclude": [own_pid],
        "pid": pid,
        "timeout_s": timeout_s,
        "max_entries": max_entries,
        "cmdline_limit_bytes": cmdline_limit_bytes,
        "proc_root": str(proc_root),
    }
    try:
        # -I -S: no site-packages, no environment, no cwd on sys.path: the standard library only
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            _SCANNER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # other processes' command lines may hold secrets: nothing from the
            # child is logged but its JSON answer, which carries pids only
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        return Scan(error=f"cannot start the process scan: {exc.strerror or type(exc).__name__}")
    try:
        out, _ = await asyncio.wait_for(child.communicate(json.dumps(request).encode()), timeout_s)
    except TimeoutError:
        return Scan(error=f"process scan exceeded its time budget ({timeout_s:g}s)")
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await asyncio.shield(child.wait())
    return _parse_answer(out, child.returncode)


def _parse_answer(out: bytes, returncode: int | None) -> Scan:
    if returncode != 0:
        return Scan(error=f"process scan failed (exit code {returncode})")
    try:
        answer = json.loads(out)
        if answer.get("error"):
            return Scan(error=str(answer["error"]))
        return Scan(
            pids=tuple(int(p) for p in answer["pids"]),
            gone=bool(answer.get("gone")),
            capped=bool(answer.get("capped")),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return Scan(error="process scan failed (unreadable answer)")


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    root = Path(request["proc_root"])
    limit = int(request["cmdline_limit_bytes"])
    pid = request["pid"]
    if pid is not None:
        cmdline = read_cmdline(int(pid), limit_bytes=limit, proc_root=root)
        if cmdline is None:
            return {"pids": [], "gone": True}
        return {"pids": [pid] if re.search(request["pattern"], cmdline) else []}
    exclude = frozenset([*map(int, request["exclude"]), os.getpid()])
    try:
        scan = find_processes(
            request["pattern"],
            exclude=exclude,
            max_entries=int(request["max_entries"]),
            cmdline_limit_bytes=limit,
            proc_root=root,
        )
    except OSError as exc:
        return {"error": f"cannot scan {root}: {exc.strerror or type(exc).__name__}"}
    return {"pids": list(scan.pids), "capped": scan.capped}


def _child_main() -> int:
    """The scan child: a JSON request on stdin, a JSON answer (pids only) on stdout."""
    try:
        request = json.loads(sys.stdin.buffer.read(_REQUEST_LIMIT_BYTES))
        # a backstop should the parent die before it can kill us: SIGALRM's
        # default action ends the process even in the middle of a regex search
        signal.alarm(int(request["timeout_s"]) + 2)
        answer = _answer(request)
    except Exception as exc:  # never a traceback: it could quote a command line
        answer = {"error": f"process scan failed ({type(exc).__name__})"}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
