"""The command line end to end: real subprocesses against moto over HTTP."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    REPO,
    Moto,
    example_config,
    kafka_secret,
    run_cli,
    sr_secret,
    write_yaml,
)
from tests.support.faultproxy import FaultProxy
from tests.support.java import JavaProperties
from tests.support.wait import wait_until


def test_once_writes_every_example_output_as_java_reads_it(
    moto: Moto, tmp_path: Path, java: JavaProperties
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url))

    result = run_cli("once", "-c", str(cfg))

    assert result.returncode == 0, result.stderr
    example = yaml.safe_load((REPO / "sync.yaml.example").read_text())["outputs"]
    static = [out["static"] for out in example]  # the library's settings among them
    assert static[0]["sasl.client.callback.handler.class"].startswith("dev.secretsync.kafka.")
    sr = {k: v for k, v in sr_secret().items() if k != "basic.auth.credentials.source"}
    assert java.load(out / "client.properties") == {**kafka_secret(), **static[0]}
    assert java.load(out / "schema-registry.properties") == {**sr, **static[1]}
    assert java.load(out / "combined.properties") == {**kafka_secret(), **sr, **static[2]}
    for name in ("client.properties", "schema-registry.properties", "combined.properties"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600
    for text in (result.stdout, result.stderr):
        assert CANARY_PASSWORD not in text and CANARY_SR_SECRET not in text


def test_once_exits_1_when_the_service_is_down_and_writes_nothing(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    proxy.down()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, proxy.url))

    result = run_cli("once", "-c", str(cfg))

    assert result.returncode == 1
    # only the lock files that keep a second writer out; no output, no temp file
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f".{name}.secretsync-lock"
        for name in ("client.properties", "schema-registry.properties", "combined.properties")
    )
    assert "secret_check_failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_once_with_a_hostile_secret_writes_the_rest_and_exits_1_without_a_traceback(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    # valid JSON holding a lone surrogate and a shell quote: json and env cannot carry it
    moto.create("team/hostile", '{"note": "CANARY-x\\ud800y", "token": "tok\'en-CANARY-q"}')
    out = tmp_path / "out"
    data = example_config(out, moto.url)
    for name, fmt in (("hostile.json", "json"), ("hostile.env", "env")):
        data["outputs"].insert(
            0, {"path": str(out / name), "format": fmt, "secrets": [{"id": "team/hostile"}]}
        )
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = run_cli("once", "-c", str(cfg))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "client.properties",
        "combined.properties",
        "schema-registry.properties",
    ]
    for leak in ("CANARY-x", "CANARY-q", "tok'en", "\\ud800"):
        assert leak not in result.stderr and leak not in result.stdout


def test_once_dry_run_masks_every_value_and_writes_nothing(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url))

    result = run_cli("once", "--dry-run", "-c", str(cfg))

    assert result.returncode == 0, result.stderr
    assert not out.exists()
    assert f"{out / 'client.properties'} (properties, mode 0600): would write" in result.stdout
    assert "  sasl.jaas.config=********" in result.stdout
    assert "  security.protocol=********" in result.stdout
    for value in [*kafka_secret().values(), *sr_secret().values(), "SASL_SSL"]:
        assert value not in result.stdout + result.stderr


def test_run_follows_a_rotation_and_keeps_the_mode(
    moto: Moto, tmp_path: Path, java: JavaProperties, start_daemon
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0})
    data["outputs"][0]["mode"] = "0640"
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg)
    kafka_file = out / "client.properties"
    wait_until(kafka_file.exists, 20, "first sync")

    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-rotated-91b"))

    wait_until(
        lambda: "CANARY-rotated-91b" in java.load(kafka_file)["sasl.jaas.config"],
        20,
        "rotated value in the file",
    )
    assert stat.S_IMODE(os.stat(kafka_file).st_mode) == 0o640
    assert daemon.stop(signal.SIGTERM) < 5
    assert daemon.proc.returncode == 0
    log = daemon.log_path.read_text()
    assert "Traceback" not in log
    for canary in (CANARY_PASSWORD, CANARY_SR_SECRET, "CANARY-rotated-91b"):
        assert canary not in log
    assert daemon.has_event("secret_changed", secret=KAFKA_ID)
    assert daemon.has_event("stopped")


def test_log_format_and_level_options(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", moto.url))
    result = run_cli("once", "-c", str(cfg), "--log-format", "json", "--log-level", "warning")
    assert result.returncode == 0
    assert result.stderr == ""  # info lines filtered
    result = run_cli("--log-format", "console", "once", "-c", str(cfg))
    assert "poll_cycle" in result.stderr and not result.stderr.startswith("{")


HEAVY = {
    "botocore",
    "aiobotocore",
    "aioboto3",
    "boto3",
    "aiohttp",
    "watchfiles",
    "prometheus_client",
}


def imported_modules(*args: str) -> set[str]:
    """Top-level names of every module `python -X importtime -m secretsync ARGS` imports."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "secretsync", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "secretsync" in names, result.stderr[-2000:]
    return names


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("check", "-c", str(REPO / "sync.yaml.example")),
        ("health", "--url", "http://127.0.0.1:9/healthz"),
        ("demo", "--help"),
    ],
    ids=["help", "check", "health", "demo-help"],
)
def test_light_commands_import_no_aws_http_or_metrics_library(args: tuple[str, ...]) -> None:
    assert imported_modules(*args) & HEAVY == set()


def test_help_does_not_even_import_the_config_models() -> None:
    assert {"pydantic", "yaml", "structlog"} & imported_modules("--help") == set()


def test_the_demo_itself_imports_no_aws_or_http_library() -> None:
    # the emulator runs as a child process; the demo speaks JSON over HTTP with urllib
    code = (
        "import sys, secretsync.demo, secretsync.emulator; "
        "print(sorted(set(m.split('.')[0] for m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert HEAVY & set(eval(result.stdout)) == set()


SIGHUP_WARNING = "sends SIGHUP to every process matching its `process` alone"


@pytest.mark.parametrize(
    ("target", "warns"),
    [
        ({"signal": "SIGHUP", "process": "java .*KafkaApp"}, True),
        ({"process": "java .*KafkaApp"}, True),  # SIGHUP is the default signal
        ({"signal": "HUP", "process": "java .*KafkaApp"}, True),
        ({"signal": "SIGHUP", "pidfile": "/run/app.pid", "process": "java .*KafkaApp"}, False),
        ({"signal": "SIGHUP", "pidfile": "/run/app.pid"}, False),
        ({"signal": "SIGTERM", "process": "java .*KafkaApp", "splay": "2m"}, False),
        ({"command": ["true"]}, False),
    ],
    ids=[
        "sighup-process",
        "default-process",
        "hup-process",
        "guarded",
        "pidfile",
        "sigterm",
        "cmd",
    ],
)
def test_check_warns_when_sighup_goes_to_a_bare_process_match(
    tmp_path: Path, target: dict[str, object], warns: bool
) -> None:
    data = {
        "aws": {"region": "us-east-1"},
        "outputs": [{"path": str(tmp_path / "a.properties"), "secrets": [{"id": "s"}]}],
        "notify": {"kafka-app": target},
    }
    data["outputs"][0]["notify"] = ["kafka-app"]  # type: ignore[index]
    result = run_cli("check", "-c", str(write_yaml(tmp_path / "sync.yaml", data)))
    assert result.returncode == 0, result.stderr
    assert (SIGHUP_WARNING in result.stderr) is warns, result.stderr
    if warns:
        assert "notify.kafka-app" in result.stderr
