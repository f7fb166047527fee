"""Rotation → first successful authentication with the new key, at a real Kafka broker.

The broker of the end-to-end tests (tests/support/kafka.py: KRaft 4.4.0, PLAIN API keys the
bench changes at run time, ``connections.max.reauth.ms`` 3 s) and a JVM with a producer, a
consumer and an admin client built once from the file secretsync writes, through
secretsync-kafka's callback handler. Each rotation adds a key at the broker, puts it in the
secret as the new AWSCURRENT version and measures the time until the broker first sees that
key authenticate (its principal builder records it), then deletes the old key. Polling (a
2 s interval) and push (an SQS message right after the rotation, a 10-minute interval).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.support.configs import example_config, write_yaml
from tests.support.kafka import HANDLER, HANDLER_FILE_CONFIG, KAFKA_4, ApiKey, Probe, running_broker

from bench.harness import percentile, secrets_client, wait_for

REAUTH_MS = 3000
POLL_INTERVAL_S = 2.0
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def _jaas(key: ApiKey) -> str:
    from secretsync.output.derive import jaas_config  # noqa: PLC0415 (the product's own quoting)

    return jaas_config(PLAIN, key.key, key.secret)


def first_auth_latencies(
    url: str,
    work: Path,
    rotations: int,
    daemon: Callable[[Path, Path], AbstractContextManager[Any]],
) -> tuple[list[float], list[float], float]:
    """(polling latencies, push latencies, broker start seconds) over ``rotations`` each."""
    import boto3  # noqa: PLC0415

    client = secrets_client(url)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
    queue = sqs.create_queue(QueueName="secretsync-bench-auth")["QueueUrl"]
    results: dict[str, list[float]] = {"polling": [], "push": []}
    (work / "kafka").mkdir()
    with running_broker(work / "kafka", reauth_ms=REAUTH_MS) as broker:
        for mode in ("polling", "push"):
            secret_id = f"bench/kafka-auth/{mode}"
            keys = [ApiKey(f"BENCH{mode.upper()}0", "bench-secret-0")]
            broker.set_keys(keys)
            value = {"sasl.jaas.config": _jaas(keys[0]), "bootstrap.servers": broker.bootstrap}
            arn = client.create_secret(Name=secret_id, SecretString=json.dumps(value))["ARN"]
            out = work / f"out-auth-{mode}" / "client.properties"
            overrides: dict[str, Any] = {"poll": {"interval": f"{POLL_INTERVAL_S}s", "jitter": 0}}
            if mode == "push":
                overrides = {
                    "poll": {"interval": "10m", "jitter": 0},
                    "push": {"sqs_queue_url": queue, "endpoint_url": url, "wait": "20s"},
                }
            data = example_config(out.parent, url, **overrides)
            data["outputs"] = [
                {
                    "path": str(out),
                    "secrets": [
                        {"id": secret_id, "keys": ["sasl.jaas.config", "bootstrap.servers"]}
                    ],
                    "static": {
                        "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "PLAIN",
                        "sasl.client.callback.handler.class": HANDLER,
                        HANDLER_FILE_CONFIG: str(out),
                    },
                }
            ]
            cfg = write_yaml(work / f"auth-{mode}.yaml", data)
            log = work / f"auth-{mode}.log"
            with daemon(cfg, log):
                wait_for(out.exists, 60, "the file")
                topic = f"bench-auth-{mode}"
                broker.create_topic(topic)
                probe = Probe(work, f"bench-{mode}", out, topic, KAFKA_4)
                try:
                    wait_for(lambda p=probe: p.status().get("consumed", 0) >= 20, 120, "the app")
                    if mode == "push":
                        wait_for(lambda lg=log: b"push_listening" in lg.read_bytes(), 60, "push")
                    for n in range(1, rotations + 1):
                        new = ApiKey(f"BENCH{mode.upper()}{n}", f"bench-secret-{n}")
                        broker.set_keys([keys[-1], new])  # two active keys
                        keys.append(new)
                        value = {
                            "sasl.jaas.config": _jaas(new),
                            "bootstrap.servers": broker.bootstrap,
                        }
                        moved = time.time()
                        client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))
                        if mode == "push":
                            sqs.send_message(QueueUrl=queue, MessageBody=_event(arn))
                        wait_for(
                            lambda k=new.key: k in broker.first_authentications(), 60, "new key"
                        )
                        results[mode].append(broker.first_authentications()[new.key] - moved)
                        broker.set_keys([new])  # the old key deleted
                        # the next rotation lands anywhere in the re-authentication cycle
                        time.sleep(REAUTH_MS / 1000 * (n % 3) / 3)
                    status = probe.status()
                    assert status["failed_sends"] == 0 and status["errors"] == [], status
                finally:
                    probe.close()
        return results["polling"], results["push"], broker.started_in_s


def _event(arn: str) -> str:
    return json.dumps(
        {
            "source": "aws.secretsmanager",
            "detail-type": "Secret Label Updated",
            "resources": [arn],
            "detail": {},
        }
    )


def summary(latencies: list[float]) -> str:
    return f"p50 {percentile(latencies, 0.5):.2f} s, p99 {percentile(latencies, 0.99):.2f} s"
