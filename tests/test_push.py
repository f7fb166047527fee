"""Push refresh against moto's SQS and SNS over HTTP, with Secrets Manager calls counted.

The daemon polls only every hour here, so a file that changes within seconds
changed because of a push message. Secrets Manager traffic goes through the
counting proxy; SQS/SNS traffic goes to moto directly.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import (
    KAFKA_ID,
    REGION,
    REPO,
    SR_ID,
    Daemon,
    Moto,
    example_config,
    free_port,
    kafka_secret,
    sr_secret,
    write_yaml,
)
from tests.support.faultproxy import FaultProxy
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


def push_counts(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    counts = {}
    for line in text.splitlines():
        if line.startswith("secretsync_push_messages_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


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
    source = (REPO / "daemon" / "secretsync" / "pushqueue.py").read_text()
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
