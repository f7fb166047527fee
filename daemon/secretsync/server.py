"""The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz`` (aiohttp), and its limits.

:class:`MetricsServer` runs in the daemon's own event loop and learns about the
agent only through :class:`Probes` (three callables). aiohttp parses and
handles requests; a connection-level guard (:class:`_Guarded`) in front of it
keeps a flood of slow or half-sent requests from taking the daemon's file
descriptors (which its AWS calls, config reloads and probes need):

- a connection whose request has not reached a handler within
  ``header_timeout_s`` is aborted, and so is one still open ``response_timeout_s``
  after that (a client that does not read its response);
- at ``max_connections`` a new connection evicts the oldest one that has not
  reached a handler, so a fresh probe still gets through a flood; when every
  connection is in a handler the new one is refused;
- request line, header and total request size are capped, bodies are refused
  (only GET is routed) and every response closes its connection.

Shed connections are counted (:attr:`MetricsServer.shed`) and summarised in a
rate-limited debug log event, never one line per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from secretsync import logs
from secretsync.metrics import Metrics, split_listen, url_host

__all__ = [
    "HEADER_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "Health",
    "MetricsServer",
    "MetricsServerError",
    "Probes",
    "ServerLimits",
    "raise_fd_limit",
    "split_listen",
]

HEALTH_INTERVALS = 3  # /healthz fails when no poll started within this many intervals…
HEALTH_MIN_WINDOW_S = 60.0  # …but never sooner than this: one poll with AWS timeouts and
# retries can take tens of seconds, and a slow backend must not make the sidecar "unhealthy"
SHUTDOWN_TIMEOUT_S = 1.0  # in-flight scrapes get this long at shutdown

HEADER_TIMEOUT_S = 5.0  # connect → request handed to our handler
HANDLER_TIMEOUT_S = 10.0  # a handler that takes longer answers 504
RESPONSE_TIMEOUT_S = 30.0  # handler start → connection gone (slow readers are aborted)
MAX_CONNECTIONS = 64
MAX_LINE_SIZE = 8192  # request line, bytes
MAX_FIELD_SIZE = 8192  # one header, bytes
MAX_HEADERS = 32
MAX_REQUEST_BYTES = 16384  # everything received before the handler: line + headers
MAX_BODY_BYTES = 1024  # aiohttp's client_max_size; bodies are refused anyway
SHED_LOG_INTERVAL_S = 60.0  # at most one http_connections_shed event per interval

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class MetricsServerError(Exception):
    """The metrics server could not listen (``str()`` is a one-line message for the user)."""


@dataclass(frozen=True)
class Probes:
    """What the server needs to know about the daemon, as callables (cheap, no I/O).

    ``last_poll_started``: monotonic time the last poll cycle started, ``None``
    before the first. ``poll_interval_s``: the configured interval (may change
    on reload). ``not_ready``: the outputs not synced yet or older than the
    staleness limit (empty when ready).
    """

    last_poll_started: Callable[[], float | None]
    poll_interval_s: Callable[[], float]
    not_ready: Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Health:
    """One /healthz verdict; ``detail`` is the JSON body."""

    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection limits of :class:`MetricsServer` (see the module docstring)."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    handler_timeout_s: float = HANDLER_TIMEOUT_S
    response_timeout_s: float = RESPONSE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    max_line_size: int = MAX_LINE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_headers: int = MAX_HEADERS
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


def raise_fd_limit() -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, best effort: (soft before, after, hard).

    An unlimited hard limit is not a valid soft limit for file descriptors on
    Linux, so the soft limit is then left as it is; so it is when setrlimit fails.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


class _ShedLog:
    """Counts shed connections; logs a summary at most once per interval (debug)."""

    def __init__(self, interval_s: float) -> None:
        self.total = {"evicted": 0, "refused": 0, "timed_out": 0, "bad_request": 0}
        self._pending = dict.fromkeys(self.total, 0)
        self._interval_s = interval_s
        self._timer: asyncio.TimerHandle | None = None
        self._log = logs.get_logger()

    def count(self, reason: str) -> None:
        self.total[reason] += 1
        self._pending[reason] += 1
        if self._timer is None:
            self.flush()  # the first event of a quiet period is logged at once…
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval_s, self._tick)  # …the rest batched

    def _tick(self) -> None:
        self._timer = None
        if any(self._pending.values()):
            self.flush()
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._tick)

    def flush(self) -> None:
        if any(self._pending.values()):
            self._log.debug("http_connections_shed", **self._pending)
            self._pending = dict.fromkeys(self.total, 0)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()


class _AiohttpLog(logging.Handler):
    """aiohttp's server logger: malformed requests are counted, handler crashes logged.

    aiohttp logs every bad request with a traceback at ERROR; unrouted, that goes
    to stderr once per request, so a flood of garbage would flood the log.
    """

    def __init__(self, shed: _ShedLog) -> None:
        super().__init__(logging.DEBUG)
        self._shed = shed

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self._shed.count("bad_request")
        elif exc is not None:  # type and place only: a repr could carry data
            logs.get_logger().error("http_handler_failed", error_type=type(exc).__name__)


class _Connections:
    """The open connections: those still waiting for a request (oldest first) and the rest."""

    def __init__(self, limits: ServerLimits, shed: _ShedLog) -> None:
        self.limits = limits
        self.shed = shed
        self._waiting: dict[_Guarded, None] = {}  # insertion order = age
        self._admitted: set[_Guarded] = set()
        self._by_handler: dict[asyncio.BaseProtocol, _Guarded] = {}

    def __len__(self) -> int:
        return len(self._waiting) + len(self._admitted)

    def accept(self, conn: _Guarded) -> bool:
        """Make room for ``conn`` (evicting the oldest waiting one) or refuse it."""
        if len(self) >= self.limits.max_connections:
            if not self._waiting:
                self.shed.count("refused")
                return False
            next(iter(self._waiting)).abort("evicted")
        self._waiting[conn] = None
        return True

    def bind(self, handler: asyncio.BaseProtocol, conn: _Guarded) -> None:
        self._by_handler[handler] = conn

    def admit(self, handler: asyncio.BaseProtocol) -> None:
        """The request on ``handler``'s connection reached our code: no longer evictable."""
        conn = self._by_handler.get(handler)
        if conn is not None and conn in self._waiting:
            del self._waiting[conn]
            self._admitted.add(conn)
            conn.arm(self.limits.response_timeout_s)

    def is_waiting(self, conn: _Guarded) -> bool:
        return conn in self._waiting

    def forget(self, conn: _Guarded) -> None:
        self._waiting.pop(conn, None)
        self._admitted.discard(conn)
        if conn.handler is not None:
            self._by_handler.pop(conn.handler, None)

    def abort_all(self, *, waiting_only: bool = False) -> None:
        for conn in [*self._waiting, *(() if waiting_only else self._admitted)]:
            conn.abort(None)


class _Guarded(asyncio.Protocol):
    """Wraps aiohttp's RequestHandler: deadlines, the connection cap, a request byte cap."""

    def __init__(self, table: _Connections, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self._table = table
        self._make_handler = make_handler
        self.handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._received = 0
        self._rejected = False  # answered 431; ignore whatever else it sends
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._table.accept(self):
            self._closed = True
            transport.abort()
            return
        self.arm(self._table.limits.header_timeout_s)
        self.handler = self._make_handler()
        self._table.bind(self.handler, self)
        self.handler.connection_made(transport)

    def arm(self, timeout_s: float) -> None:
        """(Re)start the deadline after which the connection is aborted."""
        if self._deadline is not None:
            self._deadline.cancel()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(timeout_s, self.abort, "timed_out")

    def abort(self, reason: str | None) -> None:
        """Drop the connection now; ``reason`` is counted unless None."""
        if self._closed:
            return
        self._closed = True
        self._table.forget(self)
        if self._deadline is not None:
            self._deadline.cancel()
        if reason is not None:
            self._table.shed.count(reason)
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._closed or self._rejected or self.handler is None:
            return
        if self._table.is_waiting(self):
            self._received += len(data)
            if self._received > self._table.limits.max_request_bytes:
                # still counted and evictable until gone; the deadline catches a non-reader
                self._rejected = True
                self._table.shed.count("bad_request")
                assert self._transport is not None
                self._transport.write(_TOO_LARGE)
                self._transport.close()
                return
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.handler is None else self.handler.eof_received()

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        self._table.forget(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over aiohttp, in the caller's event loop.

    The constructor only stores its arguments; :meth:`start` binds (and raises
    :class:`MetricsServerError` if the address is taken), :meth:`stop` closes,
    :meth:`move` re-binds on another address (config reload). Port 0 binds an
    ephemeral port; :attr:`port` tells which. ``limits`` bound every connection
    (see the module docstring); :attr:`shed` counts the connections dropped.
    """

    def __init__(
        self,
        metrics: Metrics,
        probes: Probes,
        *,
        host: str = "0.0.0.0",
        port: int = 9464,
        clock: Callable[[], float] = time.monotonic,
        min_window_s: float = HEALTH_MIN_WINDOW_S,
        limits: ServerLimits = ServerLimits(),  # frozen: safe to share
    ) -> None:
        self.metrics = metrics
        self.probes = probes
        self.host = host
        self.requested_port = port
        self.min_window_s = min_window_s
        self.limits = limits
        self._clock = clock
        self._started_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._shed: _ShedLog | None = None
        self._connections: _Connections | None = None

    def __repr__(self) -> str:
        return f"MetricsServer(host={self.host!r}, port={self.port}, running={self.running})"

    # -- verdicts (also usable without HTTP, e.g. by a systemd watchdog) -----------------

    def health(self) -> Health:
        """Healthy while a poll cycle started within max(3 intervals, ``min_window_s``).

        Before the first cycle the window counts from :meth:`start`. AWS errors
        do not matter here: a failing cycle is still a cycle, and restarting the
        sidecar would not fix the backend. Only a stuck or dead loop fails.
        """
        now = self._clock()
        window_s = max(HEALTH_INTERVALS * self.probes.poll_interval_s(), self.min_window_s)
        last = self.probes.last_poll_started()
        since = last if last is not None else self._started_at
        age_s = None if since is None else max(0.0, now - since)
        ok = age_s is not None and age_s <= window_s
        return Health(
            ok,
            {
                "healthy": ok,
                "polled": last is not None,
                "last_poll_age_s": None if age_s is None else round(age_s, 3),
                "window_s": window_s,
            },
        )

    def not_ready(self) -> list[str]:
        """Outputs not ready (see :class:`Probes`); also keeps ``secretsync_ready`` in step."""
        pending = sorted(self.probes.not_ready())
        self.metrics.ready.set(0 if pending else 1)
        return pending

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def port(self) -> int:
        """The bound port once started (useful with port 0), else the requested one."""
        if self._listener is not None:
            for sock in self._listener.sockets:
                return int(sock.getsockname()[1])
        return self.requested_port

    @property
    def url(self) -> str:
        """Base URL to reach the server from this host (wildcard hosts → loopback)."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open right now (never more than ``limits.max_connections``)."""
        return 0 if self._connections is None else len(self._connections)

    @property
    def shed(self) -> dict[str, int]:
        """Connections dropped since start: evicted, refused, timed_out, bad_request."""
        return {} if self._shed is None else dict(self._shed.total)

    async def start(self) -> None:
        """Bind and serve. Raises MetricsServerError when the address is in use or invalid.

        Also raises the process's soft file descriptor limit to the hard one
        (best effort), so the connection cap leaves plenty for syncing.
        """
        if self._runner is not None:
            return
        before, soft, hard = raise_fd_limit()
        logs.get_logger().info("fd_limit", soft_before=before, soft=soft, hard=hard)
        limits = self.limits
        shed = self._shed = _ShedLog(SHED_LOG_INTERVAL_S)
        self._connections = _Connections(limits, shed)
        aiohttp_log = logging.Logger("secretsync.http")  # not in the global tree: no side effect
        aiohttp_log.addHandler(_AiohttpLog(shed))
        app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[self._guard])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            logger=aiohttp_log,
            keepalive_timeout=2 * limits.header_timeout_s,  # aiohttp's idle guard: a backup
            lingering_time=0,  # never wait to drain a body we did not want
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
        )
        await runner.setup()
        try:
            self._listener = await self._bind(runner, self.host, self.requested_port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = self._clock()

    async def stop(self) -> None:
        """Stop listening and close connections (in-flight scrapes get a second). Idempotent."""
        runner, self._runner = self._runner, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._connections is not None:
            self._connections.abort_all(waiting_only=True)
        if runner is not None:
            await runner.cleanup()
        if self._connections is not None:
            self._connections.abort_all()  # e.g. a client that never read its response
        if self._shed is not None:
            self._shed.close()

    async def move(self, host: str, port: int) -> None:
        """Serve on ``host:port`` instead (config reload). No-op if unchanged or not running.

        The old address is released first (the new one may overlap it, e.g. the
        same port on another interface). If the new address cannot be bound the
        old one is bound again and MetricsServerError is raised.
        """
        if (host, port) == (self.host, self.requested_port):
            return
        old = (self.host, self.requested_port)
        self.host, self.requested_port = host, port
        if self._runner is None or self._listener is None:
            return
        self._listener.close()
        self._listener = None
        try:
            self._listener = await self._bind(self._runner, host, port)
        except MetricsServerError:
            self.host, self.requested_port = old
            self._listener = await self._bind(self._runner, *old)
            raise

    async def reconfigure(self, listen: str | None) -> None:
        """Follow a (reloaded) ``metrics.listen``: None stops the server; an address
        moves it there, starting it if it was stopped. Raises MetricsServerError
        when the address is taken (a running server then stays where it was).
        """
        if listen is None:
            await self.stop()
            return
        host, port = split_listen(listen)
        await self.move(host or "0.0.0.0", port)
        if not self.running:
            await self.start()

    async def _bind(self, runner: web.AppRunner, host: str, port: int) -> asyncio.Server:
        make_handler, table = runner.server, self._connections
        assert make_handler is not None and table is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.create_server(
                lambda: _Guarded(table, make_handler), host or None, port
            )
        except OSError as exc:
            where = f"{url_host(host) if host else '*'}:{port}"
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use (another secretsync or another program?)"
            else:
                reason = exc.strerror or type(exc).__name__
            raise MetricsServerError(f"metrics.listen {where}: cannot listen: {reason}") from None

    # -- handlers -----------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every routed request passes here: it stops being evictable, gets a deadline,
        may not carry a body, and its response closes the connection."""
        if self._connections is not None:
            self._connections.admit(request.protocol)
        try:
            if request.body_exists:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=0, actual_size=request.content_length or 0, text="no body expected"
                )
            async with asyncio.timeout(self.limits.handler_timeout_s):
                response = await handler(request)
        except web.HTTPException as exc:  # 404, 405, 413: responses too
            exc.force_close()
            raise
        response.force_close()  # "Connection: close": one request per connection
        return response

    async def _metrics(self, request: web.Request) -> web.Response:
        self.not_ready()  # the gauge reflects staleness even between poll cycles
        body, content_type = self.metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, _request: web.Request) -> web.Response:
        verdict = self.health()
        return web.json_response(verdict.detail, status=200 if verdict.ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        pending = self.not_ready()
        if pending:
            return web.json_response({"ready": False, "not_ready": pending}, status=503)
        return web.json_response({"ready": True})
