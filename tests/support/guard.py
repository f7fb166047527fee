"""Keep the fast tier honest: a test not marked ``slow`` may start no subprocess or server.

``install()`` wraps three stdlib entry points once per test process:
``subprocess.Popen.__init__`` (which ``subprocess.run`` and asyncio's
``create_subprocess_exec``/``_shell`` also go through), ``socket.socket.listen`` (any
family: a TCP server, aiohttp's or asyncio's ``create_server``, a Unix stream server) and
``socket.socket.bind`` for IPv4/IPv6 (a port taken, even only to learn a free one). A Unix
datagram ``bind`` is allowed: it starts nothing and costs microseconds. Between
:func:`watch` and :func:`done` (the setup and call of an unmarked test, see conftest.py)
each of them records a violation and fails the test; elsewhere they do what they always do.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

_watched: str | None = None  # node id of the unmarked test now running
_violations: list[str] = []


def _violation(what: str) -> None:
    if _watched is None:
        return
    message = (
        f"{_watched} {what} but is not marked slow: mark it @pytest.mark.slow, or add the "
        "fixture that starts it to SLOW_FIXTURES in tests/conftest.py"
    )
    _violations.append(message)
    pytest.fail(message, pytrace=False)


_popen_init = subprocess.Popen.__init__
_bind = socket.socket.bind
_listen = socket.socket.listen


def _guarded_popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
    argv = [args] if isinstance(args, str | bytes) else list(args)
    _violation(f"starts a subprocess ({str(argv[0])[:60]!r})")
    _popen_init(self, args, *rest, **kw)


def _guarded_bind(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _violation(f"binds a {self.family.name} socket ({address!r})")
    _bind(self, address)


def _guarded_listen(self: socket.socket, *backlog: int) -> None:
    _violation(f"listens on a {self.family.name} socket")
    _listen(self, *backlog)


def started(what: str) -> None:
    """Record that the running test starts a subprocess some other way (the zygote's
    fork): a violation in an unmarked test, as a :class:`subprocess.Popen` would be."""
    _violation(what)


def install() -> None:
    """Wrap the entry points (idempotent). They stay passive until :func:`watch`."""
    subprocess.Popen.__init__ = _guarded_popen_init  # type: ignore[method-assign]
    socket.socket.bind = _guarded_bind  # type: ignore[assignment,method-assign]
    socket.socket.listen = _guarded_listen  # type: ignore[assignment,method-assign]


def watch(nodeid: str) -> None:
    """Start failing subprocesses and servers: ``nodeid`` is an unmarked test."""
    global _watched
    _watched = nodeid
    _violations.clear()


def done() -> list[str]:
    """Stop watching; the violations seen since :func:`watch` (a thread's included)."""
    global _watched
    _watched = None
    found = list(_violations)
    _violations.clear()
    return found
