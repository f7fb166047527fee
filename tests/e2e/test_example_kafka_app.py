"""examples/java/KafkaApp.java, run as its README says, through a real key rotation.

A real ``secretsync run`` keeps the file; the example (a single source file on the class
path of secretsync-kafka and kafka-clients 4.4.0) runs against the session's broker while
the key rotates (both valid, AWSCURRENT moves, the old key deleted) and reports, from its
clients' own metrics, no failure and re-authentications, in one JVM.
"""

from __future__ import annotations

import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from secretsync.output.derive import jaas_config
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.kafka import KAFKA_4, ApiKey, Broker, JavaProgram, client_classpath
from tests.support.motoserver import Moto
from tests.support.paths import REPO
from tests.support.seeds import KAFKA_ID
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(900)

KAFKA_APP = REPO / "examples" / "java" / "KafkaApp.java"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
LINE = re.compile(
    r"sent=(\d+) acked=(\d+) failed=(\d+) consumed=(\d+) reauth=(\d+) auth-failed=(\d+)"
)


def report(app: JavaProgram) -> dict[str, int] | None:
    """The example's latest report line, as numbers."""
    app.alive()
    lines = [m for m in map(LINE.fullmatch, app.stdout().splitlines()) if m]
    if not lines:
        return None
    keys = ("sent", "acked", "failed", "consumed", "reauth", "auth_failed")
    return dict(zip(keys, map(int, lines[-1].groups()), strict=True))


def test_the_kafka_example_keeps_running_through_a_rotation(
    moto: Moto, tmp_path: Path, start_daemon: Any, kafka_broker: Broker, java_programs: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    old, new = ApiKey(f"EXOLD{run}", "old-secret-1"), ApiKey(f"EXNEW{run}", "new-secret-2")
    kafka_broker.set_keys([old])

    def secret(key: ApiKey) -> dict[str, str]:
        return {
            "sasl.jaas.config": jaas_config(PLAIN, key.key, key.secret),
            "bootstrap.servers": kafka_broker.bootstrap,
        }

    moto.create(KAFKA_ID, secret(old))
    out = tmp_path / "out" / "client.properties"
    data = example_config(tmp_path / "out", moto.url, poll={"interval": "500ms", "jitter": 0})
    data["outputs"] = [data["outputs"][0]]  # the example's own Kafka output, handler included
    data["outputs"][0]["static"]["security.protocol"] = "SASL_PLAINTEXT"
    data["outputs"][0]["static"]["secretsync.credentials.file"] = str(out)
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(out.exists, 30, "the file")
    topic = f"example-{run}"
    kafka_broker.create_topic(topic)

    app: JavaProgram = java_programs(
        JavaProgram, "kafka-app", str(KAFKA_APP), [str(out), topic], client_classpath(KAFKA_4)
    )
    wait_until(lambda: (r := report(app)) and r["consumed"] >= 20, 120, "messages round trip")

    kafka_broker.set_keys([old, new])
    moto.rotate(KAFKA_ID, secret(new))
    wait_until(lambda: new.key in out.read_text(), 30, "the rotated file")
    at_switch = report(app)
    assert at_switch is not None
    wait_until(lambda: (r := report(app)) and r["reauth"] >= at_switch["reauth"] + 3, 60, "reauth")
    kafka_broker.set_keys([new])  # the old key deleted
    at_delete = report(app)
    assert at_delete is not None
    wait_until(
        lambda: (
            (r := report(app))
            and r["reauth"] >= at_delete["reauth"] + 3
            and r["acked"] >= at_delete["acked"] + 100
        ),
        60,
        "the app running on the new key",
    )
    final = report(app)
    assert final is not None
    assert final["failed"] == 0 and final["auth_failed"] == 0, final
    assert app.stderr().count("secretsync: read SASL credentials from") >= 2, app.stderr()[-2000:]
    for value in (old.secret, new.secret, old.key, new.key):
        assert value not in app.stdout() + app.stderr()
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert app.stdout().splitlines()[-1] == "stopped"
    assert daemon.proc.poll() is None
