"""A real Kafka broker and real Java Kafka clients for the end-to-end tests.

- :func:`java_jars` builds ``java/`` (``mvn package``) when its sources are newer than its
  jars, and :func:`maven_classpath` resolves the class path of a pom under ``java/e2e/``
  once (``mvn dependency:build-classpath``; the jars land in ``~/.m2``, the answer is
  cached in ``java/target/e2e/``). A clean machine fetches everything from Maven Central.
- :func:`start_broker`: a single-node KRaft broker (``kafka.Kafka`` from
  ``org.apache.kafka:kafka_2.13`` 4.4.0) on ephemeral 127.0.0.1 ports: a SASL_PLAINTEXT
  listener with PLAIN (API keys checked by the testkit's server callback handler against
  a file the test rewrites; the principal is the key's service account, Confluent Cloud's
  model) and SCRAM-SHA-512 (credentials in the KRaft metadata, Amazon MSK's model), a short
  ``connections.max.reauth.ms``, and a PLAINTEXT listener for the test's operator client.
- :class:`JavaProgram`: a testkit main class (``RotationProbe``, ``SrProbe``) as a child
  JVM against a chosen ``kafka-clients`` version.

Every process starts in its own session, is SIGKILLed with its process group when the
fixture ends, and dies with the test run even when that is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.java import QUICK_JVM_FLAGS
from tests.support.motoserver import free_port
from tests.support.paths import REPO
from tests.support.require import require
from tests.support.wait import wait_until

JAVA = REPO / "java"
E2E_POMS = JAVA / "e2e"
CACHE = JAVA / "target" / "e2e"
VERSION = "0.3.0-SNAPSHOT"
LIBRARY_JAR = JAVA / "secretsync-kafka" / "target" / f"secretsync-kafka-{VERSION}.jar"
SR_API_JAR = JAVA / "sr-api" / "target" / f"sr-api-{VERSION}.jar"
TESTKIT_JAR = JAVA / "testkit" / "target" / f"testkit-{VERSION}.jar"

# the client lines the library is proven against: the newest 4.x and the newest 3.x
KAFKA_4 = "4.4.0"
KAFKA_3 = "3.9.2"

HANDLER = "dev.secretsync.kafka.FileCredentialCallbackHandler"
# the broker's plug-ins (testkit): API keys valid per a file, principal = service account
SERVER_HANDLER = "dev.secretsync.testkit.broker.ApiKeyServerCallbackHandler"
PRINCIPAL_BUILDER = "dev.secretsync.testkit.broker.ServiceAccountPrincipalBuilder"
HANDLER_FILE_CONFIG = "secretsync.credentials.file"

MAVEN_TIMEOUT_S = 900  # a clean machine downloads ~60 MB of jars
BROKER_START_TIMEOUT_S = 120  # measured ~8 s alone on 2 CPUs; far more under a CPU hog

# exec a command with PR_SET_PDEATHSIG (the child dies with the test run) and the default
# dispositions of SIGINT/SIGTERM/SIGHUP/SIGQUIT whatever the runner inherited
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "parent = int(sys.argv[1])\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != parent:\n"
    "    sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)

# connections.max.reauth.ms of the test broker: every client session re-authenticates
# within 3 s, so a rotation is proven in seconds
REAUTH_MS = 3000

JVM_FLAGS = [*QUICK_JVM_FLAGS, "-Xss512k"]


def require_maven() -> None:
    """Skip without a JDK and Maven; fail instead when ``CI`` is set (CI must have both)."""
    require("java", "javac", "mvn", fix="install a JDK and Maven")


def _mvn(*args: str) -> None:
    proc = subprocess.run(
        ["mvn", "-B", "-q", *args],
        capture_output=True,
        text=True,
        timeout=MAVEN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"mvn {' '.join(args)} failed:\n{proc.stdout[-4000:]}"


@contextlib.contextmanager
def _maven_lock() -> Iterator[None]:
    """One Maven build at a time across test processes (xdist workers share java/target)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "maven.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _newest_source_mtime() -> float:
    newest = 0.0
    for module in ("sr-api", "secretsync-kafka", "testkit"):
        for path in (JAVA / module / "src").rglob("*"):
            newest = max(newest, path.stat().st_mtime)
        newest = max(newest, (JAVA / module / "pom.xml").stat().st_mtime)
    return max(newest, (JAVA / "pom.xml").stat().st_mtime)


def java_jars() -> list[Path]:
    """The library, the Schema Registry interface copy and the testkit jars, built when a
    source or pom changed since the last build this module ran (or a jar is missing)."""
    jars = [LIBRARY_JAR, SR_API_JAR, TESTKIT_JAR]
    stamp = CACHE / "built.stamp"
    with _maven_lock():
        if (
            not all(j.exists() for j in jars)
            or not stamp.exists()
            or stamp.stat().st_mtime < _newest_source_mtime()
        ):
            started = time.time()
            _mvn("-f", str(JAVA / "pom.xml"), "package", "-DskipTests")
            stamp.touch()
            os.utime(stamp, (started, started))  # a source edited meanwhile is seen next time
    return jars


def maven_classpath(pom: Path, **properties: str) -> list[Path]:
    """The resolved class path of ``pom`` with ``-Dname=value`` properties (cached)."""
    digest = hashlib.sha256(pom.read_bytes() + repr(sorted(properties.items())).encode())
    cached = CACHE / f"{pom.parent.name}-{digest.hexdigest()[:16]}.classpath"
    with _maven_lock():
        if cached.exists():
            entries = [Path(p) for p in cached.read_text().strip().split(os.pathsep)]
            if all(p.exists() for p in entries):
                return entries
        out = cached.with_suffix(".tmp")
        _mvn(
            "-f",
            str(pom),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={out}",
            *(f"-D{k}={v}" for k, v in properties.items()),
        )
        out.replace(cached)
    return [Path(p) for p in cached.read_text().strip().split(os.pathsep)]


def broker_classpath() -> list[Path]:
    """What the broker JVM needs: Kafka's server jars and an slf4j binding."""
    return maven_classpath(E2E_POMS / "broker" / "pom.xml")


def client_classpath(kafka_version: str) -> list[Path]:
    """What an application JVM has: kafka-clients ``kafka_version`` and its dependencies,
    an slf4j binding (its log on stderr), the library, the testkit and the interface copy
    (standing in for Confluent's client jar)."""
    resolved = maven_classpath(E2E_POMS / "clients" / "pom.xml", **{"kafka.version": kafka_version})
    return [*java_jars(), *resolved]


def _spawn(argv: Sequence[str], out: Path, err: Path, stdin: int | None) -> subprocess.Popen[bytes]:
    with out.open("wb") as o, err.open("wb") as e:
        return subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, str(os.getpid()), *argv],
            stdout=o,
            stderr=e,
            stdin=stdin,
            start_new_session=True,
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group this fixture started (its leader is ``proc``)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


class JavaProgram:
    """A testkit main class as a child JVM; stdin is a pipe (``RotationProbe`` stops on it)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        main: str,
        args: Sequence[str],
        classpath: Sequence[Path],
        jvm_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        argv = [
            "java",
            *JVM_FLAGS,
            "-Xmx256m",
            # the application's log: secretsync-kafka reports through slf4j at info
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.log.dev.secretsync=info",
            *jvm_args,
            "-cp",
            os.pathsep.join(map(str, classpath)),
            main,
            *args,
        ]
        self.proc = _spawn(argv, self.out_path, self.err_path, subprocess.PIPE)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited ({self.proc.returncode}); stderr: {self.stderr()[-3000:]}"
            )
        return True

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        _kill_group(self.proc)


class Probe(JavaProgram):
    """``RotationProbe``: producer, consumer and admin client built once from ``config``."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        config: Path,
        topic: str,
        kafka_version: str,
        consumer: Mapping[str, str] | None = None,
    ) -> None:
        """``consumer``: consumer properties set over the file's (e.g. the assignor)."""
        self.status_path = workdir / f"{name}.status.json"
        self.kafka_version = kafka_version
        overrides = [f"{k}={v}" for k, v in (consumer or {}).items()]
        super().__init__(
            workdir,
            name,
            "dev.secretsync.testkit.client.RotationProbe",
            [str(config), topic, f"group-{name}", str(self.status_path), *overrides],
            client_classpath(kafka_version),
            # the consumer's group life (joins, assignments, offsets) in its log, with the
            # milliseconds since the JVM started: what a stalled consumer did last
            jvm_args=[
                "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients.consumer.internals=info",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
            ],
        )

    def status(self) -> dict[str, Any]:
        """The latest status the probe wrote ({} before the first)."""
        try:
            return dict(json.loads(self.status_path.read_text()))
        except FileNotFoundError:
            return {}

    def metric(self, name: str, status: dict[str, Any] | None = None) -> float:
        """``name`` (e.g. ``successful-reauthentication-total``) summed over the 3 clients."""
        s = status if status is not None else self.status()
        return float(sum(client.get(name, 0.0) for client in s.get("metrics", {}).values()))

    def client_metric(self, client: str, name: str) -> float:
        return float(self.status().get("metrics", {}).get(client, {}).get(name, 0.0))

    def wait_flowing(self, acked: int, timeout_s: float = 90) -> dict[str, Any]:
        """Until ``acked`` messages are acknowledged and consumed (the consumer has joined)."""

        def flowing() -> dict[str, Any] | None:
            self.alive()
            s = self.status()
            return s if s and s["acked"] >= acked and s["consumed"] >= acked else None

        result = wait_until(flowing, timeout_s, f"{self.name}: {acked} messages round trip")
        assert result is not None
        return result

    def consumer_report(self, status: dict[str, Any] | None = None) -> str:
        """What the consumer last did, from a status (the latest by default), for a failure
        message: whether its thread lives, its assignment, its group and fetch metrics and
        when its fetch requests last advanced, when its last poll returned, the last
        record and the last poll error (how long before the status), the last rebalance
        callbacks and, when a poll has not returned for 5 s or a drain timed out, where
        the consume thread was."""
        s = status if status is not None else self.status()
        c = s.get("consumer")
        if not c:
            return f"{self.name}: no consumer status yet"
        now_ms = s["at_ms"]

        def ago(at_ms: int) -> str:
            return "never" if at_ms < 0 else f"{(now_ms - at_ms) / 1000:.1f} s before"

        error = c["last_poll_error"]
        last_error = "none"
        if error:
            last_error = f"{error['type'].rsplit('.', 1)[-1]}, {ago(error['at_ms'])}"
        lines = [
            f"{self.name} consumer at {'the end' if s.get('final') else 'the last status'}: "
            f"thread {'alive' if c['thread_alive'] else 'DEAD'}, assignment {c['assignment']}, "
            f"{c['polls']} polls, the last returned {ago(c['last_poll_at_ms'])}",
            f"  group and fetch metrics {c['group']}; fetch requests last advanced "
            f"{ago(c['last_fetch_at_ms'])}",
            f"  last record offset {c['last_offset']}, {ago(c['last_record_at_ms'])}",
            f"  last poll error {last_error}; poll errors {c['poll_errors']}",
            f"  rebalance callbacks (epoch ms) {c['rebalances']}",
        ]
        if c["stack"]:
            lines.append("  consume thread: " + " < ".join(c["stack"][:12]))
        return "\n".join(lines)

    def wait_recovered(
        self, acked: int, consumed: int, more: int = 50, timeout_s: float = 60
    ) -> dict[str, Any]:
        """Until ``more`` messages past ``acked`` are acknowledged and past ``consumed`` are
        consumed: the producer and the consumer both run again; on a timeout, the failure
        says what the consumer last did."""

        def recovered() -> dict[str, Any] | None:
            self.alive()
            s = self.status()
            return s if s["acked"] >= acked + more and s["consumed"] >= consumed + more else None

        try:
            return wait_until(recovered, timeout_s, f"{self.name}: {more} more messages round trip")
        except AssertionError as e:
            s = self.status()
            raise AssertionError(
                f"{e} (acked {acked} → {s['acked']}, consumed {consumed} → {s['consumed']})\n"
                f"{self.consumer_report(s)}"
            ) from None

    def stop(self, timeout_s: float = 120) -> dict[str, Any]:
        """Tell it to stop; its final status once it exited (status 0; it drains up to 60 s)."""
        self.tell("stop")
        code = self.proc.wait(timeout=timeout_s)
        assert code == 0, f"{self.name} exited {code}; stderr: {self.stderr()[-3000:]}"
        final = self.status()
        assert final.get("final") is True, final
        return final


@dataclass
class ApiKey:
    """A Confluent Cloud style API key: valid with its secret, belongs to a service account."""

    key: str
    secret: str
    service_account: str = "sa-kafka-app"


class Broker:
    """A running single-node KRaft broker; see the module docstring."""

    def __init__(self, workdir: Path, reauth_ms: int) -> None:
        self.workdir = workdir
        self.reauth_ms = reauth_ms
        self.keys_path = workdir / "api-keys.txt"
        self.auth_log_path = workdir / "auth-log.txt"
        self.log_path = workdir / "broker.log"
        self.port = free_port()
        self.internal_port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.internal = f"127.0.0.1:{self.internal_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin: JavaProgram | None = None
        self.started_in_s = 0.0
        self.set_keys([])

    def server_properties(self) -> str:
        client = "listener.name.client"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"CLIENT://127.0.0.1:{self.port},INTERNAL://127.0.0.1:{self.internal_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"CLIENT://{self.bootstrap},INTERNAL://{self.internal}",
            "listener.security.protocol.map": (
                "CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            f"{client}.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            f"{client}.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required;"
            ),
            f"{client}.plain.sasl.server.callback.handler.class": SERVER_HANDLER,
            f"{client}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # KIP-368: every client session must re-authenticate within this
            "connections.max.reauth.ms": str(self.reauth_ms),
            "principal.builder.class": (
                "dev.secretsync.testkit.broker.ServiceAccountPrincipalBuilder"
            ),
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def set_keys(self, keys: Sequence[ApiKey]) -> None:
        """Replace the set of valid API keys (atomically; the broker sees it at once)."""
        tmp = self.keys_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k.key} {k.secret} {k.service_account}\n" for k in keys))
        tmp.replace(self.keys_path)

    def first_authentications(self) -> dict[str, float]:
        """The wall-clock time (epoch seconds) each key or SCRAM user first authenticated."""
        firsts: dict[str, float] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.auth_log_path.read_text().splitlines():
                millis, _, who = line.partition(" ")
                firsts.setdefault(who, int(millis) / 1000)
        return firsts

    def start(self, classpath: Sequence[Path]) -> None:
        (self.workdir / "server.properties").write_text(self.server_properties())
        cp = os.pathsep.join(map(str, classpath))
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid does: "-…" reads as an option
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        started = time.monotonic()
        fmt = subprocess.run(
            [
                "java",
                *JVM_FLAGS,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.workdir / "server.properties"),
            ],
            capture_output=True,
            text=True,
            timeout=BROKER_START_TIMEOUT_S,
        )
        assert fmt.returncode == 0, f"kafka-storage format failed: {fmt.stdout}{fmt.stderr}"
        self.proc = _spawn(
            [
                "java",
                "-Xms256m",
                "-Xmx768m",
                *QUICK_JVM_FLAGS,
                f"-Dsecretsync.testkit.keys={self.keys_path}",
                f"-Dsecretsync.testkit.auth.log={self.auth_log_path}",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp",
                cp,
                "kafka.Kafka",
                str(self.workdir / "server.properties"),
            ],
            self.workdir / "broker.out",
            self.log_path,
            None,
        )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the broker exited ({self.proc.returncode}): "
                    f"{self.log_path.read_text(errors='replace')[-3000:]}"
                )
            return "Kafka Server started" in self.log_path.read_text(errors="replace")

        wait_until(up, BROKER_START_TIMEOUT_S, "the Kafka broker to start")
        self.started_in_s = time.monotonic() - started
        self.admin = JavaProgram(
            self.workdir,
            "operator",
            "dev.secretsync.testkit.broker.BrokerAdmin",
            [self.internal],
            classpath,
        )
        self._expect("ready", 0)

    def _expect(self, answer: str, after_lines: int) -> None:
        assert self.admin is not None

        def answered() -> str | None:
            assert self.admin is not None
            self.admin.alive()
            lines = self.admin.stdout().splitlines()
            return lines[after_lines] if len(lines) > after_lines else None

        got = wait_until(answered, 90, f"the operator client to answer {answer!r}")
        assert got == answer, f"operator: {got}"

    def _command(self, *words: str) -> None:
        assert self.admin is not None
        before = len(self.admin.stdout().splitlines())
        self.admin.tell(" ".join(words))
        self._expect("ok", before)

    def scram_set(self, user: str, password: str) -> None:
        """Create or change a SCRAM-SHA-512 user (``alterUserScramCredentials``)."""
        self._command("scram-set", user, password)

    def scram_delete(self, user: str) -> None:
        self._command("scram-delete", user)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        self._command("topic", name, str(partitions))

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.proc is not None:
            _kill_group(self.proc)


@contextlib.contextmanager
def running_broker(workdir: Path, reauth_ms: int = REAUTH_MS) -> Iterator[Broker]:
    """Build what is needed, start a broker in ``workdir``, stop it however the block ends."""
    require_maven()
    classpath = [
        *broker_classpath(),
        *java_jars(),
    ]
    broker = Broker(workdir, reauth_ms)
    try:
        broker.start(classpath)
        yield broker
    finally:
        broker.stop()


class SrProbe(JavaProgram):
    """``SrProbe``: a Schema Registry client calling its credential provider per request."""

    def __init__(self, workdir: Path, name: str, config: Path) -> None:
        self.status_path = workdir / f"{name}.status.json"
        super().__init__(
            workdir,
            name,
            "dev.secretsync.testkit.client.SrProbe",
            [str(config), str(self.status_path)],
            client_classpath(KAFKA_4),
        )

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_path.read_text()))
        except FileNotFoundError:
            return {}

    def stop(self, timeout_s: float = 60) -> dict[str, Any]:
        self.tell("stop")
        code = self.proc.wait(timeout=timeout_s)
        assert code == 0, f"{self.name} exited {code}; stderr: {self.stderr()[-3000:]}"
        final = self.status()
        assert final.get("final") is True, final
        return final


def resolve_class_paths() -> None:
    """Resolve (and cache) every class path the end-to-end tests use: the broker's and
    each client line's. ``make java-test`` runs it, so that this build step is done
    with the jars' build, not in the middle of a test run."""
    broker_classpath()
    for version in (KAFKA_4, KAFKA_3):
        client_classpath(version)


if __name__ == "__main__":
    resolve_class_paths()
