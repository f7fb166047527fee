"""A local HTTP endpoint for `http` notify targets, on an ephemeral loopback port."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class HookServer:
    """A local HTTP endpoint: /ok answers 204, /fail 500, /moved/STATUS redirects to
    /ok with that status (/moved/STATUS/PORT to 127.0.0.1:PORT/ok); every request is recorded."""

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
        if request.path.startswith("/moved/"):  # /moved/STATUS[/PORT]
            status, _, port = request.path.removeprefix("/moved/").partition("/")
            where = f"http://127.0.0.1:{port}/ok" if port else "/ok"
            return web.Response(status=int(status), headers={"Location": where})
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
