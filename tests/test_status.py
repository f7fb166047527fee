"""Convergence you can query: version and applied series, /status and `secretsync status`.

A real daemon against moto, with real command targets (one that works, one
that fails), scraped over HTTP and asked by the real CLI.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from secretsync.status import format_table, healthy
from tests.conftest import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    SR_ID,
    Moto,
    example_config,
    free_port,
    kafka_secret,
    run_cli,
    write_yaml,
)
from tests.support.apps import NOTIFY_CMD
from tests.support.wait import wait_until

PY = sys.executable


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape; empty while the daemon is not listening yet."""
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


def series(samples: dict[Any, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def test_versions_applied_and_status_follow_a_rotation(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    kafka_v1 = moto.client.describe_secret(SecretId=KAFKA_ID)
    v1 = next(v for v, st in kafka_v1["VersionIdsToStages"].items() if "AWSCURRENT" in st)
    out = tmp_path / "out"
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    fails = tmp_path / "fails.txt"
    data = example_config(
        out,
        moto.url,
        poll={"interval": "200ms", "jitter": 0},
        settle=0,
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    data["notify"] = {
        "good": {"command": [PY, str(NOTIFY_CMD), "record", str(calls)]},
        "bad": {"command": [PY, str(NOTIFY_CMD), "fail", "3", "0", str(fails)]},
    }
    data["outputs"][0]["notify"] = ["good"]  # client.properties
    data["outputs"][1]["notify"] = ["bad"]  # schema-registry.properties
    start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    client, sr = str(out / "client.properties"), str(out / "schema-registry.properties")
    combined = str(out / "combined.properties")

    def applied() -> dict[str, float]:
        got = series(scrape(port), "secretsync_output_applied")
        return {dict(labels)["path"]: value for labels, value in got.items()}

    wait_until(lambda: applied().get(client) == 1 and fails.exists(), 30, "first deliveries")
    wait_until(lambda: applied() == {client: 1, sr: 0, combined: 1}, 10, "applied per output")
    versions = series(scrape(port), "secretsync_secret_version_info")
    assert ((("secret", KAFKA_ID), ("version_id", v1)), 1.0) in versions.items()

    # a rotation: the old version's series goes, the new one appears; applied follows
    v2 = moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-status-v2"))
    wait_until(
        lambda: (
            {
                dict(k)["version_id"]
                for k in series(scrape(port), "secretsync_secret_version_info")
                if dict(k)["secret"] == KAFKA_ID
            }
            == {v2}
        ),
        30,
        "the version series to move",
    )
    wait_until(lambda: len(calls.read_text().splitlines()) == 2, 30, "the rotation told")
    wait_until(lambda: applied()[client] == 1, 10, "client.properties applied again")

    # the status view, as JSON and as the table a person reads
    url = f"http://127.0.0.1:{port}/status"
    with urllib.request.urlopen(url, timeout=5) as resp:
        document = json.loads(resp.read())
    assert document["current"] is True and document["applied"] is False
    by_path = {o["path"]: o for o in document["outputs"]}
    assert by_path[client]["secrets"] == {KAFKA_ID: v2}
    assert by_path[client]["targets"] == [
        {"name": "good", "last_outcome": "ok", "last_at": by_path[client]["targets"][0]["last_at"]}
    ]
    assert by_path[sr]["applied"] is False
    assert by_path[sr]["targets"][0]["last_outcome"] == "error"
    assert {s["id"]: s["version_id"] for s in document["secrets"]}[KAFKA_ID] == v2
    assert not healthy(document)

    result = run_cli("status", "--url", url)
    assert result.returncode == 1  # schema-registry.properties is not applied
    assert client in result.stdout and "bad: error" in result.stdout
    assert "1 not applied" in result.stdout.splitlines()[-1]
    as_json = run_cli("status", "--url", url, "--json")
    assert json.loads(as_json.stdout)["outputs"]
    for text in (result.stdout, as_json.stdout, json.dumps(document)):
        for canary in (CANARY_PASSWORD, CANARY_SR_SECRET, "CANARY-status-v2"):
            assert canary not in text


def test_status_exits_0_when_everything_is_current_and_applied(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    port = free_port()
    data = example_config(out, moto.url, metrics={"listen": f"127.0.0.1:{port}"})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    start_daemon(cfg)
    wait_until(lambda: (out / "combined.properties").exists(), 30, "first sync")
    result = wait_until(
        lambda: (r := run_cli("status", "-c", str(cfg))).returncode == 0 and r, 20, "status 0"
    )
    assert "every output is current and applied" in result.stdout
    assert SR_ID in result.stdout

    unreachable = run_cli("status", "--url", f"http://127.0.0.1:{free_port()}/status")
    assert unreachable.returncode == 1 and "unreachable" in unreachable.stderr


def test_the_table_is_for_people() -> None:
    document = {
        "current": False,
        "applied": True,
        "outputs": [
            {
                "path": "/etc/kafka/client.properties",
                "current": False,
                "applied": True,
                "written_at": None,
                "confirmed_at": None,
                "targets": [],
            }
        ],
        "secrets": [{"id": "a/b", "version_id": "0123456789abcdef", "ok": False, "error": "X"}],
    }
    text = format_table(document)
    assert text.splitlines()[0].split() == [
        "OUTPUT",
        "CURRENT",
        "APPLIED",
        "WRITTEN",
        "CONFIRMED",
        "TARGETS",
    ]
    assert "01234567…" in text and " X" in text
    assert text.splitlines()[-1] == "1 output(s) not current, 0 not applied"
