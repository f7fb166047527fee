"""`secretsync demo`: the whole loop on a laptop, with no AWS account.

Starts a local Secrets Manager (moto's server, a child process on a free
loopback port; see :mod:`secretsync.demo.emulator`) seeded with the two
Confluent-style secrets, writes a demo sync.yaml based on sync.yaml.example,
starts a stand-in app (a Python script in place of a Java app) that reloads on
SIGHUP, runs the real daemon (``secretsync run``, the same code path as
production) and rotates a secret every few seconds, printing a timeline:
rotated → file rewritten → app signalled, with the measured latency.
It only ever talks to 127.0.0.1.

However it ends, it stops everything it started: on Ctrl-C (SIGINT), SIGTERM
or SIGHUP (its terminal closed), when its output goes away, on an error, and
when the daemon, the app or the emulator exits on its own. Killed with
SIGKILL, the kernel sends its children SIGTERM (Linux; see
:mod:`secretsync.demo.app`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from secretsync.demo import emulator
from secretsync.demo.app import Child

KAFKA_ID = "/confluent_cloud_resource/kafka_cluster/java_client"
SR_ID = "/confluent_cloud_resource/schema_registry_cluster/java_client"
REGION = "us-east-1"
# Dummy credentials: the embedded emulator accepts anything, and setting them
# here means the demo never picks up (or needs) a real AWS profile.
DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_SESSION_TOKEN": "demo",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
MISSING_MOTO = (
    "secretsync demo needs the embedded Secrets Manager emulator (moto).\n"
    "Install it with:  pip install 'secretsync-sidecar[demo]'"
    "   (or run `make demo` in the repository)"
)


class DemoError(Exception):
    """The demo cannot start or go on; the message says why and what to do."""


class Interrupted(Exception):
    """A stop was asked for (a signal, or the output went away) while the demo waited."""


def kafka_value() -> dict[str, str]:
    key, secret = secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    return {
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{key}" password="{secret}";'
        ),
        "bootstrap.servers": "pkc-demo1.us-east-1.aws.confluent.cloud:9092",
    }


def sr_value() -> dict[str, str]:
    key, secret = secrets.token_hex(8).upper(), secrets.token_urlsafe(24)
    return {
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"{key}:{secret}",
        "schema.registry.url": "https://psrc-demo1.us-east-1.aws.confluent.cloud",
    }


def example_path() -> Path:
    """sync.yaml.example: inside the wheel, or at the root of a source checkout."""
    package = Path(__file__).parents[1]  # secretsync/
    packaged = package / "sync.yaml.example"
    return packaged if packaged.exists() else package.parents[1] / "sync.yaml.example"


def demo_config(directory: Path, endpoint: str, port: int, interval_s: float) -> dict[str, Any]:
    """The example config moved under ``directory/out`` and pointed at the emulator."""
    data: dict[str, Any] = yaml.safe_load(example_path().read_text())
    data["aws"] = {"region": REGION, "endpoint_url": endpoint}
    data["poll"] = {"interval": f"{interval_s}s", "jitter": 0.1}
    data["settle"] = "500ms"
    data["metrics"] = {"listen": f"127.0.0.1:{port}"}
    for out in data["outputs"]:
        out["path"] = str(directory / "out" / Path(out["path"]).name)
        out["notify"] = ["kafka-app"]  # the stand-in app reloads on SIGHUP
    data["notify"] = {"kafka-app": {"signal": "SIGHUP", "pidfile": str(directory / "app.pid")}}
    return data


def shown(path: Path, cwd: Path | None) -> str:
    """``path`` relative to ``cwd`` when it is inside it (``secretsync-demo/sync.yaml``),
    else absolute. Both should be resolved; ``cwd`` None (it was deleted) gives absolute."""
    if cwd is not None:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(cwd))
    return str(path)


def _emit(stream: TextIO, text: str) -> bool:
    """Print ``text``; False if the stream is gone (terminal closed: EIO; reader gone: EPIPE).

    A dead stream's file descriptor is pointed at /dev/null, so that what is still
    buffered cannot fail again when Python flushes it at exit (which exits with 120).
    """
    try:
        print(text, file=stream, flush=True)
    except OSError:
        with contextlib.suppress(OSError, ValueError):  # io.UnsupportedOperation: no fd
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Demo:
    """Owns the emulator, the stand-in app and the daemon; ``run()`` until interrupted.

    ``rotate_every_s`` must be a positive, finite number of seconds (ValueError).
    """

    def __init__(
        self,
        directory: Path,
        *,
        rotate_every_s: float = 15.0,
        port: int = 9464,
        out: TextIO | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if not (rotate_every_s > 0 and math.isfinite(rotate_every_s)):
            raise ValueError(f"rotate_every_s must be more than 0 seconds, got {rotate_every_s}")
        self.stop = stop or threading.Event()
        self.directory = directory.resolve()
        self.rotate_every_s = rotate_every_s
        # The daemon polls five times per rotation, at most once a second; every wait
        # for it is bounded by that interval, never by the (possibly tiny) period.
        self.poll_interval_s = max(1.0, rotate_every_s / 5)
        self.sync_timeout_s = max(30.0, 4 * self.poll_interval_s)
        self.port = port
        self.out = out or sys.stdout
        self.rotations = 0
        self.running = False  # everything has started
        self.files: list[Path] = []
        self._cwd: Path | None = None
        self._muted = False
        self._children: list[Child] = []
        self._emulator: Child | None = None
        self._endpoint = ""
        self._app_lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def __repr__(self) -> str:
        return f"Demo(directory={str(self.directory)!r}, rotations={self.rotations})"

    def say(self, text: str) -> None:
        """Print a line; if nobody can read it any more, stop the demo (and print no more)."""
        if not self._muted and not _emit(self.out, text):
            self._muted = True
            self.stop.set()

    def complain(self, text: str) -> None:
        """Print an error line on stderr (quietly nothing if stderr is gone)."""
        _emit(sys.stderr, f"secretsync demo: {text}")

    # -- start-up ----------------------------------------------------------------------

    def _start_emulator(self) -> str:
        if not emulator.available():
            raise DemoError(MISSING_MOTO)
        os.environ.update(DEMO_ENV)  # the daemon and the emulator inherit these
        port = _free_port()
        self._emulator = Child.spawn(
            "the local Secrets Manager (moto, pid {pid})",
            emulator.command(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = self._endpoint = f"http://127.0.0.1:{port}"
        self._wait(lambda: emulator.answers(endpoint), 60, "the local Secrets Manager")
        for secret_id, value in ((KAFKA_ID, kafka_value()), (SR_ID, sr_value())):
            emulator.call(
                endpoint, "CreateSecret", {"Name": secret_id, "SecretString": json.dumps(value)}
            )
        self.say(f"● local Secrets Manager on {endpoint} with 2 secrets:")
        self.say(f"    {KAFKA_ID}\n    {SR_ID}")
        return endpoint

    def _spawn(self, name: str, args: list[str], log: str | None = None, **popen: Any) -> Child:
        self._check()  # a stop that arrived during start-up: start nothing more
        child = Child.spawn(name, args, log, **popen)
        self._children.append(child)
        return child

    def _read_app(self, stream: TextIO) -> None:
        for line in stream:
            self._app_lines.put((time.monotonic(), line.rstrip("\n")))

    def start(self) -> None:
        """Start emulator, app and daemon, and wait for the first files. Raises DemoError."""
        if not _port_free(self.port):
            raise DemoError(
                f"port {self.port} is in use on 127.0.0.1; pick another with --port PORT "
                "(make demo PORT=PORT)"
            )
        with contextlib.suppress(OSError):  # no current directory: absolute paths
            self._cwd = Path.cwd().resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        endpoint = self._start_emulator()
        config = demo_config(self.directory, endpoint, self.port, self.poll_interval_s)
        config_path = self.directory / "sync.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.files = [Path(o["path"]) for o in config["outputs"]]
        self.say(f"● wrote {shown(config_path, self._cwd)} (from sync.yaml.example)")

        log_path = self.directory / "secretsync.log"
        with log_path.open("w") as log:
            daemon = self._spawn(
                "the daemon (secretsync run, pid {pid})",
                ["-m", "secretsync", "run", "-c", str(config_path), "--log-format", "json"],
                log=shown(log_path, self._cwd),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.say(f"● secretsync run started (pid {daemon.proc.pid}, logs: {daemon.log})")
        self._wait(
            lambda: all(p.exists() for p in self.files), self.sync_timeout_s, "the first sync"
        )
        for path in self.files:
            self.say(f"    {shown(path, self._cwd)}  mode {path.stat().st_mode & 0o777:04o}")

        app = self._spawn(
            "the stand-in app (pid {pid})",
            [
                "-m",
                "secretsync.demo.app",
                "--pidfile",
                str(self.directory / "app.pid"),
                *map(str, self.files),
            ],
            stdout=subprocess.PIPE,
        )
        assert app.proc.stdout is not None
        threading.Thread(target=self._read_app, args=(app.proc.stdout,), daemon=True).start()
        self._wait((self.directory / "app.pid").exists, 30, "the stand-in app")
        self.say(
            f"● stand-in app started (pid {app.proc.pid}): a Python script in place of "
            "your Java app, reloads on SIGHUP"
        )
        self.say(f"● metrics: http://127.0.0.1:{self.port}/metrics  (also /healthz /readyz)")
        self.running = True

    def _check(self) -> None:
        """Raise Interrupted once a stop was asked for, DemoError once a child has ended."""
        if self.stop.is_set():
            raise Interrupted
        for child in (*self._children, *([self._emulator] if self._emulator else [])):
            how = child.ended()
            if how is not None:
                log = f"; its log: {child.log}" if child.log else ""
                raise DemoError(f"{child.name} stopped unexpectedly: {how}{log}")

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait for ``predicate``, checking for stops and dead children meanwhile."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check()
            if predicate():
                return
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise DemoError(f"timed out after {timeout_s:g}s waiting for {what}")
            self.stop.wait(min(0.05, left_s))

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, checking for stops and dead children meanwhile."""
        deadline = time.monotonic() + seconds
        while (left_s := deadline - time.monotonic()) > 0:
            self._check()
            self.stop.wait(min(0.1, left_s))
        self._check()

    # -- the rotation loop -------------------------------------------------------------

    def rotate_once(self) -> None:
        """Rotate one secret (alternating) and print rotated → rewritten → signalled."""
        self.rotations += 1
        kafka = self.rotations % 2 == 1
        secret_id, value = (KAFKA_ID, kafka_value()) if kafka else (SR_ID, sr_value())
        watched = self.files[0] if kafka else self.files[1]
        before = hashlib.sha256(watched.read_bytes()).hexdigest()[:8]
        with contextlib.suppress(queue.Empty):
            while True:
                self._app_lines.get_nowait()
        started = time.monotonic()
        version = emulator.call(
            self._endpoint,
            "PutSecretValue",
            {"SecretId": secret_id, "SecretString": json.dumps(value)},
        )
        rotated = f"rotated {secret_id.rsplit('/', 2)[-2]} (version {version['VersionId'][:8]})"

        def digest() -> str:
            return hashlib.sha256(watched.read_bytes()).hexdigest()[:8]

        self._wait(lambda: digest() != before, self.sync_timeout_s, "the file to change")
        written_s = time.monotonic() - started
        signalled_s = self._wait_app_reload(watched.name, digest(), self.sync_timeout_s)
        self.say(
            f"{time.strftime('%H:%M:%S')}  {rotated} → {watched.name} rewritten "
            f"+{written_s:.2f}s → app signalled +{signalled_s - started:.2f}s"
        )

    def _wait_app_reload(self, name: str, digest: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check()
            try:
                at, line = self._app_lines.get(
                    timeout=min(0.1, max(0.0, deadline - time.monotonic()))
                )
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise DemoError("the app was not signalled in time") from None
                continue
            if line.startswith(f"RELOADED {name} sha256={digest}"):
                return at

    def run(self) -> None:
        """Rotate every ``rotate_every_s``; raises Interrupted on a stop, DemoError on a failure.

        A period shorter than a rotation takes means rotations follow each other.
        """
        self.say(f"● rotating a secret every {self.rotate_every_s:g}s; Ctrl-C to stop\n")
        while True:
            self._pause(self.rotate_every_s)
            self.rotate_once()

    def close(self) -> bool:
        """Stop everything this demo started, the daemon first (so it never signals a
        stopped app), then the app and the emulator. True if anything had been started."""
        started = bool(self._children) or self._emulator is not None
        try:
            for child in self._children:
                child.stop()
        finally:
            if self._children:  # an app killed with SIGKILL could not remove its pidfile
                (self.directory / "app.pid").unlink(missing_ok=True)
            self._children.clear()
            if self._emulator is not None:
                self._emulator.stop()
                self._emulator = None
        return started


@contextlib.contextmanager
def _interrupts(stop: threading.Event) -> Iterator[None]:
    # SIGHUP: the terminal was closed. The children are in sessions of their own,
    # so no signal from the terminal reaches them: stopping them is our job.
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for signum in previous:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_demo(directory: Path, *, rotate_every_s: float, port: int) -> int:
    """Run the demo until SIGINT, SIGTERM or SIGHUP, or until something fails.

    Returns an exit code: 0 when stopped that way (or because its output went
    away), 2 when it cannot start, 1 when it fails later, e.g. the daemon or the
    app exited. Every way out first stops all it started. Raises ValueError,
    before starting anything, unless ``rotate_every_s`` is positive and finite.
    """
    stop = threading.Event()
    demo = Demo(directory, rotate_every_s=rotate_every_s, port=port, stop=stop)
    code = 0
    with _interrupts(stop):
        try:
            demo.start()
            demo.run()
        except Interrupted:
            pass
        except DemoError as exc:
            demo.complain(str(exc))
            code = 1 if demo.running else 2
        except Exception as exc:  # still stop everything; the type only: a text may hold data
            demo.complain(f"unexpected {type(exc).__name__}, stopping")
            code = 1
        finally:
            if demo.close():
                demo.say("\n● stopped: daemon, app and local Secrets Manager are down")
    return code
