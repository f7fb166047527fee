"""A small HTTP proxy in front of moto that counts requests and injects faults for real.

It runs its own event loop in a thread so both sync and async tests can use it.
Faults are real from the client's point of view: throttling, access-denied
and 5xx answers come back over HTTP in the protocol the client speaks (JSON
for Secrets Manager and SQS, XML for SNS's query protocol); ``down()`` closes
the listening socket so connections are refused until ``up()``; ``hang``
accepts a request and never answers; ``trickle`` sends moto's real status and
headers at once, then the body one byte every ``trickle_every_s`` (a stalled
backend that defeats per-read timeouts). ``fault`` applies to every request,
or with ``fault_only`` to requests naming one of those secrets (their
``SecretId``); ``faults_by_operation`` to the named operations only.
``requests`` records the operation and parameters of every request (SQS/SNS
tests read the queue and topic names the daemon used from it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

Fault = Literal["none", "throttle", "error500", "hang", "trickle", "denied"]

_DENIED_XML = (
    "<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code>"
    "<Message>denied by the fault proxy</Message></Error><RequestId>0</RequestId></ErrorResponse>"
)


def parse_request(target: str, path: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """(operation, parameters) of an AWS request: JSON protocol or query protocol."""
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return target.rpartition(".")[2], params if isinstance(params, dict) else {}
    form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    return form.pop("Action", "") or path, form


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: collections.Counter[str] = collections.Counter()
        self.fetched_versions: list[tuple[str, str | None]] = []
        self.fault: Fault = "none"
        self.fault_only: frozenset[str] | None = None  # None: the fault applies to every secret
        self.trickle_every_s = 5.0
        self.faults_by_operation: dict[str, Fault] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.faults_served = 0
        self.answered: list[tuple[float, str]] = []  # (monotonic time, SecretId) of moto's answers
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._released: asyncio.Event | None = None
        self.is_down = False
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, operation: str) -> int:
        with self._lock:
            return self.counts[operation]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.fetched_versions.clear()
            self.requests.clear()

    def recorded(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.requests)

    def first_answer_after(self, since: float, secret_id: str) -> float | None:
        """When the first answer from moto about ``secret_id`` was sent back at or after
        ``since`` (monotonic), or None."""
        with self._lock:
            return next((t for t, s in self.answered if t >= since and s == secret_id), None)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await self._up()

    async def _up(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _down(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    def down(self) -> None:
        """Stop listening: new connections are refused, kept-alive ones are reset."""
        self.is_down = True
        self._call(self._down())

    def up(self) -> None:
        self._call(self._up())
        self.is_down = False

    def stop(self) -> None:
        async def _stop() -> None:
            if self._released is not None:
                self._released.set()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        self._call(_stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.is_down and request.transport is not None:
            request.transport.abort()  # a kept-alive connection sees a reset, as in an outage
            raise ConnectionResetError("proxy is down")
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        operation, params = parse_request(target, request.path, body)
        with self._lock:
            self.counts[operation] += 1
            self.requests.append((operation, params))
            if operation == "GetSecretValue":
                self.fetched_versions.append((operation, params.get("VersionId")))
            fault = self.faults_by_operation.get(operation, self.fault)
            if self.fault_only is not None and params.get("SecretId") not in self.fault_only:
                fault = "none"
            if fault != "none":
                self.faults_served += 1
        if fault == "hang":
            # until the client gives up or the proxy stops
            assert self._released is not None
            await self._released.wait()
            raise web.HTTPServiceUnavailable()
        if fault == "throttle":
            return web.json_response(
                {"__type": "ThrottlingException", "message": "Rate exceeded"},
                status=400,
                content_type="application/x-amz-json-1.1",
            )
        if fault == "denied":
            if not target:  # the query protocol (SNS)
                return web.Response(status=403, text=_DENIED_XML, content_type="text/xml")
            return web.json_response(
                {"__type": "AccessDeniedException", "message": "denied by the fault proxy"},
                status=400,
                content_type="application/x-amz-json-1.0",
                headers={"x-amzn-query-error": "AccessDenied;Sender"},
            )
        if fault == "error500":
            return web.json_response(
                {"__type": "InternalServiceError", "message": "injected"},
                status=500,
                content_type="application/x-amz-json-1.1",
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host"}}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            out_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in {"content-length", "transfer-encoding", "connection"}
            }
        if fault == "trickle":
            return await self._trickle(request, upstream.status, out_headers, payload)
        with self._lock:
            self.answered.append((time.monotonic(), str(params.get("SecretId"))))
        return web.Response(body=payload, status=upstream.status, headers=out_headers)

    async def _trickle(
        self, request: web.Request, status: int, headers: dict[str, str], payload: bytes
    ) -> web.StreamResponse:
        """Status and headers now, then one byte of the body every ``trickle_every_s``."""
        assert self._released is not None
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(payload)
        await response.prepare(request)
        for i in range(len(payload)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.trickle_every_s)
            if self._released.is_set():
                break
            try:
                await response.write(payload[i : i + 1])
            except (ConnectionError, RuntimeError):
                break  # the client gave up
        return response
