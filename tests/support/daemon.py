"""The daemon as a real child process: ``secretsync run`` (:class:`Daemon`) and any
other command (:func:`run_cli`)."""

from __future__ import annotations

import json
import locale
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from tests.support import zygote


class Daemon:
    """``secretsync run`` as a real child process; stderr (JSON logs) goes to a file.

    ``wrap`` goes before the command (``unshare …``); ``env`` is added to the environment.
    It is forked from the zygote (tests/support/zygote.py) unless ``wrap`` is given or
    ``forked`` is False: a test timed against a real start-up execs.
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        *args: str,
        wrap: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        forked: bool = True,
    ) -> None:
        self.log_path = log
        self._log = log.open("wb")
        argv = ["run", "-c", str(config), "--log-level", "debug", *args]
        child_env = {**os.environ, **(env or {})}
        child = None
        if forked and not wrap:
            fd = self._log.fileno()
            child = zygote.spawn(argv, env=child_env, stdout=fd, stderr=fd, new_session=True)
        self.proc: subprocess.Popen[bytes] | zygote.ZygoteChild = child or subprocess.Popen(
            [*wrap, sys.executable, "-m", "secretsync", *argv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "<non-json>", "line": line})
        return out

    def has_event(self, name: str, **fields: Any) -> bool:
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout_s)
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


def _text(captured: IO[bytes]) -> str:
    """What ``subprocess.run(text=True)`` makes of captured bytes: decoded with the
    locale's encoding, universal newlines."""
    captured.seek(0)
    data = captured.read().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


def run_cli(
    *args: str,
    timeout_s: float = 60,
    env: dict[str, str | None] | None = None,
    nofile: tuple[int, int] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m secretsync ARGS``; ``env`` adds variables to ours (None removes one);
    ``nofile`` is the child's (soft, hard) RLIMIT_NOFILE.

    Forked from the zygote where it can stand in (tests/support/zygote.py), else exec'd;
    stdout and stderr are captured either way, stdin is ours.
    """
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = zygote.spawn(
            args,
            env=child_env,
            stdout=out.fileno(),
            stderr=err.fileno(),
            rlimits={"RLIMIT_NOFILE": nofile} if nofile else None,
        )
        if child is not None:
            try:
                code = child.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise
            return subprocess.CompletedProcess(child.args, code, _text(out), _text(err))

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    return subprocess.run(
        [sys.executable, "-m", "secretsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=child_env,
        preexec_fn=limit if nofile else None,  # setrlimit only, before exec
    )
