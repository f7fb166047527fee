"""Regional failover: two endpoints through separate fault proxies, moto serving both regions.

The secrets live in us-east-1 and are replicated to us-west-2 (AddReplicaRegions),
so both regions answer with the same version ids. Each proxy counts what
reaches its region; faults are injected on the primary's proxy only.
"""

from __future__ import annotations

import io
import json
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from secretsync.source.failover import FailoverSource
from secretsync.source.protocol import Read, SourceError
from secretsync.state import WrittenFile
from tests.support.apps import App
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon, run_cli
from tests.support.faultproxy import FaultProxy
from tests.support.harness import make_config
from tests.support.memsource import UNREACHABLE, MemorySource
from tests.support.motoserver import Moto, free_port
from tests.support.paths import REPO
from tests.support.seeds import KAFKA_ID, SR_ID, kafka_secret, sr_secret
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


def seed_lagging(moto: Moto) -> Any:
    """The secrets in both regions with the same version ids, but the replica region's own
    copies, so that a rotation of the primary does not reach it (replication lag; moto
    copies every change to a real replica at once). Returns the replica region's client."""
    replica = boto3.client("secretsmanager", region_name=REPLICA, endpoint_url=moto.url)
    for name, value in ((KAFKA_ID, kafka_secret()), (SR_ID, sr_secret())):
        token = str(uuid.uuid4())
        for client in (moto.client, replica):
            client.create_secret(
                Name=name, SecretString=json.dumps(value), ClientRequestToken=token
            )
    return replica


def more_checks(region: FaultProxy, n: int, what: str) -> None:
    """Wait until ``n`` more DescribeSecret calls reached ``region``'s proxy."""
    target = region.count("DescribeSecret") + n
    wait_until(lambda: region.count("DescribeSecret") >= target, 30, what)


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


def test_a_replica_behind_the_primary_never_rolls_the_file_back_even_when_the_primary_flaps(
    moto: Moto, proxy: FaultProxy, replica_proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    seed_lagging(moto)
    out = tmp_path / "out"
    kafka_file = out / "client.properties"
    app = App(tmp_path, "hup-app", [kafka_file])
    try:
        port = free_port()
        data = yaml.safe_load(
            config(
                tmp_path,
                proxy,
                replica_proxy,
                poll={"interval": "300ms", "jitter": 0},
                settle="0s",
                metrics={"listen": f"127.0.0.1:{port}"},
            ).read_text()
        )
        data["notify"] = {"hup-app": {"signal": "SIGHUP", "pidfile": str(app.pidfile)}}
        for output in data["outputs"]:
            output["notify"] = ["hup-app"]
        daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
        wait_until(lambda: len(app.signals()) == 1, 30, "the start-up SIGHUP")

        # a rotation in the primary region, not yet replicated
        token = str(uuid.uuid4())
        moto.client.put_secret_value(
            SecretId=KAFKA_ID,
            SecretString=json.dumps(kafka_secret(password="CANARY-rotated")),
            ClientRequestToken=token,
        )
        wait_until(lambda: b"CANARY-rotated" in kafka_file.read_bytes(), 30, "the rotation")
        wait_until(lambda: len(app.barrier()) == 2, 30, "the rotation's SIGHUP")
        rotated = kafka_file.read_bytes()
        writes = samples(port, "secretsync_file_writes_total")

        # the primary goes down: the replica answers with the version before the rotation,
        # which must not replace the newer one held (its key may already be deleted)
        proxy.down()
        wait_until(lambda: daemon.has_event("secret_failed_over", secret=KAFKA_ID), 30, "failover")
        wait_until(lambda: daemon.has_event("replica_behind", secret=KAFKA_ID), 30, "refusal")
        more_checks(replica_proxy, 3, "replica checks")
        assert kafka_file.read_bytes() == rotated

        # the primary flaps: every half of each flap is seen by the daemon
        for _ in range(3):
            proxy.up()
            more_checks(proxy, 2, "primary answers")
            assert kafka_file.read_bytes() == rotated
            proxy.down()
            more_checks(replica_proxy, 2, "replica answers")
            assert kafka_file.read_bytes() == rotated
        # not one file rewritten, not one more signal
        assert samples(port, "secretsync_file_writes_total") == writes
        assert len(app.barrier()) == 2
        # the replica's older value was fetched once, then remembered as behind, and the
        # refusal logged once
        assert len(replica_proxy.fetched_versions) == 1
        assert sum(e.get("event") == "replica_behind" for e in daemon.events()) == 1
        assert daemon.stop() < 10 and daemon.proc.returncode == 0
        assert "CANARY" not in daemon.log_path.read_text()
    finally:
        app.stop()


def test_a_trickling_primary_fails_over_and_every_poll_still_finishes(
    moto: Moto, proxy: FaultProxy, replica_proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    seed_replicated(moto)
    # the primary sends headers at once, then a byte every 0.4 s: no read ever times out
    proxy.fault, proxy.trickle_every_s = "trickle", 0.4
    port = free_port()
    cfg = config(
        tmp_path,
        proxy,
        replica_proxy,
        aws={"call_timeout": "1s"},  # the least allowed
        poll={"interval": "500ms", "jitter": 0},
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


@pytest.mark.slow
def test_check_refuses_a_failover_region_equal_to_the_primary(tmp_path: Path) -> None:
    data = example_config(tmp_path / "out", "http://127.0.0.1:9")
    data["aws"] = {"region": PRIMARY, "failover_region": PRIMARY}
    result = run_cli("check", "-c", str(write_yaml(tmp_path / "sync.yaml", data)))
    assert result.returncode == 2
    assert "failover_region" in result.stderr and "primary region" in result.stderr


class Recorder:
    """A NotifySink that keeps the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[WrittenFile]] = []

    def submit(self, written: Sequence[WrittenFile]) -> None:
        self.batches.append(list(written))


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
    store = FailoverSource(
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


# -- a replica behind (or ahead of) the primary: the rule alone, in memory ---------------


def lagging_pair() -> tuple[MemorySource, MemorySource, FailoverSource]:
    """Primary and replica with the same versions (same ids, same CreatedDate)."""
    primary, replica = MemorySource(), MemorySource()
    replica.region = REPLICA
    for sid, value in ((KAFKA_ID, kafka_secret()), (SR_ID, sr_secret())):
        version = primary.put(sid, value)
        replica.put(sid, value, version_id=version, created=primary.created[version])
    store = FailoverSource(primary, replica, primary_region=PRIMARY, failover_region=REPLICA)
    return primary, replica, store


async def test_a_lagging_replica_never_takes_a_secret_back_and_flapping_changes_nothing(
    tmp_path: Path, make_rig: Any, log_buffer: io.StringIO
) -> None:
    primary, replica, store = lagging_pair()
    sink = Recorder()
    r = make_rig(make_config(tmp_path), store, notifier=sink)
    await r.syncer.cycle()
    rotated = primary.put(KAFKA_ID, kafka_secret(password="CANARY-rotated"))  # not replicated
    await r.syncer.cycle()
    good = (tmp_path / "client.properties").read_bytes()
    assert b"CANARY-rotated" in good and len(sink.batches) == 2

    for _ in range(10):  # the primary flaps
        primary.fail(None, UNREACHABLE)
        await r.syncer.cycle()
        primary.heal()
        await r.syncer.cycle()
    assert (tmp_path / "client.properties").read_bytes() == good
    assert len(sink.batches) == 2  # nothing rewritten, nobody told
    assert r.syncer.secrets[KAFKA_ID].version_id == rotated and r.syncer.all_current()
    assert store.failovers == 20 and store.refused == 1
    # the older value was fetched once; then the replica is only asked whether it moved
    assert replica.fetched == [(KAFKA_ID, replica.current[KAFKA_ID])]
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    behind = [e for e in events if e["event"] == "replica_behind"]
    assert [(e["secret"], e["version_id"], e["reason"]) for e in behind] == [
        (KAFKA_ID, rotated, "not_newer")
    ]
    assert "CANARY" not in log_buffer.getvalue()

    # the replica catches up: the same version, nothing changes, nothing is fetched again
    primary.fail(None, UNREACHABLE)
    replica.put(KAFKA_ID, kafka_secret(password="CANARY-rotated"), version_id=rotated)
    replica.reset_counts()
    await r.syncer.cycle()
    assert len(sink.batches) == 2
    assert r.syncer.secrets[KAFKA_ID].region == REPLICA

    # a rotation the replica has and we could not hear from the primary is taken
    newer = primary.put(KAFKA_ID, kafka_secret(password="CANARY-newer"))
    replica.put(
        KAFKA_ID,
        kafka_secret(password="CANARY-newer"),
        version_id=newer,
        created=primary.created[newer],
    )
    await r.syncer.cycle()
    assert b"CANARY-newer" in (tmp_path / "client.properties").read_bytes()
    assert r.syncer.secrets[KAFKA_ID].version_id == newer and len(sink.batches) == 3


async def test_an_undated_replica_version_is_refused_but_taken_when_nothing_is_held(
    tmp_path: Path, make_rig: Any
) -> None:
    primary, replica, store = lagging_pair()
    primary.fail(None, UNREACHABLE)
    r = make_rig(make_config(tmp_path), store)
    await r.syncer.cycle()  # start-up during the outage: the replica's versions, as they are
    assert r.syncer.all_current()
    assert {st.region for st in r.syncer.secrets.values()} == {REPLICA}

    # the primary answers with a rotation; then the replica gives a version that cannot be
    # dated: it cannot be shown to be newer than the one held, so it is refused
    primary.heal()
    rotated = primary.put(KAFKA_ID, kafka_secret(password="CANARY-p2"))
    await r.syncer.cycle()
    primary.fail(None, UNREACHABLE)
    replica.put(KAFKA_ID, kafka_secret(password="CANARY-undated"), version_id="v-undated")
    replica.created.clear()
    await r.syncer.cycle()
    assert r.syncer.secrets[KAFKA_ID].version_id == rotated
    assert b"CANARY-p2" in (tmp_path / "client.properties").read_bytes()
    assert store.refused == 1


async def test_the_primary_is_believed_even_when_it_goes_back_to_an_older_version(
    tmp_path: Path, make_rig: Any
) -> None:
    primary, _, store = lagging_pair()
    r = make_rig(make_config(tmp_path), store)
    await r.syncer.cycle()
    first = primary.current[KAFKA_ID]
    primary.put(KAFKA_ID, kafka_secret(password="CANARY-bad-rotation"))
    await r.syncer.cycle()
    primary.current[KAFKA_ID] = first  # an operator's rollback, in the primary region
    await r.syncer.cycle()
    assert r.syncer.secrets[KAFKA_ID].version_id == first
    assert b"CANARY-bad-rotation" not in (tmp_path / "client.properties").read_bytes()
