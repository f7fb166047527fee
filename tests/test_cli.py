"""The command line end to end: real subprocesses against moto over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from secretsync import __version__
from secretsync.cli import build_parser
from tests.support.certs import make_ca
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import run_cli
from tests.support.faultproxy import FaultProxy
from tests.support.java import JavaProperties
from tests.support.motoserver import Moto, free_port
from tests.support.paths import REPO
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET, KAFKA_ID, kafka_secret, sr_secret
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


def test_once_dry_run_masks_secret_values_shows_static_ones_and_writes_nothing(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url))

    result = run_cli("once", "--dry-run", "-c", str(cfg))

    assert result.returncode == 0, result.stderr
    assert not out.exists()
    assert f"{out / 'client.properties'} (properties, mode 0600): would write" in result.stdout
    assert "  sasl.jaas.config=********" in result.stdout
    assert "  bootstrap.servers=********" in result.stdout
    # static properties are in the config file, not secrets: shown as they will be written
    assert "  security.protocol=SASL_SSL" in result.stdout
    assert "  sasl.mechanism=PLAIN" in result.stdout
    for value in [*kafka_secret().values(), *sr_secret().values()]:
        assert value not in result.stdout + result.stderr


def test_dry_run_shows_what_sasl_and_basic_auth_fix_and_masks_the_credentials(
    moto: Moto, tmp_path: Path
) -> None:
    moto.create("team/api-key", {"apiKey": "CANARYUSER7", "apiSecret": "CANARY-dry-pw-3c"})
    out = tmp_path / "out"
    data = example_config(out, moto.url)
    data["outputs"] = [
        {
            "path": str(out / "a.properties"),
            "secrets": [{"id": "team/api-key", "keys": []}],
            "sasl": {
                "mechanism": "SCRAM-SHA-512",
                "secret": "team/api-key",
                "username_key": "apiKey",
                "password_key": "apiSecret",
            },
            "static": {"note": "line one\nline two"},
        },
        {
            "path": str(out / "b.env"),
            "format": "env",
            "secrets": [{"id": "team/api-key", "keys": []}],
            "basic_auth": {"secret": "team/api-key"},
        },
    ]
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = run_cli("once", "--dry-run", "-c", str(cfg))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  sasl.jaas.config=********" in lines
    assert "  sasl.mechanism=SCRAM-SHA-512" in lines
    assert "  note=line one\\nline two" in lines  # one line per key, whatever the value holds
    assert "  basic.auth.user.info=********" in lines
    assert "  basic.auth.credentials.source=USER_INFO" in lines
    for text in (result.stdout, result.stderr):
        assert "CANARYUSER7" not in text and "CANARY-dry-pw-3c" not in text


def test_run_follows_a_rotation_and_keeps_the_mode(
    moto: Moto, tmp_path: Path, java: JavaProperties, start_daemon: Any
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
@pytest.mark.slow
def test_light_commands_import_no_aws_http_or_metrics_library(args: tuple[str, ...]) -> None:
    assert imported_modules(*args) & HEAVY == set()


def modules_at_exit(*args: str) -> set[str]:
    """Every module (full dotted name) loaded when ``python -m secretsync ARGS`` ends."""
    code = (
        "import runpy, sys, atexit\n"
        "atexit.register(lambda: print('MODULES', sorted(sys.modules), file=sys.stderr))\n"
        f"sys.argv = ['secretsync', *{list(args)!r}]\n"
        "runpy.run_module('secretsync', run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
    return set(eval(line.removeprefix("MODULES ")))


@pytest.mark.slow
def test_check_imports_nothing_its_start_does_not_use() -> None:
    # argparse's stock help formatter imports shutil (and bz2, lzma) at every parser;
    # textwrap is for --help, configparser for a region from the AWS config file
    modules = modules_at_exit("check", "-c", str(REPO / "sync.yaml.example"))  # has aws.region

    assert "secretsync.config.model" in modules  # it did the work
    assert {"shutil", "bz2", "lzma", "textwrap", "configparser"} & modules == set()


def _unused_by_once(modules: set[str]) -> set[str]:
    unused: tuple[str, ...] = ("prometheus_client", "aioboto3", "boto3", "secretsync.serve")
    unused += ("secretsync.push", "secretsync.runtime.watch", "secretsync.runtime.inotify")
    unused += ("watchfiles",)
    # the .properties writer is ours (secretsync.escapes): javaproperties brings xml.sax
    unused += ("javaproperties", "xml.sax", "xml.dom")
    return {m for m in modules if m.startswith(unused)}


def test_once_imports_no_metrics_library_no_watcher_and_no_server(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", moto.url))

    modules = modules_at_exit("once", "-c", str(cfg))

    assert (tmp_path / "out" / "client.properties").exists()  # it did the work
    assert "secretsync.source.secretsmanager" in modules
    assert _unused_by_once(modules) == set()
    assert {m for m in modules if m.startswith("secretsync.notify")} == set()  # no targets


def test_once_with_a_command_target_loads_the_notifier_but_nothing_else_unused(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    marker = tmp_path / "notified"
    data = example_config(tmp_path / "out", moto.url)
    data["notify"] = {"app": {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}}
    data["outputs"][0]["notify"] = ["app"]
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    modules = modules_at_exit("once", "-c", str(cfg))

    assert marker.exists()
    assert "secretsync.notify.notifier" in modules
    assert _unused_by_once(modules) == set()


@pytest.mark.slow
def test_help_does_not_even_import_the_config_models() -> None:
    assert {"pydantic", "yaml", "structlog"} & imported_modules("--help") == set()


@pytest.mark.slow
def test_the_demo_itself_imports_no_aws_or_http_library() -> None:
    # the emulator runs as a child process; the demo speaks JSON over HTTP with urllib
    code = (
        "import sys, secretsync.demo.command, secretsync.demo.emulator; "
        "print(sorted(set(m.split('.')[0] for m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert HEAVY & set(eval(result.stdout)) == set()


def test_health_and_status_against_a_daemon_with_tls_client_certs_and_basic_auth(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    server, client = ca.issue(pki, "daemon"), ca.issue(pki, "operator", client=True)
    password = "CANARY-status-pw-71"
    port = free_port()
    data = example_config(
        tmp_path / "out",
        moto.url,
        metrics={
            "listen": f"127.0.0.1:{port}",
            "web_config": {
                "tls_server_config": {
                    "cert_file": str(server.cert),
                    "key_file": str(server.key),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": str(ca.cert),
                },
                "basic_auth_users": {
                    "operator": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
                },
            },
        },
    )
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg)
    wait_until(lambda: daemon.has_event("metrics_listening", scheme="https"), 30, "HTTPS")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECRETSYNC_")}

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "secretsync", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**base, **env},
            stdin=subprocess.DEVNULL,
        )

    # the health check needs no certificate and no password (an open path), and trusts
    # exactly the daemon's own certificate from the config
    health = wait_until(
        lambda: r if (r := cli("health", "-c", str(cfg))).returncode == 0 else None, 30
    )
    assert f"https://127.0.0.1:{port}/healthz: healthy (200)" in health.stdout

    no_cert = cli("status", "-c", str(cfg))
    assert no_cert.returncode == 1 and "HTTP 403: a client certificate is needed" in no_cert.stderr
    cert = {"SECRETSYNC_CLIENT_CERT": str(client.cert), "SECRETSYNC_CLIENT_KEY": str(client.key)}
    no_password = cli("status", "-c", str(cfg), **cert)
    assert no_password.returncode == 1 and "HTTP 401: credentials needed" in no_password.stderr
    wrong = cli(
        "status", "-c", str(cfg), SECRETSYNC_USER="operator", SECRETSYNC_PASSWORD="x", **cert
    )
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr
    creds = {"SECRETSYNC_USER": "operator", "SECRETSYNC_PASSWORD": password, **cert}
    ok = wait_until(
        lambda: r if (r := cli("status", "-c", str(cfg), **creds)).returncode == 0 else None, 30
    )
    assert "every output is current and applied" in ok.stdout
    # flags instead of the environment, and a CA bundle with the host name checked
    (tmp_path / "pw").write_text(password + "\n")
    flags = cli(
        "status",
        "--url",
        f"https://localhost:{port}/status",
        "--cacert",
        str(ca.cert),
        "--cert",
        str(client.cert),
        "--key",
        str(client.key),
        "--user",
        "operator",
        "--password-file",
        str(tmp_path / "pw"),
        "--json",
    )
    assert flags.returncode == 0, flags.stderr
    assert json.loads(flags.stdout)["current"] is True
    # a CA that did not sign the daemon's certificate is refused
    stranger = make_ca(tmp_path / "stranger", "stranger-ca")
    refused = cli(
        "health", "--url", f"https://localhost:{port}/healthz", "--cacert", str(stranger.cert)
    )
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    daemon.stop()
    log = daemon.log_path.read_text()
    assert password not in log and CANARY_PASSWORD not in log


# --- version, environment, help ------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-V", "--version"])
@pytest.mark.slow
def test_version(flag: str) -> None:
    result = run_cli(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"secretsync {__version__}\n"


def test_log_level_and_format_from_the_environment(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", moto.url))

    quiet = run_cli("once", "-c", str(cfg), env={"SECRETSYNC_LOG_LEVEL": "warning"})
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # the first pass writes: its poll_cycle is info, filtered

    (tmp_path / "out" / "client.properties").unlink()  # so the next pass writes again
    console = run_cli("once", "-c", str(cfg), env={"SECRETSYNC_LOG_FORMAT": "console"})
    assert "poll_cycle" in console.stderr and not console.stderr.startswith("{")


def test_flags_win_over_the_environment(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", moto.url))
    env: dict[str, str | None] = {
        "SECRETSYNC_LOG_LEVEL": "error",
        "SECRETSYNC_LOG_FORMAT": "console",
    }

    result = run_cli("once", "-c", str(cfg), "--log-level", "info", "--log-format", "json", env=env)

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert "poll_cycle" in [e["event"] for e in events]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SECRETSYNC_LOG_LEVEL", "loud", "debug, info, warning, error"),
        ("SECRETSYNC_LOG_FORMAT", "xml", "auto, json, console"),
    ],
)
@pytest.mark.slow
def test_a_bad_environment_value_is_a_usage_error_naming_the_variable(
    tmp_path: Path, name: str, value: str, allowed: str
) -> None:
    result = run_cli("check", "-c", str(REPO / "sync.yaml.example"), env={name: value})
    assert result.returncode == 2
    assert name in result.stderr and allowed in result.stderr and repr(value) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["fast", "5ms", "2m", "-1s"])
@pytest.mark.slow
def test_a_bad_retry_base_stops_run_before_it_starts_naming_the_variable(
    tmp_path: Path, value: str
) -> None:
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(tmp_path / "out", "http://127.0.0.1:9"))
    result = run_cli(
        "run", "-c", str(cfg), "--log-format", "console", env={"SECRETSYNC_RETRY_BASE": value}
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "SECRETSYNC_RETRY_BASE" in line and repr(value) in line and "10ms to 60s" in line
    assert not (tmp_path / "out").exists()  # nothing started


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(subcommands()))
@pytest.mark.slow
def test_every_subcommand_help_has_a_description_and_an_example(command: str) -> None:
    result = run_cli(command, "--help")

    assert result.returncode == 0, result.stderr
    text = result.stdout
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: secretsync {command}")
    description = rest.split("\n\n", 1)[0]
    assert len(description.split()) >= 8, text  # a sentence, not just the options
    # the example keeps its lines as written (RawDescriptionHelpFormatter)
    example = text.split("example", 1)[1] if "example" in text else text.split("Example", 1)[1]
    assert f"\n  secretsync {command}" in example, text


@pytest.mark.slow
def test_compound_durations_on_the_command_line() -> None:
    args = build_parser().parse_args(["demo", "--rotate-every", "1m30s"])
    assert args.rotate_every == 90

    result = run_cli("demo", "--rotate-every", "30s1m")

    assert result.returncode == 2
    assert "--rotate-every" in result.stderr and '"1m30s"' in result.stderr


# --- fatal errors follow --log-format ------------------------------------------------------


def one_json_line(stderr: str) -> dict[str, Any]:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    event: dict[str, Any] = json.loads(lines[0])
    return event


@pytest.mark.parametrize(
    "args",
    [
        ("once", "--log-format", "json"),
        ("run", "--log-format", "json"),
        ("check", "--log-format", "json"),
        ("once",),  # auto: stderr is not a terminal, so the logs (and this error) are JSON
    ],
    ids=["once-json", "run-json", "check-json", "once-auto"],
)
@pytest.mark.slow
def test_a_config_error_is_a_json_log_line_under_json_logs(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("outputs: [{path: /o/a, mode: '0666', secrets: [{id: s}]}]\n")

    result = run_cli(*args, "-c", str(cfg))

    assert result.returncode == 2
    event = one_json_line(result.stderr)
    assert event["event"] == "config_error" and event["level"] == "error"
    assert "outputs[0].mode" in event["error"] and "world-writable" in event["error"]
    assert event["config"] == str(cfg)
    assert result.stdout == ""


@pytest.mark.slow
def test_a_config_error_from_the_environment_format_is_json(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("outputz: []\n")
    result = run_cli("check", "-c", str(cfg), env={"SECRETSYNC_LOG_FORMAT": "json"})
    assert result.returncode == 2
    assert one_json_line(result.stderr)["event"] == "config_error"


@pytest.mark.slow
def test_a_config_error_under_console_logs_stays_plain_text(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("outputz: []\n")
    result = run_cli("once", "-c", str(cfg), "--log-format", "console")
    assert result.returncode == 2
    assert result.stderr.startswith("secretsync: config error: ")


def test_a_startup_error_is_a_json_log_line_under_json_logs(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    data = example_config(tmp_path / "out", moto.url)
    data["aws"] = {"endpoint_url": moto.url}  # and no region anywhere
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    no_region: dict[str, str | None] = {"AWS_REGION": None, "AWS_DEFAULT_REGION": None}

    result = run_cli("once", "--log-format", "json", "-c", str(cfg), env=no_region)

    assert result.returncode == 2
    events = [json.loads(line) for line in result.stderr.splitlines()]
    failed = [e for e in events if e["event"] == "startup_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error", result.stderr
    assert "NoRegion" in failed[0]["error"]


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
@pytest.mark.slow
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
