"""Hostile things a pidfile or a `process` regex can meet, made for real.

- :func:`fifo` makes a named pipe and, on exit, opens its write end once so a
  reader blocked on it (the bug being tested) gets EOF and its thread can end.
- :func:`bad_pidfile` makes each kind of pidfile in BAD_PIDFILES for real:
  FIFOs, symbolic links to /dev/zero or /proc, pseudo-files, huge or odd ones.
- :class:`LongCmdline` is a child process with a long command line: ``python -c
  <pause> ARG...``. It dies with the test process (PR_SET_PDEATHSIG) and is
  killed when the context ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.wait import wait_until

# java .* at each of ~13,000 starts in 64 KiB: quadratic, about 2 s on a quiet machine
QUADRATIC = r"java .*com\.example\.KafkaApp"
# one more .*: cubic, far beyond any time budget even on a 64 KiB command line
CUBIC = r"java .*java .*com\.example\.KafkaApp"

_PAUSE = (
    "import ctypes, signal\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"  # PR_SET_PDEATHSIG
    "while True: signal.pause()\n"
)


def java_flood(count: int = 100_000) -> list[str]:
    """``count`` arguments "java": a command line of "java java java ..." (~500 KB)."""
    return ["java"] * count


@contextlib.contextmanager
def fifo(path: Path) -> Iterator[Path]:
    """A named pipe at ``path``; a reader still blocked on it is released at exit."""
    os.mkfifo(path)
    try:
        yield path
    finally:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader, nobody to release
                raise
        else:
            os.close(fd)  # the blocked reader sees EOF


class LongCmdline:
    """A paused child process whose command line is ``python -c <code> *args``."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cmdline_bytes(self) -> int:
        """Size of /proc/<pid>/cmdline as the kernel reports it."""
        return len(Path(f"/proc/{self.pid}/cmdline").read_bytes())

    def __enter__(self) -> LongCmdline:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PAUSE, *self.args], start_new_session=True
        )
        # Popen returns after the exec, so the command line is already in place;
        # wait until the interpreter runs too (its memory is the one being read)
        wait_until(lambda: self.cmdline_bytes() > 0, 10, "the long command line")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@dataclass(frozen=True)
class BadPidfile:
    """How to make one kind of bad pidfile, and what its refusal must say."""

    reason: str  # a fragment of the refusal's reason
    content: bytes | None = None  # a regular file with this content
    symlink_to: str | None = None  # a symbolic link to this path
    path: str | None = None  # use this existing path as the pidfile


def _above_pid_max() -> bytes:
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 4_194_304
    return f"{pid_max + 1}\n".encode()


BAD_PIDFILES: dict[str, BadPidfile] = {
    "fifo": BadPidfile("not a regular file (fifo)"),
    "directory": BadPidfile("not a regular file (directory)"),
    "symlink to /dev/zero": BadPidfile("symbolic link", symlink_to="/dev/zero"),
    "symlink to ns_last_pid": BadPidfile(
        "symbolic link", symlink_to="/proc/sys/kernel/ns_last_pid"
    ),
    "symlink to a good pidfile": BadPidfile("symbolic link", symlink_to="good.pid"),
    "procfs file": BadPidfile("size is 0 bytes", path="/proc/sys/kernel/ns_last_pid"),
    "sysfs file": BadPidfile("size is 4096 bytes", path="/sys/kernel/uevent_seqnum"),
    "empty": BadPidfile("size is 0 bytes", content=b""),
    "1 MB of digits": BadPidfile("size is 1048576 bytes", content=b"7" * 1_048_576),
    "zero": BadPidfile("must be positive", content=b"0\n"),
    "negative": BadPidfile("ASCII digits", content=b"-1\n"),
    "fullwidth digits": BadPidfile("ASCII digits", content="４２\n".encode()),
    "trailing junk": BadPidfile("ASCII digits", content=b"4242 java\n"),
    "above pid_max": BadPidfile("pid_max", content=_above_pid_max()),
}


@contextlib.contextmanager
def bad_pidfile(kind: str, workdir: Path) -> Iterator[Path]:
    """The pidfile of kind ``kind`` (a key of BAD_PIDFILES), made in ``workdir``."""
    spec = BAD_PIDFILES[kind]
    path = workdir / "bad.pid"
    if spec.path is not None:
        if not Path(spec.path).exists():
            pytest.skip(f"{spec.path} does not exist on this kernel")
        yield Path(spec.path)
    elif kind == "fifo":
        with fifo(path):
            yield path
    elif kind == "directory":
        path.mkdir()
        yield path
    elif spec.symlink_to is not None:
        (workdir / "good.pid").write_text("4242\n")
        path.symlink_to(spec.symlink_to)
        yield path
    else:
        assert spec.content is not None
        path.write_bytes(spec.content)
        yield path
