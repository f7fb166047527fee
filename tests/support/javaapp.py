"""Java programs run as real child JVMs from a single source file (``java Prog.java ARGS``).

The JVM starts in its own session, its stdout and stderr go to files that
the test reads while it runs, and SIGHUP, SIGINT, SIGTERM and SIGQUIT start
out with their default dispositions whatever the test runner inherited (see
:data:`_RESET_SIGNALS`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.java import QUICK_JVM_FLAGS
from tests.support.require import require
from tests.support.wait import wait_until

# A process that starts with a signal ignored passes that on to its children
# (nohup ignores SIGHUP; a shell without job control ignores SIGINT and SIGQUIT
# for a command started with `&`), and a JVM cannot handle an ignored signal:
# the tests would then depend on how pytest was launched. So the JVM is exec'd
# through this one-liner, which restores the defaults first (SIGHUP may be
# ignored on purpose).
_RESET_SIGNALS = (
    "import os, signal, sys; "
    "[signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)]; "
    "signal.signal(signal.SIGHUP, getattr(signal, sys.argv[1])); "
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def require_jdk() -> None:
    """Skip when there is no ``java``; fail instead when ``CI`` is set (CI must have one)."""
    require("java", fix="install a JDK")


class JavaApp:
    """``java SOURCE ARGS`` as a child process; see the module docstring."""

    def __init__(
        self, workdir: Path, name: str, source: Path, args: Sequence[str], *, ignore_sighup: bool
    ) -> None:
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        disposition = "SIG_IGN" if ignore_sighup else "SIG_DFL"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RESET_SIGNALS,
                    disposition,
                    "java",
                    *QUICK_JVM_FLAGS,
                    str(source),
                    *args,
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.stdout().splitlines()

    def wait_for_line(self, prefix: str, timeout_s: float = 60) -> str:
        """The first stdout line that starts with ``prefix``; fails early if the JVM exits."""

        def found() -> str | None:
            for line in self.lines():
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the JVM exited ({self.proc.returncode}) before printing {prefix!r};"
                    f" stderr: {self.stderr()[-2000:]}"
                )
            return None

        line = wait_until(found, timeout_s, f"a line starting with {prefix!r}")
        assert line is not None
        return line

    def signal_and_wait(self, sig: int, timeout_s: float = 60) -> int:
        """Send ``sig`` and return the exit status (a signal death is ``-signum``)."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


class JavaApps:
    """Starts :class:`JavaApp` processes in ``workdir``; :meth:`close_all` kills what still runs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[JavaApp] = []

    def __call__(self, source: Path, *args: str, ignore_sighup: bool = False) -> JavaApp:
        name = f"{source.stem}-{len(self.started)}"
        app = JavaApp(self.workdir, name, source, args, ignore_sighup=ignore_sighup)
        self.started.append(app)
        return app

    def close_all(self) -> None:
        for app in self.started:
            app.close()
