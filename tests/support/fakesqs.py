"""A flooding SQS endpoint: the SQS JSON protocol over real HTTP on loopback, as fast as asked.

moto's SQS answers a few requests a second on a loaded machine, too slow to
play a flood. This endpoint answers every ``ReceiveMessage`` at once with ten
copies of ``body`` for ``flood_s`` seconds after :meth:`flood` (then with an
empty long poll of ``idle_s``), and accepts every ``DeleteMessageBatch``. It
counts what it served and what was deleted. It runs its own event loop in a
thread, so sync tests can use it. Only the three operations the listener
calls exist; any other is a 400.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/x-amz-json-1.0"


class FloodingSqs:
    def __init__(self, *, idle_s: float = 0.2) -> None:
        self.idle_s = idle_s
        self.body = ""
        self.flood_until = 0.0  # monotonic
        self.served = 0
        self.deleted = 0
        self.receives = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def queue_url(self) -> str:
        return f"{self.url}/123456789012/secretsync-flood"

    def flood(self, body: str, seconds: float) -> None:
        """Answer every receive with ten copies of ``body`` for ``seconds`` from now."""
        with self._lock:
            self.body = body
            self.flood_until = time.monotonic() + seconds

    def flooding(self) -> bool:
        with self._lock:
            return time.monotonic() < self.flood_until

    def counts(self) -> tuple[int, int]:
        """(messages served, messages deleted)."""
        with self._lock:
            return self.served, self.deleted

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> FloodingSqs:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        self._call(_stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _handle(self, request: web.Request) -> web.Response:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        params = json.loads(await request.read() or b"{}")
        if operation == "ReceiveMessage":
            with self._lock:
                self.receives += 1
                flooding = time.monotonic() < self.flood_until
                body = self.body
                if flooding:
                    first = self.served
                    self.served += 10
            if not flooding:
                await asyncio.sleep(self.idle_s)  # an empty long poll
                return web.json_response({}, content_type=CONTENT_TYPE)
            digest = hashlib.md5(body.encode()).hexdigest()
            messages = [
                {
                    "MessageId": f"m-{first + n}",
                    "ReceiptHandle": f"r-{first + n}",
                    "MD5OfBody": digest,
                    "Body": body,
                }
                for n in range(10)
            ]
            return web.json_response({"Messages": messages}, content_type=CONTENT_TYPE)
        if operation == "DeleteMessageBatch":
            entries = params.get("Entries", [])
            with self._lock:
                self.deleted += len(entries)
            ok = [{"Id": e["Id"]} for e in entries]
            return web.json_response({"Successful": ok, "Failed": []}, content_type=CONTENT_TYPE)
        return web.json_response(
            {"__type": "InvalidAction", "message": f"not served here: {operation}"},
            status=400,
            content_type=CONTENT_TYPE,
        )
