"""Convergence you can query: version and applied series, /status and `secretsync status`.

A real daemon against moto, with real command targets (one that works, one
that fails), scraped over HTTP and asked by the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from secretsync.serve import status
from secretsync.serve.status import format_table, healthy
from tests.support.apps import NOTIFY_CMD
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import run_cli
from tests.support.inproc import Start
from tests.support.memsource import MemorySource
from tests.support.motoserver import Moto, free_port
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET, KAFKA_ID, SR_ID, kafka_secret
from tests.support.wait import async_wait_until, wait_until

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
        lambda: r if (r := run_cli("status", "-c", str(cfg))).returncode == 0 else None,
        20,
        "status 0",
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


# -- what /status may say about an error ------------------------------------------------------

ACCOUNT, ROLE = "123456789012", "kafka-app-role-7d1"
DENIED_MESSAGE = (
    f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/i-0abc1234def is not authorized to "
    f"perform: secretsmanager:DescribeSecret on resource: app/denied because no "
    f"identity-based policy allows the secretsmanager:DescribeSecret action"
)


@pytest.mark.slow
async def test_status_errors_are_a_code_and_a_fixed_description_never_the_message(
    tmp_path: Path, run_inproc: Start
) -> None:
    store = MemorySource()
    store.put("app/denied", {"k": "v"})
    store.fail("app/denied", ("AccessDeniedException", DENIED_MESSAGE, False))
    # the secret's own key names are not for /status either
    store.put("app/partial", {"internal.key.name-5e": "CANARY-partial-1", "other.key-9c": "x"})
    store.put("app/ok", {"k": "CANARY-ok-2"})
    out, port = tmp_path / "out", free_port()
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        {
            "aws": {"region": "us-east-1"},
            "poll": {"interval": "200ms", "jitter": 0},
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "outputs": [
                {"path": str(out / "denied.properties"), "secrets": [{"id": "app/denied"}]},
                {
                    "path": str(out / "partial.properties"),
                    "secrets": [{"id": "app/partial", "keys": ["wanted.key"]}],
                },
                {"path": str(out / "ok.properties"), "secrets": [{"id": "app/ok"}]},
            ],
        },
    )
    await run_inproc(cfg, store, serve_metrics=True)
    url = f"http://127.0.0.1:{port}/status"

    def fetch() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:  # not listening yet
            return None

    async def both_failed() -> str | None:
        body = await asyncio.to_thread(fetch)
        if body is None:
            return None
        outputs = {Path(o["path"]).name: o for o in json.loads(body)["outputs"]}
        ready = outputs["ok.properties"]["current"] and all(
            outputs[name]["error"] for name in ("denied.properties", "partial.properties")
        )
        return body if ready else None

    body = await async_wait_until(both_failed, 20, "both failing outputs in /status")
    document = json.loads(body)
    outputs = {Path(o["path"]).name: o for o in document["outputs"]}
    denied, partial = outputs["denied.properties"], outputs["partial.properties"]
    assert denied["error"] == "AccessDeniedException"
    assert denied["error_description"] == status.describe("AccessDeniedException")
    assert partial["error"] == "RenderError"
    assert partial["error_description"] == status.describe("RenderError")
    assert outputs["ok.properties"]["error"] is None
    assert outputs["ok.properties"]["error_description"] is None
    secrets = {s["id"]: s for s in document["secrets"]}
    assert secrets["app/denied"]["error"] == "AccessDeniedException"
    assert secrets["app/denied"]["error_description"] == status.describe("AccessDeniedException")
    for leak in (ACCOUNT, ROLE, "i-0abc1234def", "arn:aws", "internal.key.name-5e", "other.key-9c"):
        assert leak not in body
    for canary in ("CANARY-partial-1", "CANARY-ok-2"):
        assert canary not in body
    table = status.format_table(document)
    assert "AccessDeniedException" in table and ACCOUNT not in table


def test_a_code_that_is_not_a_plain_word_is_not_echoed() -> None:
    # an endpoint (a proxy, an emulator) chooses the code: it is shown only when it is a word
    assert status.safe_code("AccessDeniedException") == "AccessDeniedException"
    for hostile in ("arn:aws:iam::123456789012:role/x", "a b", "x" * 200, "", "ümlaut"):
        assert status.safe_code(hostile) == "UnknownError"
    assert status.describe("SomethingNew") == status.describe("UnknownError")
