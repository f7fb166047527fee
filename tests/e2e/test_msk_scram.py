"""Amazon MSK's SASL/SCRAM model, measured: one password per user leaves a window.

A SCRAM user has one password. When the rotation changes it at the broker (here with the
admin client's ``alterUserScramCredentials``, the moment the new secret version becomes
AWSCURRENT), every authentication until the file catches up (new connections and
re-authentications alike) still sends the old password and fails. The test measures that
window, from the broker's change to the rewritten file, with polling (a 2 s interval) and
with push refresh (an EventBridge event through SQS, a 10-minute poll interval), and what
the running client saw: the failures are confined to the window, and the same JVM carries
on with the new password (FileCredentialCallbackHandler, SCRAM-SHA-512) without a restart,
its producer and its consumer (with the cooperative assignor docs/rotation.md recommends)
both.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.kafka import HANDLER, HANDLER_FILE_CONFIG, KAFKA_4, Broker, Probe
from tests.support.motoserver import Moto
from tests.support.seeds import REGION
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(900)  # a clean machine fetches the client jars first

ROTATIONS = 3
POLL_INTERVAL_S = 2.0
FAILURES = ("failed-authentication-total", "failed-reauthentication-total")
# The consumer docs/rotation.md recommends for MSK SCRAM. With the default eager assignor
# (RangeAssignor) and auto-commit, kafka-clients' classic consumer marks its partitions
# "pending revocation" (no fetching) before the commit that precedes a rebalance; when an
# authentication of the window fails during that commit, the rebalance goes on without
# revoking them and hands them back with the mark still set: the consumer stays in the
# group, assigned, and fetches nothing until a later rebalance (3 runs in 8 under load,
# fatal in 1). The cooperative protocol marks nothing.
CONSUMER = {
    "partition.assignment.strategy": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
}


@dataclass
class Rig:
    """One application, its SCRAM user, its secret and the daemon that keeps its file."""

    mode: str
    user: str
    secret_id: str
    out: Path
    daemon: Daemon
    probe: Probe
    windows: list[float] = field(default_factory=list)
    failed_auths: list[float] = field(default_factory=list)
    failed_sends: list[int] = field(default_factory=list)

    def auth_failures(self) -> float:
        return sum(self.probe.metric(name) for name in FAILURES)


def event_for(arn: str) -> str:
    """Secrets Manager's "Secret Label Updated" event, as EventBridge delivers it to SQS."""
    return json.dumps(
        {
            "detail-type": "Secret Label Updated",
            "source": "aws.secretsmanager",
            "resources": [arn],
            "detail": {"stagingLabels": ["AWSCURRENT"]},
        }
    )


def test_the_scram_window_is_measured_and_the_client_recovers_without_a_restart(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Any,
    kafka_broker: Broker,
    java_programs: Any,
) -> None:
    broker = kafka_broker
    run = uuid.uuid4().hex[:8]
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto.url)
    queue = sqs.create_queue(QueueName=f"secretsync-msk-{run}")["QueueUrl"]

    rigs: list[Rig] = []
    for mode in ("polling", "push"):
        user, secret_id = f"msk-{mode}-{run}", f"AmazonMSK_{mode}-{run}"
        broker.scram_set(user, "password-0")
        moto.create(secret_id, {"username": user, "password": "password-0"})
        out = tmp_path / mode / "msk.properties"
        overrides: dict[str, Any] = {"poll": {"interval": f"{POLL_INTERVAL_S}s", "jitter": 0}}
        if mode == "push":
            overrides = {
                "poll": {"interval": "10m", "jitter": 0},
                "push": {"sqs_queue_url": queue, "endpoint_url": moto.url, "wait": "1s"},
            }
        data = example_config(tmp_path / mode, moto.url, **overrides)
        data["outputs"] = [
            {
                "path": str(out),
                "secrets": [{"id": secret_id, "keys": []}],
                "static": {
                    "bootstrap.servers": broker.bootstrap,
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.client.callback.handler.class": HANDLER,
                    HANDLER_FILE_CONFIG: str(out),
                },
                "sasl": {"mechanism": "SCRAM-SHA-512", "secret": secret_id},
            }
        ]
        daemon: Daemon = start_daemon(write_yaml(tmp_path / f"{mode}.yaml", data), "--no-watch")
        wait_until(out.exists, 30, f"{mode}: the first file")
        if mode == "push":
            wait_until(lambda d=daemon: d.has_event("push_listening"), 30, "the push listener")
        topic = f"msk-{mode}-{run}"
        broker.create_topic(topic)
        probe: Probe = java_programs(Probe, f"msk-{mode}", out, topic, KAFKA_4, CONSUMER)
        rigs.append(Rig(mode, user, secret_id, out, daemon, probe))
    for rig in rigs:
        rig.probe.wait_flowing(20)

    arns = {rig.mode: moto.client.describe_secret(SecretId=rig.secret_id)["ARN"] for rig in rigs}
    for n in range(1, ROTATIONS + 1):
        for rig in rigs:
            before = rig.probe.status()
            failed_before = rig.auth_failures()
            password = f"password-{n}"
            # the broker's password and the secret's AWSCURRENT change at the same moment
            changed = time.monotonic()
            broker.scram_set(rig.user, password)
            moto.rotate(rig.secret_id, {"username": rig.user, "password": password})
            if rig.mode == "push":
                sqs.send_message(QueueUrl=queue, MessageBody=event_for(arns["push"]))
            wait_until(
                lambda r=rig, pw=password: pw in r.out.read_text(), 60, f"{rig.mode}: the file"
            )
            rig.windows.append(time.monotonic() - changed)
            # the same JVM carries on with the new password: messages flow again, both ways
            at_file = rig.probe.status()
            after = rig.probe.wait_recovered(at_file["acked"], at_file["consumed"])
            rig.failed_auths.append(rig.auth_failures() - failed_before)
            rig.failed_sends.append(after["failed_sends"] - before["failed_sends"])

    for rig in rigs:
        final = rig.probe.stop()
        assert final["pid"] == rig.probe.pid, "not the same JVM"
        assert final["missing"] == 0, (
            f"{rig.mode}: {final['missing']} acknowledged messages never consumed (the first "
            f"{final['first_missing']}, the last consumed {final['last_consumed']})\n"
            + rig.probe.consumer_report(final)
        )
        print(
            f"\nSCRAM window, {rig.mode}: "
            f"{', '.join(f'{w:.2f}' for w in rig.windows)} s "
            f"(median {statistics.median(rig.windows):.2f} s); failed authentications per "
            f"rotation {rig.failed_auths}; failed sends per rotation {rig.failed_sends}"
        )
    polling, push = rigs
    # loose bounds (a loaded CI machine): the window is the time secretsync needs to notice
    assert max(polling.windows) <= POLL_INTERVAL_S + 15, polling.windows
    assert max(push.windows) <= 15, push.windows
    assert all(rig.daemon.proc.poll() is None for rig in rigs)
