"""A moto server subprocess on a free loopback port, for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3

from tests.support.seeds import KAFKA_ID, REGION, SR_ID, kafka_secret, sr_secret
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


def reset(url: str) -> None:
    """Empty the emulator (every service's state) between tests."""
    req = urllib.request.Request(url + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


class Moto:
    """Set-up side of the emulator: a plain boto3 client for seeding and rotating."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Any = boto3.client("secretsmanager", region_name=REGION, endpoint_url=url)

    def create(self, name: str, value: dict[str, Any] | str) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return str(self.client.create_secret(Name=name, SecretString=text)["VersionId"])

    def rotate(self, name: str, value: dict[str, Any] | str) -> str:
        """PutSecretValue: a new version, staged AWSCURRENT."""
        text = value if isinstance(value, str) else json.dumps(value)
        return str(self.client.put_secret_value(SecretId=name, SecretString=text)["VersionId"])

    def seed_use_case(self) -> None:
        self.create(KAFKA_ID, kafka_secret())
        self.create(SR_ID, sr_secret())
