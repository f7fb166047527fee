"""Hostile HTTP clients for the server tests, and a file descriptor budget.

:func:`scrape_flood` runs this file as a child process with CLIENTS clients that
GET the PATHs in turn as fast as the server answers, reading every response
whole, until its stdin closes; then it prints ``{"answers": {status: n},
"failed": n}``. (``python tests/support/flood.py scrape HOST PORT CLIENTS PATH…``)

:func:`half_sent_flood` runs this file as a child process that opens COUNT
connections to HOST:PORT, sends each the start of a request
(``GET /metrics HTTP/1.1\\r\\n``) and nothing more, prints one JSON line
``{"connected": n, "failed": n}`` once every attempt is done, and holds its
sockets until its stdin closes. A child of its own, so its sockets do not count
against the file descriptors of the process under test. Loopback only.

    python tests/support/flood.py HOST PORT COUNT
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

HALF_SENT = b"GET /metrics HTTP/1.1\r\n"
CONNECT_TIMEOUT_S = 30.0  # per connection; a server that stopped accepting fails them
PARALLEL_CONNECTS = 100  # about the listen backlog: no SYN is dropped and retried


@dataclass(frozen=True)
class FloodReport:
    connected: int
    failed: int


@dataclass
class ScrapeReport:
    """Filled in when the flood ends: answers by HTTP status, and requests that failed."""

    answers: dict[int, int]
    failed: int = 0


@contextlib.asynccontextmanager
async def scrape_flood(
    host: str, port: int, clients: int, paths: list[str]
) -> AsyncIterator[ScrapeReport]:
    """``clients`` scrapers (in a child process) hammer ``paths`` for the block."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "scrape",
        host,
        str(port),
        str(clients),
        *paths,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    report = ScrapeReport({})
    try:
        yield report
    finally:
        proc.stdin.close()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        else:
            got = json.loads(line or b"{}")
            report.answers = {int(k): v for k, v in got.get("answers", {}).items()}
            report.failed = got.get("failed", 0)


@contextlib.asynccontextmanager
async def half_sent_flood(host: str, port: int, count: int) -> AsyncIterator[FloodReport]:
    """Hold ``count`` half-sent requests to ``host:port`` (from a child) for the block."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        host,
        str(port),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), CONNECT_TIMEOUT_S * 4)
        report = json.loads(line or b"{}")
        if "error" in report:
            pytest.skip(f"the flood client cannot run here: {report['error']}")
        yield FloodReport(report["connected"], report["failed"])
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def open_fds() -> int:
    """File descriptors this process has open now (Linux /proc)."""
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def fd_budget(headroom: int) -> Iterator[int]:
    """Lower this process's soft RLIMIT_NOFILE to what is open now + ``headroom``.

    Yields the limit; restores the previous soft limit afterwards. The hard limit
    is untouched, so this can be undone without privileges.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = open_fds() + headroom
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _flood(host: str, port: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            print(json.dumps({"error": f"RLIMIT_NOFILE hard limit {hard} < {want}"}), flush=True)
            return
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[asyncio.StreamWriter] = []
    failed = 0
    gate = asyncio.Semaphore(PARALLEL_CONNECTS)

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                failed += 1
                return
            held.append(writer)
            writer.write(HALF_SENT)
            with contextlib.suppress(OSError):  # the server may have dropped it already
                await writer.drain()

    await asyncio.gather(*(one() for _ in range(count)))
    print(json.dumps({"connected": len(held), "failed": failed}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    for writer in held:
        writer.transport.abort()


async def _scrape(host: str, port: int, clients: int, paths: list[str]) -> None:
    answers: dict[int, int] = {}
    failed = 0
    stop = asyncio.Event()

    async def one(first: int) -> None:
        nonlocal failed
        n = first
        while not stop.is_set():
            path = paths[n % len(paths)]
            n += 1
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            except (OSError, TimeoutError):
                failed += 1
                await asyncio.sleep(0.05)
                continue
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                response = await asyncio.wait_for(reader.read(), 60)  # until the server closes
                status = int(response.split(b" ", 2)[1]) if response else 0
                answers[status] = answers.get(status, 0) + 1
            except (OSError, TimeoutError, ValueError, IndexError):
                failed += 1
            finally:
                writer.transport.abort()

    async def until_stdin_closes() -> None:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
        stop.set()

    await asyncio.gather(until_stdin_closes(), *(one(i) for i in range(clients)))
    print(json.dumps({"answers": answers, "failed": failed}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "scrape":
        asyncio.run(_scrape(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]))
    else:
        asyncio.run(_flood(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
