"""A connection-level guard in front of aiohttp, for the metrics server.

aiohttp parses and handles requests but has no header timeout and no
connection cap; :class:`Guarded` wraps its protocol so a flood of slow or
half-sent requests cannot take the daemon's file descriptors (which its AWS
calls, config reloads and probes need):

- a connection whose request has not reached a handler within
  ``header_timeout_s`` is aborted, and so is one still open
  ``response_timeout_s`` after that (a client that does not read its response);
- at ``max_connections`` a new connection evicts the oldest one that has not
  reached a handler, or else the oldest one parked (a costly request waiting
  for its shared answer, see :meth:`Connections.park`), so a fresh probe still
  gets through a flood; when every connection is being answered the new one
  is refused;
- everything received before the handler is capped at ``max_request_bytes``;
- with TLS, the handshake happens inside the guard (:meth:`asyncio.loop.start_tls`),
  so a connection that never finishes it is counted, capped, evictable and
  timed out like one that never finishes its request.

Shed connections are counted and summarised in a rate-limited debug log
event, never one line per connection.

:class:`Coalesced` shares one build of a costly response (``/metrics``,
``/status``) among every request waiting for it, and spaces the builds out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp.http_exceptions import HttpProcessingError

from secretsync import logs

HEADER_TIMEOUT_S = 5.0  # connect → request handed to our handler
HANDLER_TIMEOUT_S = 10.0  # a handler that takes longer answers 504
RESPONSE_TIMEOUT_S = 30.0  # handler start → connection gone (slow readers are aborted)
MAX_CONNECTIONS = 64
MAX_BUSY = 32  # /metrics and /status requests at once; more get 503 (half the connections)
BUILD_SPACING = 4.0  # a costly build that took d seconds is not started again for 4 × d
MAX_LINE_SIZE = 8192  # request line, bytes
MAX_FIELD_SIZE = 8192  # one header, bytes
MAX_HEADERS = 32
MAX_REQUEST_BYTES = 16384  # everything received before the handler: line + headers
MAX_BODY_BYTES = 1024  # aiohttp's client_max_size; bodies are refused anyway
SHED_LOG_INTERVAL_S = 60.0  # at most one http_connections_shed event per interval

# why a connection or request was shed: counted, and summarised in the log
SHED_REASONS = ("evicted", "refused", "timed_out", "bad_request", "busy", "tls_failed", "denied")

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection limits of :class:`MonitoringServer` (see the module docstring)."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    handler_timeout_s: float = HANDLER_TIMEOUT_S
    response_timeout_s: float = RESPONSE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    max_busy: int = MAX_BUSY
    max_line_size: int = MAX_LINE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_headers: int = MAX_HEADERS
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


class ShedLog:
    """Counts shed connections; logs a summary at most once per interval (debug)."""

    def __init__(self, interval_s: float) -> None:
        self.total = dict.fromkeys(SHED_REASONS, 0)
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


class AiohttpLog(logging.Handler):
    """aiohttp's server logger: malformed requests are counted, handler crashes logged.

    aiohttp logs every bad request with a traceback at ERROR; unrouted, that goes
    to stderr once per request, so a flood of garbage would flood the log.
    """

    def __init__(self, shed: ShedLog) -> None:
        super().__init__(logging.DEBUG)
        self._shed = shed

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self._shed.count("bad_request")
        elif exc is not None:  # type and place only: a repr could carry data
            logs.get_logger().error("http_handler_failed", error_type=type(exc).__name__)


class Connections:
    """The open connections: those still waiting for a request (oldest first), those
    parked in a handler waiting for a shared answer (oldest first), and the rest."""

    def __init__(self, limits: ServerLimits, shed: ShedLog) -> None:
        self.limits = limits
        self.shed = shed
        self._waiting: dict[Guarded, None] = {}  # insertion order = age
        self._parked: dict[Guarded, None] = {}
        self._admitted: set[Guarded] = set()
        self._by_handler: dict[asyncio.BaseProtocol, Guarded] = {}

    def __len__(self) -> int:
        return len(self._waiting) + len(self._parked) + len(self._admitted)

    def accept(self, conn: Guarded) -> bool:
        """Make room for ``conn`` (evicting the oldest waiting, else the oldest parked
        connection) or refuse it."""
        if len(self) >= self.limits.max_connections:
            victims = self._waiting or self._parked
            if not victims:
                self.shed.count("refused")
                return False
            next(iter(victims)).abort("evicted")
        self._waiting[conn] = None
        return True

    def park(self, handler: asyncio.BaseProtocol) -> None:
        """The request reached a handler that waits for a shared answer: it gets the
        response deadline, and stays evictable (after the waiting ones) until
        :meth:`admit`."""
        conn = self._by_handler.get(handler)
        if conn is not None and conn in self._waiting:
            del self._waiting[conn]
            self._parked[conn] = None
            conn.arm(self.limits.response_timeout_s)

    def bind(self, handler: asyncio.BaseProtocol, conn: Guarded) -> None:
        self._by_handler[handler] = conn

    def admit(self, handler: asyncio.BaseProtocol) -> None:
        """The request on ``handler``'s connection is being answered: no longer evictable."""
        conn = self._by_handler.get(handler)
        if conn is None:
            return
        if conn in self._waiting:
            del self._waiting[conn]
            self._admitted.add(conn)
            conn.arm(self.limits.response_timeout_s)
        elif conn in self._parked:  # its response deadline runs since it was parked
            del self._parked[conn]
            self._admitted.add(conn)

    def is_waiting(self, conn: Guarded) -> bool:
        return conn in self._waiting

    def forget(self, conn: Guarded) -> None:
        self._waiting.pop(conn, None)
        self._parked.pop(conn, None)
        self._admitted.discard(conn)
        if conn.handler is not None:
            self._by_handler.pop(conn.handler, None)

    def abort_all(self, *, waiting_only: bool = False) -> None:
        for conn in [*self._waiting, *self._parked, *(() if waiting_only else self._admitted)]:
            conn.abort(None)


class Guarded(asyncio.Protocol):
    """Wraps aiohttp's RequestHandler: deadlines, the connection cap, a request byte cap,
    and the TLS handshake when ``tls()`` gives a context (None: plain HTTP)."""

    def __init__(
        self,
        table: Connections,
        make_handler: Callable[[], asyncio.Protocol],
        tls: Callable[[], ssl.SSLContext | None] = lambda: None,
    ) -> None:
        self._table = table
        self._make_handler = make_handler
        self._tls = tls
        self.handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._received = 0
        self._rejected = False  # answered 431; ignore whatever else it sends
        self._closed = False
        self._handshake: asyncio.Task[None] | None = None
        self._early = bytearray()  # decrypted bytes that came before the handler existed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._table.accept(self):
            self._closed = True
            transport.abort()
            return
        self.arm(self._table.limits.header_timeout_s)
        context = self._tls()
        if context is None:
            self._serve(transport)
        else:
            self._handshake = asyncio.ensure_future(self._upgrade(transport, context))

    async def _upgrade(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        """TLS handshake under the header deadline; then aiohttp gets the TLS transport."""
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._table.limits.header_timeout_s,
            )
        except asyncio.CancelledError:
            self.abort(None)
            raise
        except Exception:  # a bad or unfinished handshake: ssl, OS, timeout errors
            self.abort("tls_failed")
            return
        if secure is None or self._closed:
            if secure is not None:
                secure.abort()
            self.abort(None)
            return
        self._transport = secure
        self._serve(secure)
        if self._early and self.handler is not None:
            early, self._early = bytes(self._early), bytearray()
            self.handler.data_received(early)

    def _serve(self, transport: asyncio.Transport) -> None:
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
        if self._closed or self._rejected:
            return
        if self._table.is_waiting(self):
            self._received += len(data)
            if self.handler is None and self._received > self._table.limits.max_request_bytes:
                self.abort("bad_request")  # still in the TLS upgrade: no way to answer yet
                return
            if self._received > self._table.limits.max_request_bytes:
                # still counted and evictable until gone; the deadline catches a non-reader
                self._rejected = True
                self._table.shed.count("bad_request")
                assert self._transport is not None
                self._transport.write(_TOO_LARGE)
                self._transport.close()
                return
        if self.handler is None:  # decrypted data right after the handshake, before _serve
            self._early += data
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


T = TypeVar("T")


class Coalesced(Generic[T]):
    """One build of a costly value for every caller waiting for it, never older than the call.

    :meth:`get` returns a value whose build started after the call began, so a
    scrape never sees data older than its request; callers that arrive while a
    build is running share the next one. After a build that took ``d`` seconds
    the next one starts no sooner than ``spacing × d`` after it ended, so a flood
    of scrapers costs at most ``1 / (1 + spacing)`` of the time building, however
    many there are. ``build`` should do its heavy part off the event loop (e.g.
    :func:`asyncio.to_thread`). A failed build fails the callers waiting for it.
    """

    def __init__(
        self,
        build: Callable[[], Awaitable[T]],
        *,
        spacing: float = BUILD_SPACING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._spacing = spacing
        self._clock = clock
        self._value: tuple[float, T] | None = None  # (build started, value)
        self._running: asyncio.Future[None] | None = None
        self._not_before = 0.0
        self.builds = 0

    async def get(self) -> T:
        """A value built after this call began (shared with the other callers)."""
        arrived = self._clock()
        while self._value is None or self._value[0] < arrived:
            if self._running is None:
                self._running = asyncio.ensure_future(self._run())
            await asyncio.shield(self._running)  # a caller that gives up leaves the build
        return self._value[1]

    async def _run(self) -> None:
        try:
            wait_s = self._not_before - self._clock()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            started = self._clock()
            value = await self._build()
            self.builds += 1
            self._value = (started, value)
            ended = self._clock()
            self._not_before = ended + self._spacing * (ended - started)
        finally:
            self._running = None

    def close(self) -> None:
        """Cancel a build in flight (server stop); a thread it runs in finishes on its own."""
        if self._running is not None:
            self._running.cancel()
            self._running = None
