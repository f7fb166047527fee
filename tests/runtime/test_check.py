"""`secretsync check --online`: read-only calls against moto over HTTP; each problem named,
never a value; nothing consumed, created or changed."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import run_cli
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto, moto_server
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET, KAFKA_ID, REGION, SR_ID

CANARY_KEY_VALUE = "CANARY-preflight-9d2e"
READ_ONLY = {"DescribeSecret", "GetSecretValue"}


def client(service: str, url: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=url)


def check_online(cfg: Path, *args: str, **kwargs: Any) -> Any:
    return run_cli("check", "--online", "-c", str(cfg), *args, **kwargs)


def assert_no_canary(result: Any) -> None:
    for text in (result.stdout, result.stderr):
        for canary in (CANARY_PASSWORD, CANARY_SR_SECRET, CANARY_KEY_VALUE, "CANARYKEY1"):
            assert canary not in text, text


def test_a_good_config_passes_with_read_only_calls_only(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", proxy.url))

    result = check_online(cfg)

    assert result.returncode == 0, result.stderr
    assert f"{cfg}: ok (3 outputs, 2 secrets; online in {REGION}:" in result.stdout
    assert set(proxy.counts) == READ_ONLY, proxy.counts
    # one DescribeSecret and one pinned GetSecretValue per unique secret, however many outputs
    assert proxy.count("DescribeSecret") == 2 and proxy.count("GetSecretValue") == 2
    assert all(version is not None for _, version in proxy.fetched_versions)
    assert not (tmp_path / "out").exists()
    assert_no_canary(result)


def test_every_problem_is_named_and_no_value_is_shown(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    moto.create("team/partial", {"present.key": CANARY_KEY_VALUE})
    moto.client.create_secret(Name="team/no-version")  # no value: nothing staged AWSCURRENT
    moto.create("team/deleted", {"k": CANARY_KEY_VALUE})
    moto.client.delete_secret(SecretId="team/deleted", RecoveryWindowInDays=7)
    moto.create("team/api", {"apiKey": "CANARYKEY1"})  # no apiSecret
    out = tmp_path / "out"
    data = example_config(out, moto.url)
    data["outputs"] += [
        {"path": str(out / "missing.properties"), "secrets": [{"id": "team/nowhere"}]},
        {
            "path": str(out / "keys.properties"),
            "secrets": [{"id": "team/partial", "keys": ["present.key", "absent.key"]}],
        },
        {"path": str(out / "version.properties"), "secrets": [{"id": "team/no-version"}]},
        {"path": str(out / "deleted.properties"), "secrets": [{"id": "team/deleted"}]},
        {
            "path": str(out / "sasl.properties"),
            "secrets": [{"id": "team/api", "keys": []}],
            "sasl": {"mechanism": "PLAIN", "secret": "team/api"},
        },
    ]
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1] == f"secretsync: {cfg}: 5 problems found online", result.stderr
    problems = "\n".join(lines[:-1])
    assert "secret 'team/nowhere': DescribeSecret: ResourceNotFoundException" in problems
    assert f"outputs[4] ({out / 'keys.properties'}): secret 'team/partial': missing " in problems
    assert "'absent.key'" in problems and "'present.key'" in problems  # keys, not values
    assert "secret 'team/no-version': " in problems and "AWSCURRENT" in problems
    assert "secret 'team/deleted': " in problems and "deletion" in problems
    assert f"outputs[7] ({out / 'sasl.properties'}): " in problems and "'apiSecret'" in problems
    assert all(line.startswith("secretsync: online: ") for line in lines[:-1])
    assert len(lines) == 6  # the three good outputs say nothing
    assert "Traceback" not in result.stderr
    assert_no_canary(result)
    assert not out.exists()


def test_problems_are_json_log_lines_under_json_logs(moto: Moto, tmp_path: Path) -> None:
    data = example_config(tmp_path / "out", moto.url)  # neither secret exists
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg, "--log-format", "json")

    assert result.returncode == 1
    events = [json.loads(line) for line in result.stderr.splitlines()]
    problems = [e for e in events if e["event"] == "check_problem"]
    assert sorted(e["where"] for e in problems) == sorted(
        [f"secret {KAFKA_ID!r}", f"secret {SR_ID!r}"]
    )
    assert all("ResourceNotFoundException" in e["problem"] for e in problems)
    assert events[-1]["event"] == "check_failed" and events[-1]["problems"] == 2


def test_no_region_cannot_be_checked_online_exit_2(moto: Moto, tmp_path: Path) -> None:
    data = example_config(tmp_path / "out", moto.url)
    data["aws"] = {"endpoint_url": moto.url}
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg, env={"AWS_REGION": None, "AWS_DEFAULT_REGION": None})

    assert result.returncode == 2
    assert "cannot check online: no AWS region" in result.stderr


def test_the_failover_region_is_checked_too(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()  # in us-east-1 only: no replica in us-west-2
    data = example_config(tmp_path / "out", moto.url)
    data["aws"].update(failover_region="us-west-2", failover_endpoint_url=moto.url)
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg)

    assert result.returncode == 1
    assert f"secret {KAFKA_ID!r} [failover region us-west-2]: DescribeSecret: " in result.stderr
    assert f"secret {SR_ID!r} [failover region us-west-2]: DescribeSecret: " in result.stderr
    assert "2 problems found online" in result.stderr

    west = boto3.client("secretsmanager", region_name="us-west-2", endpoint_url=moto.url)
    for secret_id in (KAFKA_ID, SR_ID):
        value = moto.client.get_secret_value(SecretId=secret_id)["SecretString"]
        west.create_secret(Name=secret_id, SecretString=value)
    result = check_online(cfg)
    assert result.returncode == 0, result.stderr
    assert f"online in {REGION}, us-west-2:" in result.stdout


# --- push: the queue or topic is there; nothing is consumed or created ---------------------


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_push_queue_is_checked_without_consuming_a_message(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    sqs = client("sqs", moto.url)
    queue = sqs.create_queue(QueueName="secretsync-preflight")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="an event waiting for the daemon")
    data = example_config(tmp_path / "out", proxy.url)
    data["push"] = {"sqs_queue_url": queue, "endpoint_url": proxy.url}
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg)

    assert result.returncode == 0, result.stderr
    assert "sqs:GetQueueAttributes" in result.stdout
    assert set(proxy.counts) == READ_ONLY | {"GetQueueAttributes"}, proxy.counts
    assert queue_counts(sqs, queue) == (1, 0)  # still there, still visible
    received = sqs.receive_message(QueueUrl=queue, AttributeNames=["ApproximateReceiveCount"])
    assert received["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"  # ours

    data["push"]["sqs_queue_url"] = queue.rsplit("/", 1)[0] + "/secretsync-no-such-queue"
    write_yaml(cfg, data)
    result = check_online(cfg)
    assert result.returncode == 1
    assert "online: push.sqs_queue_url: GetQueueAttributes: " in result.stderr
    assert "1 problem found online" in result.stderr


def test_a_push_topic_is_checked_without_subscribing(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    sns, sqs = client("sns", moto.url), client("sqs", moto.url)
    topic = sns.create_topic(Name="secretsmanager-events")["TopicArn"]
    data = example_config(tmp_path / "out", moto.url)
    data["push"] = {"sns_topic_arn": topic, "endpoint_url": moto.url}
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = check_online(cfg)

    assert result.returncode == 0, result.stderr
    assert "sns:GetTopicAttributes" in result.stdout
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []

    data["push"]["sns_topic_arn"] = topic.rsplit(":", 1)[0] + ":no-such-topic"
    write_yaml(cfg, data)
    result = check_online(cfg)
    assert result.returncode == 1
    assert "online: push.sns_topic_arn: GetTopicAttributes: " in result.stderr
    assert "NotFound" in result.stderr


# --- credentials that may not call what the config needs (moto's IAM enforcement) ----------


@pytest.fixture
def iam_moto() -> Iterator[str]:
    """A moto server of its own: enforcing IAM changes it for every client."""
    with moto_server() as url:
        yield url


def enforce_iam(url: str) -> None:
    request = urllib.request.Request(
        url + "/moto-api/reset-auth",
        data=b"0",  # authenticate and authorise every request from now on
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.mark.slow
def test_credentials_that_may_not_read_a_secret_or_the_queue_are_named(
    iam_moto: str, tmp_path: Path
) -> None:
    url = iam_moto
    sm, sqs, iam = client("secretsmanager", url), client("sqs", url), client("iam", url)
    sm.create_secret(Name=KAFKA_ID, SecretString=json.dumps({"bootstrap.servers": "b:9092"}))
    sm.create_secret(Name=SR_ID, SecretString=json.dumps({"schema.registry.url": "https://sr"}))
    queue = sqs.create_queue(QueueName="secretsync-app")["QueueUrl"]
    iam.create_user(UserName="secretsync")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}
        ],
    }
    arn = iam.create_policy(PolicyName="describe-only", PolicyDocument=json.dumps(policy))
    iam.attach_user_policy(UserName="secretsync", PolicyArn=arn["Policy"]["Arn"])
    key = iam.create_access_key(UserName="secretsync")["AccessKey"]
    data = example_config(tmp_path / "out", url)
    data["push"] = {"sqs_queue_url": queue, "endpoint_url": url}
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    enforce_iam(url)
    as_the_user: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_SESSION_TOKEN": None,
    }

    result = check_online(cfg, env=as_the_user)

    assert result.returncode == 1, result.stdout + result.stderr
    for secret_id in (KAFKA_ID, SR_ID):
        assert f"online: secret {secret_id!r}: GetSecretValue (version " in result.stderr
    assert result.stderr.count("AccessDenied") == 3, result.stderr
    assert "not authorized to perform: secretsmanager:GetSecretValue" in result.stderr
    assert "online: push.sqs_queue_url: GetQueueAttributes: AccessDenied" in result.stderr
    assert "not authorized to perform: sqs:GetQueueAttributes" in result.stderr
    assert "3 problems found online" in result.stderr
    assert all(len(line) < 400 for line in result.stderr.splitlines())  # no XML dumps
