"""A real pseudo-terminal to run a command in, so a test can "close the window".

The command becomes the session leader with the terminal as its controlling
terminal, like a program started from a shell in a terminal emulator. Closing
the master side hangs the terminal up: the kernel sends SIGHUP to the session
leader, and from then on its writes to the terminal fail with EIO.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any

# Runs in the child after setsid() (start_new_session): take the terminal on
# stdin as the controlling terminal, then become the real command (same pid).
_ATTACH = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Terminal:
    """One pty; :meth:`spawn` a Python command in it, :meth:`read` its output, :meth:`close`."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        os.set_blocking(self._master, False)
        self._output = bytearray()
        self.closed = False

    def spawn(self, python_args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``python <python_args>`` in the terminal, in a new session."""
        proc = subprocess.Popen(
            [sys.executable, "-c", _ATTACH, *python_args],
            stdin=self._slave,
            stdout=self._slave,
            stderr=self._slave,
            start_new_session=True,
            **kwargs,
        )
        os.close(self._slave)  # only the command holds the terminal side now
        self._slave = -1
        return proc

    def read(self) -> str:
        """Everything the command has written so far (drains the pty so it never blocks)."""
        if not self.closed:
            with contextlib.suppress(BlockingIOError, OSError):  # OSError: EIO once all exited
                while chunk := os.read(self._master, 65536):
                    self._output += chunk
        return self._output.decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        """Hang up: close the master side, as a terminal emulator does when its window closes."""
        if not self.closed:
            self.read()
            os.close(self._master)
            self.closed = True
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1
