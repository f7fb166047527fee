"""Hostile HTTP clients for the server tests, and a file descriptor budget.

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


if __name__ == "__main__":
    asyncio.run(_flood(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
