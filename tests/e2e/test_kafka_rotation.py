"""The proof: a rotated API key reaches running Java Kafka clients with no failed request.

moto (Secrets Manager) + ``secretsync run`` + a real Kafka broker + real JVMs running a
producer, a consumer in a group and an admin client, each built once from the file
secretsync writes. The rotation is staged as Confluent Cloud does it: a second key valid
beside the first, the secret's new version made AWSCURRENT, the file rewritten, a wait
longer than the broker's re-authentication interval, the old key deleted, and on.

With ``FileCredentialCallbackHandler`` (kafka-clients 4.4.0 and 3.9.2), the clients' own
metrics show no failed send, poll, admin call, authentication or re-authentication, and
re-authentications after the switch; every message produced is consumed; the JVM is the
same throughout. The negative control, the same program with the credentials only in
``sasl.jaas.config``, fails at its first re-authentication after the old key is deleted.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from secretsync.output.derive import jaas_config
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.kafka import (
    HANDLER,
    HANDLER_FILE_CONFIG,
    KAFKA_3,
    KAFKA_4,
    REAUTH_MS,
    ApiKey,
    Broker,
    Probe,
)
from tests.support.motoserver import Moto
from tests.support.seeds import KAFKA_ID
from tests.support.wait import wait_until

# a clean machine fetches the broker and the clients from Maven Central in the first test
pytestmark = pytest.mark.timeout(900)

# the old key's secret is the suite's canary (JAAS quoting: " and \); the new one has both too
OLD = ApiKey("CANARYKEY1", 'CANARY-pw-7f3a9c"\\quote')
NEW = ApiKey("ROTATEDKEY2", 'ROTATED-pw-"\\-5e61d0')
AUTH_FAILURES = ("failed-authentication-total", "failed-reauthentication-total")
REAUTHS = "successful-reauthentication-total"
CLIENTS = ("producer", "consumer", "admin")
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def kafka_config(tmp_path: Path, moto: Moto, broker: Broker) -> tuple[Path, Path, Path]:
    """sync.yaml with two outputs of one secret: with the handler, and without (the control)."""
    out = tmp_path / "out"
    with_handler = out / "client.properties"
    without = out / "jaas-only.properties"
    data = example_config(out, moto.url, poll={"interval": "500ms", "jitter": 0}, settle=0)
    secret = {"id": KAFKA_ID, "keys": ["sasl.jaas.config", "bootstrap.servers"]}
    static = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}
    data["outputs"] = [
        {
            "path": str(with_handler),
            "secrets": [secret],
            # the application loads this file as it is: the handler comes with it
            "static": {
                **static,
                "sasl.client.callback.handler.class": HANDLER,
                HANDLER_FILE_CONFIG: str(with_handler),
            },
        },
        {"path": str(without), "secrets": [secret], "static": static},
    ]
    return write_yaml(tmp_path / "sync.yaml", data), with_handler, without


def secret_for(key: ApiKey, broker: Broker) -> dict[str, str]:
    """A Terraform-made secret: a whole ``sasl.jaas.config`` line (quoted for JAAS)."""
    return {
        "sasl.jaas.config": jaas_config(PLAIN_MODULE, key.key, key.secret),
        "bootstrap.servers": broker.bootstrap,
    }


def reauths(probe: Probe, client: str) -> float:
    return probe.client_metric(client, REAUTHS)


def snapshot(probes: dict[str, Probe], after: float) -> dict[str, dict[str, float]]:
    """Each probe's re-authentications per client, from a status written after ``after``."""
    counts: dict[str, dict[str, float]] = {}
    for name, probe in probes.items():
        wait_until(
            lambda p=probe: p.alive() and p.status()["at_ms"] / 1000 > after,
            30,
            f"{name}: a status written after the change",
        )
        counts[name] = {c: reauths(probe, c) for c in CLIENTS}
    return counts


def assert_no_failure(probe: Probe, status: dict[str, Any]) -> None:
    """No failed request of any kind, from the program's results and the clients' metrics."""
    label = f"{probe.name} (kafka-clients {probe.kafka_version})"
    assert status["errors"] == [], f"{label}: {status['errors']}"
    assert status["failed_sends"] == 0, label
    assert status["failed_polls"] == 0, label
    assert status["admin_failed"] == 0, label
    for name in AUTH_FAILURES:
        assert probe.metric(name, status) == 0, f"{label}: {name} {status['metrics']}"


def test_a_rotated_key_reaches_running_kafka_clients_with_zero_failed_requests(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Any,
    kafka_broker: Broker,
    java_programs: Any,
) -> None:
    broker = kafka_broker
    broker.set_keys([OLD])
    moto.create(KAFKA_ID, secret_for(OLD, broker))
    config, with_handler, without = kafka_config(tmp_path, moto, broker)
    daemon: Daemon = start_daemon(config)
    wait_until(lambda: with_handler.exists() and without.exists(), 30, "the first files")

    run = uuid.uuid4().hex[:8]
    probes: dict[str, Probe] = {}
    for name, path, version in (
        ("handler-4x", with_handler, KAFKA_4),
        ("handler-3x", with_handler, KAFKA_3),
        ("jaas-only", without, KAFKA_4),
    ):
        topic = f"rotation-{name}-{run}"
        broker.create_topic(topic)
        probes[name] = java_programs(Probe, name, path, topic, version)
    handled = [probes["handler-4x"], probes["handler-3x"]]
    control = probes["jaas-only"]
    pids = {name: p.pid for name, p in probes.items()}
    for p in probes.values():
        p.wait_flowing(20)

    # 1. the new key is valid beside the old one; 2. it becomes AWSCURRENT
    broker.set_keys([OLD, NEW])
    moto.rotate(KAFKA_ID, secret_for(NEW, broker))
    wait_until(
        lambda: NEW.key in with_handler.read_text() and NEW.key in without.read_text(),
        30,
        "both files rewritten with the new key",
    )
    switched = time.time()
    at_switch = snapshot(probes, switched)

    # 3. longer than the re-authentication interval, and every client re-authenticated since
    def all_reauthenticated(since: dict[str, dict[str, float]], started: float) -> bool:
        if time.time() - started < REAUTH_MS / 1000 * 1.5:
            return False
        for p in probes.values():
            assert_no_failure(p, p.status())  # both keys are valid: nothing may fail
        return all(
            p.alive() and reauths(p, c) > since[name][c]
            for name, p in probes.items()
            for c in CLIENTS
        )

    wait_until(lambda: all_reauthenticated(at_switch, switched), 60, "re-authentications")

    # 4. the old key is deleted at the broker
    broker.set_keys([NEW])
    deleted = time.time()
    at_delete = snapshot(probes, deleted)
    acked_at_delete = {name: p.status()["acked"] for name, p in probes.items()}

    # the control fails at its first re-authentication: it still sends the old key
    def control_failed() -> bool:
        control.alive()
        return control.metric("failed-reauthentication-total") >= 1

    wait_until(control_failed, REAUTH_MS / 1000 * 4 + 30, "the control's re-authentication to fail")
    control_status = control.status()
    assert control.metric(REAUTHS, control_status) == sum(at_delete["jaas-only"].values()), (
        "the control re-authenticated with the deleted key"
    )
    control.close()  # it cannot drain: its clients are locked out

    # 5. run on: the handled clients re-authenticate (with the only valid key) and keep going
    def ran_on() -> bool:
        for p in handled:
            assert_no_failure(p, p.status())  # fail at once, with what failed
        return all(
            p.alive()
            and p.status()["acked"] >= acked_at_delete[p.name] + 100
            and all(reauths(p, c) > at_delete[p.name][c] for c in CLIENTS)
            for p in handled
        )

    wait_until(ran_on, REAUTH_MS / 1000 * 4 + 60, "the handled clients to run on the new key")

    for p in handled:
        final = p.stop()
        assert_no_failure(p, final)
        assert final["pid"] == pids[p.name] == p.pid, "not the same JVM"
        assert final["acked"] == final["sent"] > acked_at_delete[p.name], final
        assert final["missing"] == 0, f"{p.name}: messages produced but never consumed"
        assert final["consumed"] >= final["acked"], final
        for c in CLIENTS:
            assert final["metrics"][c][REAUTHS] > at_delete[p.name][c], (p.name, c)
        log = p.stderr()
        assert "secretsync: read SASL credentials from" in log, log[-2000:]
        for value in (OLD.secret, NEW.secret, OLD.key, NEW.key):
            assert value not in log + p.stdout(), f"{p.name} logged a credential"
    for secret in (OLD.secret, NEW.secret):
        assert secret not in daemon.log_path.read_text()
