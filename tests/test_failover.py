"""Regional failover: two endpoints through separate fault proxies, moto serving both regions.

The secrets live in us-east-1 and are replicated to us-west-2 (AddReplicaRegions),
so both regions answer with the same version ids. Each proxy counts what
reaches its region; faults are injected on the primary's proxy only.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from secretsync.failover import FailoverStore
from secretsync.store import Read, SourceError
from tests.conftest import (
    KAFKA_ID,
    REPO,
    SR_ID,
    Daemon,
    Moto,
    example_config,
    free_port,
    kafka_secret,
    run_cli,
    sr_secret,
    write_yaml,
)
from tests.support.faultproxy import FaultProxy
from tests.support.wait import wait_until

PRIMARY, REPLICA = "us-east-1", "us-west-2"


@pytest.fixture
def replica_proxy(moto: Moto) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.url).start()
    try:
        yield p
    finally:
        p.stop()


def seed_replicated(moto: Moto) -> None:
    for name, value in ((KAFKA_ID, kafka_secret()), (SR_ID, sr_secret())):
        moto.client.create_secret(
            Name=name, SecretString=json.dumps(value), AddReplicaRegions=[{"Region": REPLICA}]
        )


def config(
    tmp_path: Path,
    primary: FaultProxy,
    replica: FaultProxy,
    aws: dict[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    data = example_config(tmp_path / "out", primary.url, **overrides)
    data["aws"] = {
        "region": PRIMARY,
        "endpoint_url": primary.url,
        "failover_region": REPLICA,
        "failover_endpoint_url": replica.url,
        **(aws or {}),
    }
    return write_yaml(tmp_path / "sync.yaml", data)


def samples(port: int, name: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def test_the_replica_serves_while_the_primary_is_down_and_the_primary_takes_over_again(
    moto: Moto, proxy: FaultProxy, replica_proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    seed_replicated(moto)
    replica = boto3.client("secretsmanager", region_name=REPLICA, endpoint_url=moto.url)
    assert replica.describe_secret(SecretId=KAFKA_ID)["PrimaryRegion"] == PRIMARY
    proxy.down()  # the primary region is out from the start
    port = free_port()
    cfg = config(
        tmp_path,
        proxy,
        replica_proxy,
        poll={"interval": "300ms", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    daemon: Daemon = start_daemon(cfg)
    kafka_file = tmp_path / "out" / "client.properties"

    # start-up during the outage: the files come from the replica
    wait_until(
        lambda: (tmp_path / "out" / "combined.properties").exists(), 30, "files from the replica"
    )
    assert daemon.has_event("secret_failed_over", secret=KAFKA_ID)
    active = samples(port, "secretsync_failover_active")
    assert active[f'secretsync_failover_active{{secret="{KAFKA_ID}"}}'] == 1

    # a rotation while the primary is down reaches the file
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-during-outage"))
    wait_until(lambda: b"CANARY-during-outage" in kafka_file.read_bytes(), 30, "the rotation")
    # every output fed by the secret is rewritten and counted (each is written on its own)
    fed = [tmp_path / "out" / n for n in ("client.properties", "combined.properties")]
    wait_until(
        lambda: all(
            samples(port, "secretsync_file_writes_total").get(
                f'secretsync_file_writes_total{{path="{path}"}}'
            )
            == 2
            for path in fed
        ),
        30,
        "both outputs of the secret rewritten",
    )
    requests = samples(port, "secretsync_aws_requests_total")
    ok_replica = f'operation="GetSecretValue",outcome="ok",region="{REPLICA}"'
    assert requests[f"secretsync_aws_requests_total{{{ok_replica}}}"] >= 3

    # the primary answers again: checks go back to it, the replica sees no more requests
    writes_before = samples(port, "secretsync_file_writes_total")
    proxy.up()
    wait_until(lambda: daemon.has_event("secret_back_on_primary", secret=KAFKA_ID), 30, "return")
    wait_until(lambda: daemon.has_event("secret_back_on_primary", secret=SR_ID), 30, "return")
    replica_proxy.reset_counts()
    proxy.reset_counts()
    wait_until(lambda: proxy.count("DescribeSecret") >= 6, 30, "three polls on the primary")
    assert replica_proxy.count("DescribeSecret") == replica_proxy.count("GetSecretValue") == 0
    assert (
        samples(port, "secretsync_failover_active")[
            f'secretsync_failover_active{{secret="{KAFKA_ID}"}}'
        ]
        == 0
    )
    # switching regions by itself rewrote nothing (same version ids, same bytes)
    assert samples(port, "secretsync_file_writes_total") == writes_before
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert "CANARY" not in daemon.log_path.read_text()


def test_a_trickling_primary_fails_over_and_every_poll_still_finishes(
    moto: Moto, proxy: FaultProxy, replica_proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    seed_replicated(moto)
    # the primary sends headers at once, then a byte a second: no read ever times out
    proxy.fault, proxy.trickle_every_s = "trickle", 1.0
    port = free_port()
    cfg = config(
        tmp_path,
        proxy,
        replica_proxy,
        aws={"call_timeout": "2s"},
        poll={"interval": "1s", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    daemon: Daemon = start_daemon(cfg)
    out = tmp_path / "out"

    # a stall is "unavailable": the checks go to the replica after the call deadline
    wait_until(lambda: (out / "combined.properties").exists(), 30, "files from the replica")
    assert daemon.has_event("secret_failed_over", secret=KAFKA_ID, reason="CallTimeout")
    # polls keep finishing, and a rotation made meanwhile is applied
    moto.rotate(SR_ID, sr_secret(secret="CANARY-sr-while-trickling"))
    wait_until(
        lambda: b"CANARY-sr-while-trickling" in (out / "schema-registry.properties").read_bytes(),
        30,
        "the rotation through the replica",
    )
    cycles = sum(e.get("event") == "poll_cycle" for e in daemon.events())
    wait_until(
        lambda: sum(e.get("event") == "poll_cycle" for e in daemon.events()) >= cycles + 3,
        30,
        "three more poll cycles",
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert "CANARY" not in daemon.log_path.read_text()


def test_a_healthy_or_throttled_primary_never_sends_a_request_to_the_replica(
    moto: Moto, proxy: FaultProxy, replica_proxy: FaultProxy, tmp_path: Path
) -> None:
    seed_replicated(moto)
    cfg = config(tmp_path, proxy, replica_proxy)
    assert run_cli("once", "-c", str(cfg)).returncode == 0
    assert proxy.count("DescribeSecret") == 2
    assert replica_proxy.count("DescribeSecret") == replica_proxy.count("GetSecretValue") == 0

    proxy.fault = "throttle"  # throttling is the primary's answer: back off, do not fail over
    result = run_cli("once", "-c", str(cfg))
    assert result.returncode == 1
    assert replica_proxy.count("DescribeSecret") == 0
    assert "secret_failed_over" not in result.stderr


def test_check_refuses_a_failover_region_equal_to_the_primary(tmp_path: Path) -> None:
    data = example_config(tmp_path / "out", "http://127.0.0.1:9")
    data["aws"] = {"region": PRIMARY, "failover_region": PRIMARY}
    result = run_cli("check", "-c", str(write_yaml(tmp_path / "sync.yaml", data)))
    assert result.returncode == 2
    assert "failover_region" in result.stderr and "primary region" in result.stderr


class Scripted:
    """A store that answers or raises as told (the failover logic alone, no HTTP)."""

    def __init__(self, region: str, error: SourceError | None = None) -> None:
        self.region, self.error, self.calls = region, error, 0

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Read("v1", None, self.region)


@pytest.mark.parametrize(
    ("code", "fails_over"),
    [
        ("ConnectionError", True),
        ("InternalServiceError", True),
        ("ServiceUnavailable", True),
        ("ThrottlingException", False),
        ("ResourceNotFoundException", False),
        ("AccessDeniedException", False),
        ("SecretDeleted", False),
    ],
)
async def test_only_an_unavailable_primary_fails_over(code: str, fails_over: bool) -> None:
    transient = code not in {"ResourceNotFoundException", "AccessDeniedException", "SecretDeleted"}
    primary = Scripted(PRIMARY, SourceError("s", code, "injected", transient=transient))
    replica = Scripted(REPLICA)
    switched: list[tuple[str, bool]] = []
    store = FailoverStore(
        primary,
        replica,
        primary_region=PRIMARY,
        failover_region=REPLICA,
        on_switch=lambda s, on: switched.append((s, on)),
    )
    if fails_over:
        assert (await store.read("s", None)).region == REPLICA
        assert store.active("s") and switched == [("s", True)]
        primary.error = None  # the next check tries the primary first, and it answers
        assert (await store.read("s", "v1")).region == PRIMARY
        assert not store.active("s") and switched == [("s", True), ("s", False)]
    else:
        with pytest.raises(SourceError) as info:
            await store.read("s", None)
        assert info.value.code == code and replica.calls == 0


def test_the_failover_policy_reads_exactly_the_replicas_of_the_base_policy() -> None:
    iam = REPO / "packaging" / "iam"
    base = json.loads((iam / "secretsync-policy.json").read_text())["Statement"]
    failover = json.loads((iam / "secretsync-failover-policy.json").read_text())["Statement"]
    (read_base,) = [s for s in base if "secretsmanager:GetSecretValue" in s["Action"]]
    (read_replica,) = [s for s in failover if "secretsmanager:GetSecretValue" in s["Action"]]
    assert sorted(read_replica["Action"]) == sorted(read_base["Action"])
    assert read_replica["Resource"] == [
        arn.replace(f":{PRIMARY}:", f":{REPLICA}:") for arn in read_base["Resource"]
    ]
    (kms,) = [s for s in failover if s["Action"] == "kms:Decrypt"]
    assert kms["Resource"].startswith(f"arn:aws:kms:{REPLICA}:")
    assert (
        kms["Condition"]["StringEquals"]["kms:ViaService"]
        == f"secretsmanager.{REPLICA}.amazonaws.com"
    )
