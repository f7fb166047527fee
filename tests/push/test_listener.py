"""Push refresh against moto's SQS and SNS over HTTP, with Secrets Manager calls counted.

The daemon polls only every hour here, so a file that changes within seconds
changed because of a push message. Secrets Manager traffic goes through the
counting proxy; SQS/SNS traffic goes to moto directly.
"""

from __future__ import annotations

import collections
import json
import re
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
from prometheus_client.parser import text_string_to_metric_families

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.fakesqs import FloodingSqs
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto, free_port
from tests.support.paths import REPO
from tests.support.seeds import KAFKA_ID, REGION, SR_ID, kafka_secret, sr_secret
from tests.support.wait import wait_until

ACCOUNT = "123456789012"


def client(service: str, url: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=url)


def label_updated(arn: str) -> str:
    return json.dumps(
        {
            "detail-type": "Secret Label Updated",
            "source": "aws.secretsmanager",
            "account": ACCOUNT,
            "region": REGION,
            "resources": [arn],
            "detail": {"stagingLabels": ["AWSCURRENT"]},
        }
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape; empty while the daemon is not listening."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(port: int, name: str, **labels: str) -> float | None:
    return scrape(port).get((name, tuple(sorted(labels.items()))))


def push_counts(port: int) -> dict[str, float]:
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in scrape(port).items()
        if name == "secretsync_push_messages_total"
    }


def send_all(sqs: Any, queue: str, bodies: list[str]) -> None:
    """Send ``bodies`` in batches of ten (SQS's maximum)."""
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def config_with_push(
    tmp_path: Path, proxy: FaultProxy, moto: Moto, port: int, push: dict[str, Any]
) -> Path:
    data = example_config(
        tmp_path / "out",
        proxy.url,
        poll={"interval": "1h", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
        push={"endpoint_url": moto.url, "wait": "1s", **push},
    )
    return write_yaml(tmp_path / "sync.yaml", data)


def test_queue_events_check_our_secrets_now_and_cost_nothing_for_others(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    sqs = client("sqs", moto.url)
    queue = sqs.create_queue(QueueName="secretsync-test")["QueueUrl"]
    port = free_port()
    daemon: Daemon = start_daemon(
        config_with_push(tmp_path, proxy, moto, port, {"sqs_queue_url": queue})
    )
    kafka_file = tmp_path / "out" / "client.properties"
    wait_until(lambda: daemon.has_event("push_listening"), 30, "the listener")
    wait_until(kafka_file.exists, 30, "first sync")
    proxy.reset_counts()

    # another secret, and bodies that are no event at all: no Secrets Manager call
    other = kafka_arn.replace("kafka_cluster", "other_cluster")
    sqs.send_message(QueueUrl=queue, MessageBody=label_updated(other))
    sqs.send_message(QueueUrl=queue, MessageBody="CANARY-push-body not json")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"source": "aws.s3"}))
    wait_until(
        lambda: push_counts(port).get("ignored") == 1 and push_counts(port).get("invalid") == 2,
        30,
        "three messages handled",
    )
    assert (proxy.count("DescribeSecret"), proxy.count("GetSecretValue")) == (0, 0)

    # a rotation, announced by EventBridge straight to SQS: checked now, pinned fetch
    version = moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-pushed-1"))
    sqs.send_message(QueueUrl=queue, MessageBody=label_updated(kafka_arn))
    wait_until(lambda: b"CANARY-pushed-1" in kafka_file.read_bytes(), 30, "the pushed rotation")
    assert proxy.count("DescribeSecret") == 1  # only the secret the event named
    assert proxy.fetched_versions == [("GetSecretValue", version)]

    # the same through an SNS envelope (a topic without raw delivery)
    moto.rotate(SR_ID, sr_secret(secret="CANARY-pushed-2"))
    sr_arn = moto.client.describe_secret(SecretId=SR_ID)["ARN"]
    envelope = {"Type": "Notification", "Message": label_updated(sr_arn), "MessageId": "1"}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(envelope))
    sr_file = tmp_path / "out" / "schema-registry.properties"
    wait_until(lambda: b"CANARY-pushed-2" in sr_file.read_bytes(), 30, "the pushed SR rotation")

    assert push_counts(port) == {"matched": 2.0, "ignored": 1.0, "invalid": 2.0}
    last_message = sample(port, "secretsync_push_last_message_timestamp_seconds")
    assert last_message is not None and abs(last_message - time.time()) < 600
    wait_until(lambda: queue_depth(sqs, queue) == 0, 30, "every handled message deleted")
    assert daemon.proc.poll() is None
    log = daemon.log_path.read_text()
    assert "CANARY" not in log and "Traceback" not in log  # no bodies, no values
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert sqs.get_queue_url(QueueName="secretsync-test")["QueueUrl"]  # not ours to delete


def test_a_topic_gets_a_queue_of_our_own_that_a_clean_stop_removes(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    sns, sqs = client("sns", moto.url), client("sqs", moto.url)
    topic = sns.create_topic(Name="secret-events")["TopicArn"]
    port = free_port()
    daemon: Daemon = start_daemon(
        config_with_push(tmp_path, proxy, moto, port, {"sns_topic_arn": topic})
    )
    wait_until(lambda: daemon.has_event("push_listening", own_queue=True), 30, "the own queue")
    queues = sqs.list_queues(QueueNamePrefix="secretsync-").get("QueueUrls", [])
    assert len(queues) == 1
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert len(subscriptions) == 1
    attrs = sns.get_subscription_attributes(SubscriptionArn=subscriptions[0]["SubscriptionArn"])
    assert attrs["Attributes"]["RawMessageDelivery"] == "true"

    kafka_file = tmp_path / "out" / "client.properties"
    wait_until(kafka_file.exists, 30, "first sync")
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-via-topic"))
    sns.publish(TopicArn=topic, Message=label_updated(kafka_arn))
    wait_until(lambda: b"CANARY-via-topic" in kafka_file.read_bytes(), 30, "the rotation")

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=20) == 0
    assert sqs.list_queues(QueueNamePrefix="secretsync-").get("QueueUrls", []) == []
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


@pytest.mark.slow
def test_the_shipped_eventbridge_template_lints_clean() -> None:
    template = REPO / "packaging" / "push" / "eventbridge-sns.yaml"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(template)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_push_policy_allows_every_call_the_daemon_makes() -> None:
    source = (REPO / "daemon" / "secretsync" / "push" / "sqs.py").read_text()
    calls = set(re.findall(r"self\._(sqs|sns)\.([a-z_]+)\(", source))
    wanted = {f"{service}:{''.join(w.title() for w in op.split('_'))}" for service, op in calls}
    # DeleteMessageBatch is authorised by sqs:DeleteMessage
    wanted = {"sqs:DeleteMessage" if a == "sqs:DeleteMessageBatch" else a for a in wanted}
    policy = json.loads((REPO / "packaging" / "iam" / "secretsync-push-policy.json").read_text())
    allowed = {
        a
        for st in policy["Statement"]
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert wanted - {"sqs:TagQueue"} <= allowed, wanted - allowed
    assert "sqs:CreateQueue" in wanted and "sns:Subscribe" in wanted  # the test reads real calls


def start_on_a_queue(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any, **config: Any
) -> tuple[Daemon, Any, str, int]:
    """A daemon reading a queue of its own (``sqs_queue_url``), first sync done."""
    sqs = client("sqs", moto.url)
    queue = sqs.create_queue(QueueName="secretsync-test")["QueueUrl"]
    port = free_port()
    data = example_config(
        tmp_path / "out",
        proxy.url,
        poll={"interval": "1h", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
        push={"endpoint_url": moto.url, "wait": "1s", "sqs_queue_url": queue},
        **config,
    )
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(lambda: daemon.has_event("push_listening"), 30, "the listener")
    wait_until(lambda: sample(port, "secretsync_ready") == 1, 60, "first sync")
    return daemon, sqs, queue, port


def test_a_poison_message_is_invalid_deleted_and_costs_the_listener_nothing(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    daemon, sqs, queue, port = start_on_a_queue(moto, proxy, tmp_path, start_daemon)
    poison = ["[" * 2000, "{" * 2000, json.dumps({"Type": "Notification", "Message": "[" * 5000})]
    send_all(sqs, queue, poison)
    wait_until(lambda: push_counts(port).get("invalid") == 3, 30, "three invalid messages")
    wait_until(lambda: queue_depth(sqs, queue) == 0, 30, "the poison deleted")
    # the listener carries on: a rotation announced next is applied
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-poison"))
    sqs.send_message(QueueUrl=queue, MessageBody=label_updated(kafka_arn))
    kafka_file = tmp_path / "out" / "client.properties"
    wait_until(lambda: b"CANARY-after-poison" in kafka_file.read_bytes(), 30, "the rotation")
    assert sample(port, "secretsync_task_restarts_total", task="push") in (None, 0.0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert not daemon.has_event("task_failed")
    assert "CANARY" not in daemon.log_path.read_text()
    assert daemon.stop() < 10 and daemon.proc.returncode == 0


@pytest.fixture
def flooding_sqs() -> Iterator[FloodingSqs]:
    fake = FloodingSqs().start()
    try:
        yield fake
    finally:
        fake.stop()


def start_on_a_flooding_queue(
    proxy: FaultProxy, tmp_path: Path, start_daemon: Any, fake: FloodingSqs
) -> tuple[Daemon, int]:
    port = free_port()
    data = example_config(
        tmp_path / "out",
        proxy.url,
        poll={"interval": "1h", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
        push={"endpoint_url": fake.url, "wait": "1s", "sqs_queue_url": fake.queue_url},
    )
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(lambda: daemon.has_event("push_listening"), 30, "the listener")
    wait_until(lambda: sample(port, "secretsync_ready") == 1, 60, "first sync")
    return daemon, port


FLOOD_S = 6.0  # long enough for hundreds of batches; the old code checked on each


def test_a_flood_of_events_for_one_secret_is_coalesced_into_a_few_checks(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any, flooding_sqs: FloodingSqs
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    daemon, port = start_on_a_flooding_queue(proxy, tmp_path, start_daemon, flooding_sqs)
    lines_before = len(daemon.events())
    proxy.reset_counts()
    # valid events for one managed secret, as fast as the queue delivers, for FLOOD_S
    flooding_sqs.flood(label_updated(kafka_arn), FLOOD_S)
    wait_until(lambda: flooding_sqs.counts()[0] >= 100, 30, "the flood to be read")
    # a rotation in the middle of the flood is still applied (a trailing check)
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-mid-flood"))
    wait_until(lambda: not flooding_sqs.flooding(), FLOOD_S + 10, "the flood's end")
    served, _ = flooding_sqs.counts()
    wait_until(lambda: flooding_sqs.counts()[1] == served, 30, "every message deleted")
    kafka_file = tmp_path / "out" / "client.properties"
    wait_until(lambda: b"CANARY-mid-flood" in kafka_file.read_bytes(), 60, "the rotation")
    assert push_counts(port).get("matched") == served
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    # before: a check (DescribeSecret) and a log line or two for every batch of ten
    checks = proxy.count("DescribeSecret")
    assert served >= 200 and checks <= 12, (served, checks)
    lines = daemon.events()[lines_before:]
    assert len(lines) <= 60, collections.Counter(e.get("event") for e in lines)
    assert sum(1 for e in lines if e.get("event") == "push_summary") >= 1
    assert "CANARY" not in daemon.log_path.read_text()


def test_a_flood_during_throttling_waits_for_the_backoff(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any, flooding_sqs: FloodingSqs
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    daemon, port = start_on_a_flooding_queue(proxy, tmp_path, start_daemon, flooding_sqs)
    proxy.fault = "throttle"
    flooding_sqs.flood(label_updated(kafka_arn), FLOOD_S)
    wait_until(lambda: daemon.has_event("secret_check_failed"), 30, "a throttled check")
    wait_until(lambda: not flooding_sqs.flooding(), FLOOD_S + 10, "the flood's end")
    served, _ = flooding_sqs.counts()
    wait_until(lambda: push_counts(port).get("matched") == served, 30, "every message handled")
    attempts = proxy.count("DescribeSecret")
    proxy.fault = "none"
    # before: the flood started check after check (three attempts each) whatever the
    # backoff said; now the backoff's retries (and a few hints between) are all
    assert served >= 200 and attempts <= 30, (served, attempts)
    assert daemon.stop() < 10 and daemon.proc.returncode == 0


def test_huge_events_naming_thousands_of_secrets_cost_little(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    ids = [f"team/s{n}" for n in range(100)]
    for n, secret_id in enumerate(ids):
        moto.create(secret_id, f"CANARY-value-{n}")
    outputs = [
        {
            "path": str(tmp_path / "out" / "many.env"),
            "format": "env",
            "secrets": [{"id": sid, "as": f"K{n}"} for n, sid in enumerate(ids)],
        }
    ]
    daemon, sqs, queue, port = start_on_a_queue(
        moto, proxy, tmp_path, start_daemon, outputs=outputs
    )
    names = [f"s{n}" for n in range(25_500)]  # about 250 KB of names, none of ours
    huge = json.dumps({"source": "aws.secretsmanager", "resources": names, "detail": {}})
    assert 240_000 < len(huge) <= 256 * 1024
    cpu_before = sample(port, "process_cpu_seconds_total")
    assert cpu_before is not None
    for _ in range(20):
        sqs.send_message(QueueUrl=queue, MessageBody=huge)
    wait_until(lambda: push_counts(port).get("ignored") == 20, 120, "20 huge messages")
    cpu_used = (sample(port, "process_cpu_seconds_total") or 0.0) - cpu_before
    # before: about 0.5 CPU-s per message at 100 secrets (25,500 × 100 comparisons)
    assert cpu_used < 3.0, cpu_used
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
