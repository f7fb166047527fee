"""A fork server for the ``secretsync`` commands the tests start: real child processes
without paying the interpreter's start-up and imports each time.

A daemon a test starts spends most of its CPU importing (asyncio, aiohttp with its
default TLS contexts, botocore, the config models, prometheus_client …) before it
does anything a test looks at; the suite starts about 200 of them. The zygote is one
interpreter per test process (``python -m tests.support.zygote SOCKET``) that has
imported all of that once; :func:`spawn` asks it to fork a child, which then becomes
``python -m secretsync ARGS`` exactly as ``runpy`` runs it: its own pid and session,
the caller's stdio, environment and working directory, the signal dispositions of a
fresh interpreter, no other file descriptor, and a normal interpreter exit (atexit,
thread joins, flushed streams). The child is a real process: tests signal it, kill -9
it and read its exit status as they would a :class:`subprocess.Popen`.

What the zygote cannot give a child, :func:`spawn` refuses to ask of it (``None``:
the caller execs instead): a wrapper command (``unshare …``), interpreter options, or
an environment whose ``PYTHON*``/locale variables differ from the zygote's (those act
at interpreter start). A test of start-up itself (import weight, entry points, ``-X
importtime``) execs its own interpreter. ``SECRETSYNC_TEST_EXEC=1`` makes every caller
exec, to compare.

Protocol, one Unix stream connection per child: the client sends a JSON request with
the child's stdin, stdout and stderr as SCM_RIGHTS; the zygote answers ``{"pid": N}``,
then ``{"exit": code}`` once the child has exited (still unreaped: a zombie keeps its
pid, so a signal sent before the client has read the exit cannot reach a recycled
pid); the zygote reaps it when the client closes the connection.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import pkgutil
import resource
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXEC_ENV = "SECRETSYNC_TEST_EXEC"
START_TIMEOUT_S = 60  # imports under a CPU hog on 2 CPUs
_HEADER = struct.Struct("!I")
_MAX_REQUEST = 1 << 20

# imported lazily by `run`/`once` at run time (client creation, the HTTP server, the
# watcher): preloaded so that a child does not import them either
_PRELOAD = (
    "asyncio",
    "aiohttp",
    "aiohttp.web",
    "aioboto3",
    "aiobotocore.session",
    "aiobotocore.client",
    "aiobotocore.endpoint",
    "aiobotocore.httpsession",
    "aiobotocore.parsers",
    "aiobotocore.credentials",
    "aiobotocore.retries.standard",
    "aiobotocore.retries.adaptive",
    "aiobotocore.hooks",
    "aiobotocore.response",
    "aiobotocore.utils",
    "aiobotocore.signers",
    "aiobotocore.args",
    "aiobotocore.config",
    "aiobotocore.discovery",
    "aiobotocore.regions",
    "aiobotocore.waiter",
    "aiobotocore.paginate",
    "botocore.parsers",
    "botocore.serialize",
    "botocore.retryhandler",
    "botocore.retries.standard",
    "botocore.endpoint_provider",
    "botocore.regions",
    "botocore.httpchecksum",
    "botocore.crt",
    "prometheus_client",
    "watchfiles",
    "yaml",
    "javaproperties",
    "structlog",
)
# never preloaded: the demo brings moto's server; __main__ would run the CLI
_SKIP = ("secretsync.demo", "secretsync.__main__")
# PYTHON*, locale, time-zone and temp-dir variables act when an interpreter starts: a
# child of the zygote would not honour a change, so such a request is refused (exec)
_START_VARIABLES = ("PYTHON", "LC_", "LANG", "TZ", "TMPDIR")


# -- the server -----------------------------------------------------------------------


def _preload() -> None:
    import secretsync  # noqa: PLC0415

    for info in pkgutil.walk_packages(secretsync.__path__, "secretsync."):
        if not info.name.startswith(_SKIP):
            importlib.import_module(info.name)
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
    if len(header) != _HEADER.size:
        raise ConnectionError("short request header")
    (size,) = _HEADER.unpack(header)
    if size > _MAX_REQUEST:
        raise ConnectionError("request too large")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("short request")
        body += chunk
    return json.loads(body), list(fds)


def _become_child(request: dict[str, Any], fds: list[int], server: list[Any]) -> None:
    """In the forked child: close the server's sockets and selector (through their
    objects, so that no finaliser closes a descriptor number the daemon reuses later),
    take the request's stdio, session, cwd and environment, close every other
    descriptor. Returns to run ``secretsync``."""
    for owner in server:
        owner.close()
    if request["new_session"]:
        os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    for name, (soft, hard) in request["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["secretsync", *request["args"]]


def serve(path: str) -> dict[str, Any]:
    """Accept requests on ``path`` and fork a child for each; returns only in a child,
    with its request (the caller runs ``secretsync`` then). Exits when stdin closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[int, socket.socket | None]] = {}  # pidfd -> (pid, conn)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _events in selector.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    os._exit(0)  # the test process is gone or done
            elif key.data == "accept":
                conn, _ = listener.accept()
                try:
                    request, fds = _read_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                gc.freeze()  # the child's collections leave the preloaded heap shared
                pid = os.fork()
                if pid == 0:
                    conns = [c for _, c in children.values() if c is not None]
                    _become_child(request, fds, [selector, listener, conn, *conns])
                    return request
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                selector.register(pidfd, selectors.EVENT_READ, "child")
                selector.register(conn, selectors.EVENT_READ, ("conn", pidfd))
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            elif key.data == "child":
                pidfd = key.fd
                child, client = children[pidfd]
                selector.unregister(pidfd)
                # the exit status without reaping: the zombie keeps its pid until the
                # client, having read the exit, closes the connection
                info = os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)
                assert info is not None
                code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
                if client is None:
                    os.waitpid(child, 0)
                    os.close(pidfd)
                    del children[pidfd]
                    continue
                with contextlib.suppress(OSError):
                    client.sendall(json.dumps({"exit": code}).encode() + b"\n")
                children[pidfd] = (-child, client)  # exited: reap when the client hangs up
            else:  # a client's connection: readable means closed
                _, pidfd = key.data
                child, client = children[pidfd]
                assert client is not None
                selector.unregister(client)
                client.close()
                if child < 0:  # exited and reported: reap now
                    os.waitpid(-child, 0)
                    os.close(pidfd)
                    del children[pidfd]
                else:  # still running: reap when it exits
                    children[pidfd] = (child, None)


def main() -> None:
    from secretsync.demo.app import die_with_parent  # noqa: PLC0415 (stdlib only)

    path, parent = sys.argv[1], int(sys.argv[2])
    die_with_parent(parent, signal.SIGKILL)  # the test process's end is the zygote's
    _preload()
    assert threading.active_count() == 1, "a preloaded module started a thread"
    serve(path)  # returns in a child only
    import runpy  # noqa: PLC0415

    runpy.run_module("secretsync", run_name="__main__", alter_sys=True)


# -- the client -----------------------------------------------------------------------


class Zygote:
    """One zygote server for this test process, started on first use."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="zygote-")
        self.path = os.path.join(self._dir, "sock")
        self.env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote", self.path, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
            # os.environ, not the C environment: a library's putenv (pytest's terminal
            # size, COLUMNS/LINES) is not in os.environ, and :meth:`refuses` compares to it
            env=self.env,
        )
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        ready = self.proc.stdout.readline() if readable else b"(nothing in time)"
        if ready != b"ready\n":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the zygote did not start: {ready!r}")

    def refuses(self, env: Mapping[str, str]) -> bool:
        """Whether a child with ``env`` would differ from an exec'd one (see module doc)."""
        names = set(env) | set(self.env)
        return any(
            name.startswith(_START_VARIABLES) and env.get(name) != self.env.get(name)
            for name in names
        )

    def spawn(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        stdin: int,
        stdout: int,
        stderr: int,
        new_session: bool,
        rlimits: Mapping[str, tuple[int, int]],
        cwd: str | None = None,
    ) -> ZygoteChild:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        body = json.dumps(
            {
                "args": list(args),
                "env": dict(env),
                "cwd": cwd or os.getcwd(),
                "new_session": new_session,
                "rlimits": dict(rlimits),
            }
        ).encode()
        socket.send_fds(conn, [_HEADER.pack(len(body))], [stdin, stdout, stderr])
        conn.sendall(body)
        child = ZygoteChild(conn, [sys.executable, "-m", "secretsync", *args])
        return child

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


class ZygoteChild:
    """A child of the zygote, with the part of :class:`subprocess.Popen` tests use:
    ``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``."""

    def __init__(self, conn: socket.socket, args: list[str]) -> None:
        self._conn = conn
        self._buffer = b""
        self.args = args
        self.returncode: int | None = None
        first = self._message(timeout_s=START_TIMEOUT_S)
        if first is None or "pid" not in first:
            conn.close()
            raise RuntimeError(f"the zygote did not start {args[3:5]}: {first!r}")
        self.pid: int = first["pid"]

    def _message(self, timeout_s: float | None) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            self._conn.settimeout(timeout_s)
            try:
                chunk = self._conn.recv(4096)
            except TimeoutError:
                return None
            except BlockingIOError:
                return None
            if not chunk:
                raise RuntimeError("the zygote went away")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def _exited(self, timeout_s: float | None) -> bool:
        if self.returncode is not None:
            return True
        message = self._message(timeout_s)
        if message is None:
            return False
        self.returncode = int(message["exit"])
        self._conn.close()  # the zygote reaps the child now
        return True

    def poll(self) -> int | None:
        self._exited(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # an unread exit leaves a zombie: never a recycled pid
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_zygote: Zygote | None = None
_lock = threading.Lock()


def _shared() -> Zygote | None:
    global _zygote
    if os.environ.get(EXEC_ENV, "") not in ("", "0"):
        return None
    with _lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            _zygote = Zygote()
            atexit.register(_zygote.close)
        return _zygote


def environment() -> dict[str, str]:
    """The environment this test process's zygote started with (starting it now)."""
    zygote = _shared()
    return dict(os.environ if zygote is None else zygote.env)


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int | None = None,
    stdout: int,
    stderr: int,
    new_session: bool = False,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
) -> ZygoteChild | None:
    """``python -m secretsync ARGS`` forked from this test process's zygote, or None when
    the zygote cannot stand in for an exec (see the module doc): the caller execs then.

    ``stdout``/``stderr`` are descriptors the child gets as 1 and 2; ``stdin`` defaults
    to ours, as :class:`subprocess.Popen`'s does. ``rlimits`` (``{"RLIMIT_NOFILE":
    (soft, hard)}``) are set in the child before it runs, as a ``preexec_fn`` would.
    """
    zygote = _shared()
    if zygote is None or zygote.refuses(env):
        return None
    from tests.support import guard  # noqa: PLC0415 (pytest: not for the zygote's own start)

    guard.started(f"starts a subprocess ('secretsync {' '.join(args[:1])}' via the zygote)")
    return zygote.spawn(
        args,
        env=env,
        stdin=0 if stdin is None else stdin,
        stdout=stdout,
        stderr=stderr,
        new_session=new_session,
        rlimits=rlimits or {},
    )


if __name__ == "__main__":
    main()
