"""Shared fixtures: a real moto server over HTTP, a fault proxy, a JDK reader, the daemon.

Every AWS call in the tests goes to 127.0.0.1. Dummy credentials are set for
the whole test process (and inherited by daemons it starts); nothing reads a
real AWS profile or the instance metadata service.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog

from secretsync import logs
from tests.support.configs import example_config, write_yaml  # noqa: F401 (for the tests)
from tests.support.faultproxy import FaultProxy
from tests.support.java import JavaProperties, compile_reader
from tests.support.motoserver import free_port, moto_server  # noqa: F401 (free_port: for the tests)

REGION = "us-east-1"
KAFKA_ID = "/confluent_cloud_resource/kafka_cluster/java_client"
SR_ID = "/confluent_cloud_resource/schema_registry_cluster/java_client"
REPO = Path(__file__).resolve().parent.parent

# Canaries: if one of these shows up in a log, a metric or an error, we leaked a secret.
CANARY_PASSWORD = 'CANARY-pw-7f3a9c"\\quote'
CANARY_SR_SECRET = "CANARY-sr-b41d2e"


def kafka_secret(password: str = CANARY_PASSWORD, user: str = "CANARYKEY1") -> dict[str, str]:
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{password}";'
    )
    return {
        "sasl.jaas.config": jaas,
        "bootstrap.servers": "pkc-12345.us-east-1.aws.confluent.cloud:9092",
    }


def sr_secret(secret: str = CANARY_SR_SECRET) -> dict[str, str]:
    return {
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"SRKEY:{secret}",
        "schema.registry.url": "https://psrc-abcde.us-east-1.aws.confluent.cloud",
    }


_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
os.environ.update(_TEST_ENV)
for _var in (
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "SECRETSYNC_LOG_LEVEL",
    "SECRETSYNC_LOG_FORMAT",
):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


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


@pytest.fixture
def moto(moto_url: str) -> Moto:
    req = urllib.request.Request(moto_url + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    return Moto(moto_url)


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.url).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Send the package's JSON logs (debug and up) to a buffer for the test's duration."""
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


@pytest.fixture(scope="session")
def java(tmp_path_factory: pytest.TempPathFactory) -> JavaProperties:
    return compile_reader(tmp_path_factory.mktemp("java"))


class Daemon:
    """``secretsync run`` as a real child process; stderr (JSON logs) goes to a file.

    ``wrap`` goes before the command (``unshare …``); ``env`` is added to the environment.
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        *args: str,
        wrap: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                *wrap,
                sys.executable,
                "-m",
                "secretsync",
                "run",
                "-c",
                str(config),
                "--log-level",
                "debug",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "<non-json>", "line": line})
        return out

    def has_event(self, name: str, **fields: Any) -> bool:
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout_s)
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(config: Path, *args: str, **kwargs: Any) -> Daemon:
        d = Daemon(config, tmp_path / f"daemon-{len(started)}.log", *args, **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def run_cli(
    *args: str, timeout_s: float = 60, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m secretsync ARGS``; ``env`` adds variables to ours (None removes one)."""
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return subprocess.run(
        [sys.executable, "-m", "secretsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=child_env,
    )


@pytest.fixture
def make_rig() -> Iterator[Any]:
    """``make_rig(config, store, **kwargs)``: a syncer with a real writer; locks released after."""
    from tests.support.harness import rig  # noqa: PLC0415 (harness imports this module)

    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        r = rig(*args, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.writer.close()


# the in-process daemon (tests/support/inproc.py), as a fixture for every test module
from tests.support.inproc import run_inproc  # noqa: E402, F401
