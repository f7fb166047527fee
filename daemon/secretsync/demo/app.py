"""The demo's child processes: the stand-in app (a Python script in place of a Java
app), and how the demo starts and stops them.

The app writes a pidfile and reloads its files on SIGHUP. It prints one line
per file it (re)loaded: the keys and a short hash of the content, never a
value. Run as ``python -m secretsync.demo.app --pidfile P FILE…``. It exits on
SIGTERM or SIGINT, and when its parent (the demo) goes away.

:class:`Child` is the demo's handle on each child (the app and the daemon).
Children start through a launcher that calls :func:`die_with_parent` and then
execs the real command, so that none outlives the demo, even a demo killed
with SIGKILL.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import javaproperties

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The launcher is used rather than preexec_fn, which is not safe once the demo's
# threads (the emulator, the app reader) run. The execed command keeps its pid.
# The kernel sends the signal when the *thread* that started the child ends, so
# the demo starts children from its main thread only.
LAUNCHER = (
    "import os, sys; from secretsync.demo.app import die_with_parent; "
    "die_with_parent(int(sys.argv[1])); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent ``parent_pid`` dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere this only does the check
    below. The request survives ``exec``, so a launcher can call this and then
    exec the real program under the same pid. Exits at once (code 1) if the
    parent is already gone, since it may have died before the request took effect.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent_pid:
        sys.exit(1)


@dataclass
class Child:
    """A child of the demo. ``name`` reads well in a sentence; ``log`` is its log, if any."""

    name: str
    proc: subprocess.Popen[str]
    log: str | None = None

    @classmethod
    def spawn(
        cls, name: str, python_args: list[str], log: str | None = None, **popen: Any
    ) -> Child:
        """Start ``python PYTHON_ARGS`` via the launcher, in a session of its own (so a
        Ctrl-C in the terminal reaches only the demo, which stops its children in order).
        ``{pid}`` in ``name`` becomes the child's pid. Call from the main thread only."""
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(os.getpid()), *python_args],
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **popen,
        )
        return cls(name.format(pid=proc.pid), proc, log)

    def ended(self) -> str | None:
        """How it ended (``exited with code 3``, ``killed by SIGKILL``); None while running."""
        code = self.proc.poll()
        if code is None:
            return None
        if code >= 0:
            return f"exited with code {code}"
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; nothing if it has already ended."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)


def describe(path: Path) -> str:
    """``<name> sha256=<8 hex> keys=<k1,k2>`` for a properties file, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path.name} unreadable ({exc.strerror})"
    keys = sorted(javaproperties.loads(data.decode("iso-8859-1")))
    return f"{path.name} sha256={hashlib.sha256(data).hexdigest()[:8]} keys={','.join(keys)}"


def main(argv: list[str] | None = None) -> None:
    """Write the pidfile, report each file at start and after every SIGHUP, exit on SIGTERM.

    Also exits when its parent changes (the demo died): on Linux the demo's
    launcher has already arranged a SIGTERM for that; this covers other systems.
    """
    parser = argparse.ArgumentParser(prog="secretsync.demo.app")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)

    parent = os.getppid()
    hup = threading.Event()
    done = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    args.pidfile.write_text(f"{os.getpid()}\n")
    try:
        for path in args.files:
            print(f"START {describe(path)}", flush=True)
        while not done.is_set() and os.getppid() == parent:
            if hup.wait(0.1):
                hup.clear()
                for path in args.files:
                    print(f"RELOADED {describe(path)}", flush=True)
    finally:
        args.pidfile.unlink(missing_ok=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
