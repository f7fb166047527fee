"""The queue of our own in topic mode, against moto's SQS and SNS over HTTP: its name and
the shipped IAM policy, its lease and the removal of stale ones, its replacement when it is
deleted under the daemon, and push failures counted for real (a fault proxy answering
AccessDenied, queues deleted with boto3, daemons killed with SIGKILL).
"""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from parliament import analyze_policy_string, iam_definition

from secretsync.push.sqs import (
    TAG_EXPIRES,
    TAG_IDENTITY,
    TAG_TOPIC,
    derive_identity,
    ecs_task_family,
    is_stale,
    name_part,
    own_queue_name,
)
from tests.push.test_listener import ACCOUNT, client, label_updated, sample
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto, free_port
from tests.support.paths import REPO
from tests.support.seeds import KAFKA_ID, REGION, kafka_secret
from tests.support.wait import wait_until

TOPIC_NAME = "secretsmanager-events"  # the topic of the shipped policy
POLICY = REPO / "packaging" / "iam" / "secretsync-push-policy.json"
SNS_OPERATIONS = {"Subscribe", "Unsubscribe", "ListSubscriptionsByTopic", "Publish"}


def topic_config(
    tmp_path: Path, name: str, sm_url: str, push_url: str, port: int, topic: str, **push: Any
) -> Path:
    data = example_config(
        tmp_path / name,
        sm_url,
        poll={"interval": "1h", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
        push={"endpoint_url": push_url, "wait": "1s", "sns_topic_arn": topic, **push},
    )
    return write_yaml(tmp_path / f"{name}.yaml", data)


def own_queues(sqs: Any) -> list[str]:
    return sorted(sqs.list_queues(QueueNamePrefix="secretsync-").get("QueueUrls", []))


def subscriptions(sns: Any, topic: str) -> list[dict[str, Any]]:
    return list(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"])


def listening_queue(daemon: Daemon) -> str:
    """The name of the queue the daemon listens on (its last push_listening line)."""
    for event in reversed(daemon.events()):
        if event.get("event") == "push_listening":
            return str(event["queue"])
    raise AssertionError("not listening")


# -- names, identity, staleness (no AWS) -----------------------------------------------------


def test_queue_names_are_safe_for_sqs_and_start_with_the_identity() -> None:
    for identity in ("kafka-app", "ip-10-0-1-23.ec2.internal", "x" * 300, "a/b:c", "---"):
        name = own_queue_name(identity)
        assert name.startswith("secretsync-") and len(name) <= 80
        assert all(c.isalnum() or c in "-_" for c in name), name
    assert own_queue_name("kafka-app").startswith("secretsync-kafka-app-")
    assert name_part("ip-10-0-1-23.ec2.internal") == "ip-10-0-1-23-ec2-internal"
    assert own_queue_name("kafka-app") != own_queue_name("kafka-app")


def test_only_an_expired_lease_of_our_identity_and_topic_is_stale() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"
    tags = {TAG_IDENTITY: "kafka-app", TAG_TOPIC: topic, TAG_EXPIRES: "1000"}
    assert is_stale(tags, identity="kafka-app", topic_arn=topic, now=1001)
    assert not is_stale(tags, identity="kafka-app", topic_arn=topic, now=999)  # alive
    assert not is_stale(tags, identity="kafka-app-2", topic_arn=topic, now=1001)  # not ours
    assert not is_stale(tags, identity="kafka-app", topic_arn=topic + "-2", now=1001)
    for broken in ({**tags, TAG_EXPIRES: "soon"}, {TAG_IDENTITY: "kafka-app", TAG_TOPIC: topic}):
        assert not is_stale(broken, identity="kafka-app", topic_arn=topic, now=1e12)


class EcsMetadata:
    """The ECS task metadata endpoint (v4) on loopback: ``/v4/<id>/task``."""

    def __init__(self, status: int = 200, family: str = "kafka-app") -> None:
        task = {
            "Cluster": "prod",
            "TaskARN": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod/0123456789abcdef",
            "Family": family,
        }
        body, code = json.dumps(task).encode(), status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == "/v4/c0ffee/task"
                self.send_response(code if found else 404)
                self.end_headers()
                self.wfile.write(body if found else b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v4/c0ffee"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ecs_metadata() -> Iterator[EcsMetadata]:
    endpoint = EcsMetadata()
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.mark.slow
async def test_the_identity_is_the_ecs_task_family_else_the_host_name(
    ecs_metadata: EcsMetadata,
) -> None:
    env = {"ECS_CONTAINER_METADATA_URI_V4": ecs_metadata.uri}
    assert await ecs_task_family(ecs_metadata.uri) == "kafka-app"
    assert await derive_identity(env) == "kafka-app"
    host = await derive_identity({})
    assert host and host == await derive_identity({"ECS_CONTAINER_METADATA_URI_V4": ""})
    broken = EcsMetadata(status=500)
    try:
        assert await derive_identity({"ECS_CONTAINER_METADATA_URI_V4": broken.uri}) == host
    finally:
        broken.close()
    closed = f"http://127.0.0.1:{free_port()}/v4/c0ffee"  # nothing listens
    assert await derive_identity({"ECS_CONTAINER_METADATA_URI_V4": closed}) == host


# -- the daemon against moto -------------------------------------------------------------------


def test_a_queue_deleted_under_the_daemon_is_replaced_and_its_subscription_removed(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    sns, sqs = client("sns", moto.url), client("sqs", moto.url)
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    port = free_port()
    daemon: Daemon = start_daemon(topic_config(tmp_path, "a", proxy.url, moto.url, port, topic))
    wait_until(lambda: daemon.has_event("push_listening", own_queue=True), 30, "the own queue")
    (first,) = own_queues(sqs)
    attrs = sqs.get_queue_attributes(QueueUrl=first, AttributeNames=["MessageRetentionPeriod"])
    assert attrs["Attributes"]["MessageRetentionPeriod"] == "900"  # short retention
    assert sample(port, "secretsync_push_errors_total", reason="not_found") == 0

    sqs.delete_queue(QueueUrl=first)
    wait_until(lambda: daemon.has_event("push_queue_replaced"), 60, "a new queue")
    (second,) = own_queues(sqs)
    assert second != first
    queue_arn = sqs.get_queue_attributes(QueueUrl=second, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert [s["Endpoint"] for s in subscriptions(sns, topic)] == [queue_arn]  # the dead one gone
    assert (sample(port, "secretsync_push_errors_total", reason="not_found") or 0) >= 1

    kafka_file = tmp_path / "a" / "client.properties"
    wait_until(kafka_file.exists, 30, "first sync")
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-replace"))
    sns.publish(TopicArn=topic, Message=label_updated(kafka_arn))
    wait_until(lambda: b"CANARY-after-replace" in kafka_file.read_bytes(), 30, "the rotation")
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert own_queues(sqs) == [] and subscriptions(sns, topic) == []


def test_access_denied_on_subscribe_and_on_receive_is_counted_and_survived(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_arn = moto.client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    sns = client("sns", moto.url)
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue_proxy = FaultProxy(moto.url).start()  # SQS and SNS go through this one
    try:
        queue_proxy.faults_by_operation = {"Subscribe": "denied"}
        port = free_port()
        config = topic_config(tmp_path, "a", proxy.url, queue_proxy.url, port, topic)
        # the retries double from 0.1 s instead of 1 s: the same schedule, compressed
        daemon: Daemon = start_daemon(config, env={"SECRETSYNC_RETRY_BASE": "100ms"})

        def denied() -> float:
            return sample(port, "secretsync_push_errors_total", reason="access_denied") or 0.0

        wait_until(lambda: denied() >= 3, 60, "three denied set-ups counted")
        assert daemon.has_event("push_setup_failed", reason="access_denied")
        first_retry = next(e for e in daemon.events() if e.get("event") == "push_setup_failed")
        assert first_retry["retry_in_s"] <= 0.2  # base · 2 after one failure
        # a failed set-up removes the queue it made: three failures leave at most the
        # queue of the attempt in flight (the retries come fast, so one may be)
        assert len(sqs_queues(moto)) <= 1
        queue_proxy.faults_by_operation = {}
        wait_until(lambda: daemon.has_event("push_listening", own_queue=True), 90, "set up")

        before = denied()
        queue_proxy.faults_by_operation = {"ReceiveMessage": "denied"}
        wait_until(lambda: denied() >= before + 2, 60, "two denied receives counted")
        assert daemon.has_event("push_failed", reason="access_denied")

        # the queue deleted while Subscribe is denied: no unsubscribed queue is kept
        before = denied()
        queue_proxy.faults_by_operation = {"Subscribe": "denied"}
        (queue,) = sqs_queues(moto)
        client("sqs", moto.url).delete_queue(QueueUrl=queue)
        wait_until(lambda: denied() >= before + 3, 60, "three denied replacements counted")
        assert len(sqs_queues(moto)) <= 1
        queue_proxy.faults_by_operation = {}
        wait_until(lambda: daemon.has_event("push_queue_replaced"), 90, "a new queue")
        assert len(sqs_queues(moto)) == 1 and len(sns.list_subscriptions()["Subscriptions"]) == 1

        kafka_file = tmp_path / "a" / "client.properties"
        wait_until(kafka_file.exists, 30, "first sync")
        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-denied"))
        sns.publish(TopicArn=topic, Message=label_updated(kafka_arn))
        wait_until(lambda: b"CANARY-after-denied" in kafka_file.read_bytes(), 90, "the rotation")
        assert sample(port, "secretsync_task_restarts_total", task="push") in (None, 0.0)
        assert daemon.stop() < 10 and daemon.proc.returncode == 0
        assert "CANARY" not in daemon.log_path.read_text()
    finally:
        queue_proxy.stop()


def sqs_queues(moto: Moto) -> list[str]:
    return own_queues(client("sqs", moto.url))


KILLED_STARTS = 6  # each leaves a queue and a subscription behind


@pytest.mark.timeout(900)
def test_sigkilled_starts_leave_nothing_behind_and_a_live_twin_is_never_touched(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    sns, sqs = client("sns", moto.url), client("sqs", moto.url)
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    push = {"identity": "kafka-app", "heartbeat": "1s"}  # a 3 s lease: compressed time
    twin_port = free_port()
    twin: Daemon = start_daemon(
        topic_config(tmp_path, "twin", proxy.url, moto.url, twin_port, topic, **push)
    )
    wait_until(lambda: twin.has_event("push_listening", own_queue=True), 30, "the twin")
    twin_queue = listening_queue(twin)

    config = topic_config(tmp_path, "a", proxy.url, moto.url, free_port(), topic, **push)
    for n in range(KILLED_STARTS):
        daemon: Daemon = start_daemon(config)
        wait_until(lambda d=daemon: d.has_event("push_listening", own_queue=True), 60, f"#{n}")
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)
    last: Daemon = start_daemon(config)
    wait_until(lambda: last.has_event("push_listening", own_queue=True), 60, "the last start")
    names = {twin_queue, listening_queue(last)}

    def left() -> tuple[set[str], int]:
        return {u.rsplit("/", 1)[1] for u in own_queues(sqs)}, len(subscriptions(sns, topic))

    wait_until(lambda: left() == (names, 2), 120, "the killed starts' queues removed")
    assert last.has_event("push_stale_removed") or twin.has_event("push_stale_removed")
    # the live twin shares the identity, and kept its queue all along
    assert not twin.has_event("push_queue_replaced") and listening_queue(twin) == twin_queue
    assert twin.proc.poll() is None and last.proc.poll() is None
    for d in (last, twin):
        assert d.stop() < 10 and d.proc.returncode == 0
    assert left() == (set(), 0)


# -- the shipped policy, evaluated against what the daemon really asks for ------------------


def iam_privileges() -> dict[str, list[str]]:
    """``service:Action`` → its resource types (``queue*``, ``topic``, "" for none), from
    parliament's copy of the IAM service authorization reference."""
    return {
        f"{service['prefix']}:{p['privilege']}": [r["resource_type"] for r in p["resource_types"]]
        for service in iam_definition
        if service["prefix"] in {"sqs", "sns"}
        for p in service["privileges"]
    }


def authorized_request(operation: str, params: dict[str, Any]) -> tuple[str, str]:
    """(IAM action, resource ARN) that AWS authorizes an SQS/SNS request as."""
    service = "sns" if operation in SNS_OPERATIONS else "sqs"
    action = f"{service}:{'DeleteMessage' if operation == 'DeleteMessageBatch' else operation}"
    types = {t.rstrip("*") for t in iam_privileges()[action]}
    if "queue" in types:
        name = str(params.get("QueueName") or params["QueueUrl"]).rsplit("/", 1)[-1]
        return action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    if "topic" in types:
        return action, str(params["TopicArn"])
    return action, "*"  # no resource-level permission: the statement must say "*"


PLATFORMS = {
    # platform: (host name, ECS metadata?, the queue name's start)
    "ecs": ("ip-172-31-7-9.ec2.internal", True, "secretsync-kafka-app-"),
    "eks": ("kafka-app-5d8f7c9b6-x2x4q", False, "secretsync-kafka-app-5d8f7c9b6-x2x4q-"),
    "ec2": ("ip-10-0-1-23.ec2.internal", False, "secretsync-ip-10-0-1-23-ec2-internal-"),
}


def in_uts_namespace(hostname: str) -> tuple[str, ...]:
    """A wrapper running the command with ``hostname`` in a private UTS namespace."""
    unshare = shutil.which("unshare")
    probe = (
        subprocess.run([unshare, "--uts", "hostname", "probe"], capture_output=True, check=False)
        if unshare
        else None
    )
    if unshare is None or probe is None or probe.returncode != 0:
        pytest.fail("`unshare --uts` is needed (root and util-linux) to play a host name")
    return (unshare, "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_shipped_policy_allows_every_request_the_daemon_makes_on_each_platform(
    moto: Moto,
    proxy: FaultProxy,
    tmp_path: Path,
    start_daemon: Any,
    ecs_metadata: EcsMetadata,
    platform: str,
) -> None:
    policy_text = POLICY.read_text()
    findings = analyze_policy_string(policy_text).findings
    assert not findings, [str(f) for f in findings]  # parliament: actions match resource types
    hostname, on_ecs, prefix = PLATFORMS[platform]
    moto.seed_use_case()
    sns, sqs = client("sns", moto.url), client("sqs", moto.url)
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    identity = "kafka-app" if on_ecs else hostname
    # a stale queue of this identity, and a subscription whose queue is gone: both swept
    stale = sqs.create_queue(
        QueueName=prefix + "0badf00d",
        tags={TAG_IDENTITY: identity, TAG_TOPIC: topic, TAG_EXPIRES: str(int(time.time()) - 60)},
    )["QueueUrl"]
    dead = sqs.create_queue(QueueName=prefix + "deadbeef")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=dead_arn)
    sqs.delete_queue(QueueUrl=dead)

    queue_proxy = FaultProxy(moto.url).start()
    try:
        port = free_port()
        config = topic_config(tmp_path, "a", proxy.url, queue_proxy.url, port, topic)
        env = {"ECS_CONTAINER_METADATA_URI_V4": ecs_metadata.uri} if on_ecs else {}
        daemon: Daemon = start_daemon(config, wrap=in_uts_namespace(hostname), env=env)
        wait_until(lambda: daemon.has_event("push_listening", own_queue=True), 60, "listening")
        assert listening_queue(daemon).startswith(prefix)
        wait_until(lambda: daemon.has_event("push_stale_removed"), 60, "the sweep")
        assert stale not in own_queues(sqs)
        assert [s["Endpoint"] for s in subscriptions(sns, topic)] != [dead_arn]
        sqs.delete_queue(QueueUrl=own_queues(sqs)[0])  # the replacement path too
        wait_until(lambda: daemon.has_event("push_queue_replaced"), 60, "a new queue")
        assert daemon.stop() < 10 and daemon.proc.returncode == 0
        recorded = queue_proxy.recorded()
    finally:
        queue_proxy.stop()
    assert own_queues(sqs) == [] and subscriptions(sns, topic) == []

    policy = IAMPolicy(policy_text)
    asked = {authorized_request(op, params) for op, params in recorded}
    denied = {
        (action, resource)
        for action, resource in asked
        if policy.is_action_permitted(action, resource) != PermissionResult.PERMITTED
    }
    assert not denied, denied
    actions = {action for action, _ in asked}
    # the run exercised every step: set-up, lease, sweep, receive, replace, clean stop
    assert {
        "sqs:CreateQueue",
        "sqs:TagQueue",
        "sqs:ListQueues",
        "sqs:ListQueueTags",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:DeleteQueue",
        "sns:Subscribe",
        "sns:Unsubscribe",
        "sns:ListSubscriptionsByTopic",
    } <= actions, actions
    if platform == "ec2":
        # the evaluator is a real one: the old policy read only secretsync-kafka-app-*
        # queues, which a host's queue is not
        old = json.loads(
            '{"Statement": [{"Effect": "Allow", "Action": "sqs:ReceiveMessage", '
            f'"Resource": "arn:aws:sqs:{REGION}:{ACCOUNT}:secretsync-kafka-app-*"}}]}}'
        )
        receive = {r for a, r in asked if a == "sqs:ReceiveMessage"}
        assert receive and all(
            IAMPolicy(json.dumps(old)).is_action_permitted("sqs:ReceiveMessage", r)
            == PermissionResult.NEUTRAL
            for r in receive
        )
