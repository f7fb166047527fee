"""A moto server subprocess on a free loopback port, for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

from tests.support.wait import wait_until

# moto.server's main() behind PR_SET_PDEATHSIG: the server gets SIGKILL when the process
# that started it dies, so a test run killed with SIGKILL (no finally runs) leaves no
# server behind; the getppid check covers a parent that died before prctl took effect
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "parent = int(sys.argv[1])\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != parent:\n"
    "    sys.exit(1)\n"
    "from moto.server import main\n"
    "main(sys.argv[2:])\n"
)


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
    """Start moto's server on 127.0.0.1; yield its URL; stop it afterwards.

    The server also dies if this process is killed (Linux; see _LAUNCH). Start it
    from the main thread: the kernel ties it to the thread that started it.
    """
    port = free_port()
    proc = subprocess.Popen(
        [python, "-c", _LAUNCH, str(os.getpid()), "-H", "127.0.0.1", "-p", str(port)],
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
