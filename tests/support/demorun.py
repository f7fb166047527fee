"""Run `secretsync demo` as a real process tree, read its output, and clean up after it.

The demo runs in its own session (so signals sent to it never reach the test
process), with its stdout and stderr in a file or in a :class:`Terminal`.
Whatever happens in the test, :func:`running_demo` kills the demo and every
child it reported when the ``with`` block ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.proctree import Proc, children
from tests.support.terminal import Terminal
from tests.support.wait import wait_until

DAEMON_RE = re.compile(r"secretsync run started \(pid (\d+)")
APP_RE = re.compile(r"stand-in app started \(pid (\d+)\)")
EMULATOR_RE = re.compile(r"local Secrets Manager on http://127\.0\.0\.1:(\d+)")
TIMELINE_RE = re.compile(r"rotated \S+ \(version \w+\) → (\S+) rewritten \+[\d.]+s → app signalled")
READY = "● rotating a secret every"
STOPPED = "stopped: daemon, app and local Secrets Manager are down"


def demo_env() -> dict[str, str]:
    """The test environment without AWS_* (the demo must set up its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@dataclass
class DemoTree:
    """A running demo: its process, its output so far, and the children it reported."""

    proc: subprocess.Popen[bytes]
    read: Callable[[], str]
    children: dict[str, Proc] = field(default_factory=dict)
    emulator_port: int = 0

    def wait_started(self, timeout_s: float = 60.0) -> str:
        """Wait until the demo has started everything; record the daemon and the app."""
        wait_until(
            lambda: READY in self.read() or self.proc.poll() is not None, timeout_s, "demo start"
        )
        text = self.read()
        assert READY in text, text
        for name, pattern in (("daemon", DAEMON_RE), ("app", APP_RE)):
            match = pattern.search(text)
            assert match is not None, text
            self.children[name] = Proc.of(int(match.group(1)))
        # the reported pids are the demo's own children (a launcher that execs keeps its pid)
        assert {p.pid for p in self.children.values()} <= children(self.proc.pid)
        emulator = EMULATOR_RE.search(text)
        assert emulator is not None, text
        self.emulator_port = int(emulator.group(1))
        return text

    def wait_rotations(self, count: int, timeout_s: float = 60.0) -> str:
        """Wait for ``count`` timeline lines (fails at once if the demo exits)."""
        wait_until(
            lambda: len(TIMELINE_RE.findall(self.read())) >= count or self.proc.poll() is not None,
            timeout_s,
            f"{count} rotations",
        )
        text = self.read()
        assert len(TIMELINE_RE.findall(text)) >= count, text
        return text

    def wait_all_gone(self, timeout_s: float = 30.0) -> None:
        """Wait for the demo to exit and for every child it reported to be gone."""
        self.proc.wait(timeout=timeout_s)
        wait_until(
            lambda: not any(p.running() for p in self.children.values()),
            timeout_s,
            f"the demo's children {sorted(p.pid for p in self.children.values())} to exit",
        )

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for child in self.children.values():
            child.kill()


def demo_argv(*args: str) -> list[str]:
    """``python -m secretsync demo ARGS`` (without the interpreter)."""
    return ["-m", "secretsync", "demo", *args]


@contextmanager
def running_demo(
    *args: str,
    output: Path | None = None,
    terminal: Terminal | None = None,
    cwd: Path | None = None,
) -> Iterator[DemoTree]:
    """Start the demo with stdout+stderr in ``output`` (a file) or in ``terminal``."""
    if terminal is not None:
        proc = terminal.spawn(demo_argv(*args), env=demo_env(), cwd=cwd)
        tree = DemoTree(proc, terminal.read)
    else:
        assert output is not None
        with output.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *demo_argv(*args)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=demo_env(),
                cwd=cwd,
                start_new_session=True,  # our signals go to the demo alone
            )
        tree = DemoTree(proc, output.read_text)
    try:
        yield tree
    finally:
        tree.kill_all()
