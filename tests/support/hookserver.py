"""A local HTTP endpoint for `http` notify targets, on an ephemeral loopback port."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class HookServer:
    """A local HTTP endpoint: /ok answers 204, /fail 500; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "path": request.path,
                "method": request.method,
                "token": request.headers.get("X-Token"),
                "body": await request.json() if request.can_read_body else None,
            }
        )
        if request.path == "/ok":
            return web.Response(status=204)
        return web.Response(status=500, text="reload failed")

    async def __aenter__(self) -> HookServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]
