"""The HTTP server for ``/metrics``, ``/healthz``, ``/readyz``, ``/fresh`` and ``/status``
(aiohttp), and its limits.

:class:`MonitoringServer` runs in the daemon's own event loop and learns about the
agent only through :class:`Probes` (three callables). aiohttp parses and
handles requests; a connection-level guard (:mod:`secretsync.serve.guard`) in
front of it keeps a flood of slow or half-sent requests from taking the
daemon's file descriptors (which its AWS calls, config reloads and probes need):

- a connection whose request has not reached a handler within
  ``header_timeout_s`` is aborted, and so is one still open ``response_timeout_s``
  after that (a client that does not read its response);
- at ``max_connections`` a new connection evicts the oldest one that has not
  reached a handler, so a fresh probe still gets through a flood; when every
  connection is in a handler the new one is refused;
- request line, header and total request size are capped, bodies are refused
  (only GET is routed) and every response closes its connection;
- the costly answers (``/metrics``, ``/status``: ~800 KB and ~0.2 s of CPU at
  1,000 outputs) are built off the event loop, once for every request waiting
  for one (:class:`~secretsync.serve.guard.Coalesced`); at most ``max_busy`` of
  those requests are handled at once (more are answered 503 at once), and
  while they wait for their shared answer they stay evictable, so ``/healthz``
  and ``/readyz`` always get through.

Shed connections are counted (:attr:`MonitoringServer.shed`) and summarised in a
rate-limited debug log event, never one line per connection.

With ``security`` (:class:`~secretsync.serve.websec.WebSecurity`, from
``metrics.web_config``) it serves HTTPS, reloading the certificate when its
files change, and requires basic-auth credentials and/or a verified client
certificate on every path but the open ones (the health endpoints by default).
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from secretsync.metrics import Metrics
from secretsync.serve.address import split_listen, url_host
from secretsync.serve.guard import (
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    SHED_LOG_INTERVAL_S,
    AiohttpLog,
    Coalesced,
    Connections,
    Guarded,
    ServerLimits,
    ShedLog,
)
from secretsync.serve.websec import TlsError, WebSecurity

__all__ = [
    "HEADER_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "Health",
    "MonitoringServer",
    "MonitoringServerError",
    "Probes",
    "ServerLimits",
    "split_listen",
]

HEALTH_INTERVALS = 3  # /healthz fails when no poll started within this many intervals…
HEALTH_MIN_WINDOW_S = 60.0  # …but never sooner than this: one poll with AWS timeouts and
# retries can take tens of seconds, and a slow backend must not make the sidecar "unhealthy"
SHUTDOWN_TIMEOUT_S = 1.0  # in-flight scrapes get this long at shutdown
COSTLY_PATHS = frozenset({"/metrics", "/status"})


class MonitoringServerError(Exception):
    """The metrics server could not listen (``str()`` is a one-line message for the user)."""


@dataclass(frozen=True)
class Probes:
    """What the server needs to know about the daemon, as callables (cheap, no I/O).

    ``last_poll_started``: monotonic time the last poll cycle started, ``None``
    before the first. ``poll_interval_s``: the configured interval (may change
    on reload). ``not_ready``: the outputs that keep ``/readyz`` from 200 (empty
    when ready; see :meth:`Syncer.not_ready`). ``failing_tasks``: supervised
    tasks that keep failing (empty when all run). ``status``: the ``/status``
    document (see :mod:`secretsync.serve.status`); without it ``/status`` is 404.
    ``stale``: the outputs not confirmed current within ``stale_after``
    (``/fresh``; empty when all are fresh).
    """

    last_poll_started: Callable[[], float | None]
    poll_interval_s: Callable[[], float]
    not_ready: Callable[[], Sequence[str]]
    failing_tasks: Callable[[], Sequence[str]] = tuple
    status: Callable[[], dict[str, Any]] | None = None
    stale: Callable[[], Sequence[str]] = tuple


@dataclass(frozen=True)
class Health:
    """One /healthz verdict; ``detail`` is the JSON body."""

    ok: bool
    detail: dict[str, Any]


class MonitoringServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over aiohttp, in the caller's event loop.

    The constructor only stores its arguments; :meth:`start` binds (and raises
    :class:`MonitoringServerError` if the address is taken), :meth:`stop` closes,
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
        limits: ServerLimits | None = None,
        security: WebSecurity | None = None,
    ) -> None:
        self.metrics = metrics
        self.security = security
        self.probes = probes
        self.host = host
        self.requested_port = port
        self.min_window_s = min_window_s
        self.limits = limits or ServerLimits()
        self._clock = clock
        self._started_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._shed: ShedLog | None = None
        self._connections: Connections | None = None
        self._costly = 0  # /metrics and /status requests in a handler now
        self._scrapes: dict[tuple[str, bool], Coalesced[bytes]] = {}
        self._status_doc: Coalesced[bytes] | None = None

    def __repr__(self) -> str:
        return f"MonitoringServer(host={self.host!r}, port={self.port}, running={self.running})"

    # -- verdicts (also usable without HTTP, e.g. by a systemd watchdog) -----------------

    def health(self) -> Health:
        """Healthy while a poll cycle started within max(3 intervals, ``min_window_s``).

        Before the first cycle the window counts from :meth:`start`. AWS errors
        do not matter here: a failing cycle is still a cycle, and restarting the
        sidecar would not fix the backend. Only a stuck or dead loop fails, or a
        supervised task that keeps failing (named in ``failing_tasks``), since a
        restart of the daemon may fix what restarting the task did not.
        """
        now = self._clock()
        window_s = max(HEALTH_INTERVALS * self.probes.poll_interval_s(), self.min_window_s)
        last = self.probes.last_poll_started()
        since = last if last is not None else self._started_at
        age_s = None if since is None else max(0.0, now - since)
        failing = sorted(self.probes.failing_tasks())
        ok = age_s is not None and age_s <= window_s and not failing
        return Health(
            ok,
            {
                "healthy": ok,
                "polled": last is not None,
                "last_poll_age_s": None if age_s is None else round(age_s, 3),
                "window_s": window_s,
                "failing_tasks": failing,
            },
        )

    def not_ready(self) -> list[str]:
        """Outputs not ready (see :class:`Probes`); also keeps ``secretsync_ready`` in step."""
        pending = sorted(self.probes.not_ready())
        self.metrics.ready.set(0 if pending else 1)
        return pending

    def stale(self) -> list[str]:
        """Outputs not fresh (see :class:`Probes`); also keeps ``secretsync_fresh`` in step."""
        stale = sorted(self.probes.stale())
        self.metrics.fresh.set(0 if stale else 1)
        return stale

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
        scheme = "http" if self.security is None else self.security.scheme
        return f"{scheme}://{url_host(self.host)}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open right now (never more than ``limits.max_connections``)."""
        return 0 if self._connections is None else len(self._connections)

    @property
    def builds(self) -> int:
        """``/metrics`` and ``/status`` answers built since start (each shared by its waiters)."""
        built = [*self._scrapes.values(), self._status_doc]
        return sum(b.builds for b in built if b is not None)

    @property
    def shed(self) -> dict[str, int]:
        """Connections dropped since start: evicted, refused, timed_out, bad_request, busy."""
        return {} if self._shed is None else dict(self._shed.total)

    async def start(self) -> None:
        """Bind and serve. Raises MonitoringServerError when the address is in use or invalid."""
        if self._runner is not None:
            return
        self._load_tls(self.security)
        limits = self.limits
        shed = self._shed = ShedLog(SHED_LOG_INTERVAL_S)
        self._connections = Connections(limits, shed)
        self._scrapes = {}
        self._status_doc = Coalesced(self._build_status)
        aiohttp_log = logging.Logger("secretsync.http")  # not in the global tree: no side effect
        aiohttp_log.addHandler(AiohttpLog(shed))
        app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[self._guard])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/fresh", self._fresh)
        app.router.add_get("/status", self._status)
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
            handler_cancellation=True,  # an evicted request waiting for a build stops waiting
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
        for built in [*self._scrapes.values(), self._status_doc]:
            if built is not None:
                built.close()

    async def move(self, host: str, port: int) -> None:
        """Serve on ``host:port`` instead (config reload). No-op if unchanged or not running.

        The old address is released first (the new one may overlap it, e.g. the
        same port on another interface). If the new address cannot be bound the
        old one is bound again and MonitoringServerError is raised.
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
        except MonitoringServerError:
            self.host, self.requested_port = old
            self._listener = await self._bind(self._runner, *old)
            raise

    def secure(self, security: WebSecurity | None) -> None:
        """Use ``security`` (a reloaded ``metrics.web_config``) from the next connection on.

        Its TLS files are loaded first: MonitoringServerError when they cannot be
        (the server then keeps what it had).
        """
        self._load_tls(security)
        self.security = security

    @staticmethod
    def _load_tls(security: WebSecurity | None) -> None:
        if security is not None and security.tls is not None:
            try:
                security.tls.load()
            except TlsError as exc:
                raise MonitoringServerError(str(exc)) from None

    async def reconfigure(self, listen: str | None) -> None:
        """Follow a (reloaded) ``metrics.listen``: None stops the server; an address
        moves it there, starting it if it was stopped. Raises MonitoringServerError
        when the address is taken (a running server then stays where it was).
        TLS and auth settings are :meth:`secure`'s.
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
                lambda: Guarded(table, make_handler, self._tls_context), host or None, port
            )
        except OSError as exc:
            where = f"{url_host(host) if host else '*'}:{port}"
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use (another secretsync or another program?)"
            else:
                reason = exc.strerror or type(exc).__name__
            raise MonitoringServerError(
                f"metrics.listen {where}: cannot listen: {reason}"
            ) from None

    def _tls_context(self) -> ssl.SSLContext | None:
        return None if self.security is None else self.security.tls_context()

    # -- handlers -----------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every routed request passes here: it gets a deadline, may not carry a body,
        and its response closes the connection. It stops being evictable when it
        is answered; a costly one (``/metrics``, ``/status``) stays evictable
        (parked) while it waits for its shared answer, and beyond ``max_busy``
        of them at once it is answered 503 at once."""
        table = self._connections
        costly = request.path in COSTLY_PATHS
        try:
            if request.body_exists:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=0, actual_size=request.content_length or 0, text="no body expected"
                )
            if costly and self._costly >= self.limits.max_busy:
                self._shed_busy()
                raise web.HTTPServiceUnavailable(
                    text="busy: too many /metrics and /status requests at once",
                    headers={"Retry-After": "1"},
                )
            if table is not None:
                (table.park if costly else table.admit)(request.protocol)
            self._costly += costly
            try:
                async with asyncio.timeout(self.limits.handler_timeout_s):
                    await self._authorize(request)
                    response = await handler(request)
            finally:
                self._costly -= costly
        except web.HTTPException as exc:  # 404, 405, 413, 503: responses too
            if table is not None:
                table.admit(request.protocol)
            exc.force_close()
            raise
        if table is not None:
            table.admit(request.protocol)  # the answer is ready: being sent, not evictable
        response.force_close()  # "Connection: close": one request per connection
        return response

    async def _authorize(self, request: web.Request) -> None:
        """Raise 401/403 unless ``security`` lets this request through (credentials never
        logged; refusals are counted as ``denied``)."""
        security = self.security
        if security is None:
            return
        transport = request.transport
        peercert = None if transport is None else transport.get_extra_info("peercert")
        denied = await security.check(request.path, request.headers.get("Authorization"), peercert)
        if denied is None:
            return
        if self._shed is not None:
            self._shed.count("denied")
        refusal = web.HTTPUnauthorized if denied.status == 401 else web.HTTPForbidden
        raise refusal(text=denied.text, headers=denied.headers)

    def _shed_busy(self) -> None:
        if self._shed is not None:
            self._shed.count("busy")

    async def _metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        content_type = self.metrics.content_type(accept)
        compress = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        key = (content_type, compress)
        built = self._scrapes.get(key)
        if built is None:
            built = self._scrapes[key] = Coalesced(lambda: self._build_scrape(accept, compress))
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=await built.get(), headers=headers)

    async def _build_scrape(self, accept: str, compress: bool) -> bytes:
        self.not_ready()  # the gauges reflect staleness even between poll cycles
        self.stale()

        def render() -> bytes:  # in a thread: prometheus_client collects under its own locks
            body = self.metrics.exposition(accept)[0]
            return gzip.compress(body, compresslevel=6) if compress else body

        return await asyncio.to_thread(render)

    async def _build_status(self) -> bytes:
        assert self.probes.status is not None
        document = self.probes.status()  # on the loop: the daemon's state is not thread-safe
        return await asyncio.to_thread(lambda: json.dumps(document).encode())

    async def _healthz(self, _request: web.Request) -> web.Response:
        verdict = self.health()
        return web.json_response(verdict.detail, status=200 if verdict.ok else 503)

    async def _status(self, _request: web.Request) -> web.Response:
        if self.probes.status is None or self._status_doc is None:
            raise web.HTTPNotFound()
        body = await self._status_doc.get()
        return web.Response(body=body, content_type="application/json")

    async def _readyz(self, _request: web.Request) -> web.Response:
        pending = self.not_ready()
        if pending:
            return web.json_response({"ready": False, "not_ready": pending}, status=503)
        return web.json_response({"ready": True})

    async def _fresh(self, _request: web.Request) -> web.Response:
        stale = self.stale()
        if stale:
            return web.json_response({"fresh": False, "stale": stale}, status=503)
        return web.json_response({"fresh": True})
