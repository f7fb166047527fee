"""A moto server subprocess on a free loopback port, for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

from tests.support.wait import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def moto_server(python: str = sys.executable) -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1; yield its URL; stop it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url), 30, "moto server to listen")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
