"""config.py: the sync.yaml contract, and `secretsync check` on malformed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secretsync.config import ConfigError, load_config, parse_config, parse_duration
from tests.conftest import REPO, run_cli

MINIMAL: dict[str, Any] = {"outputs": [{"path": "/tmp/x/a.properties", "secrets": [{"id": "s"}]}]}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), (15, 15), (0.25, 0.25), ("2", 2)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "-1s", -3, True, "1d", "", None, [1]])
def test_bad_durations_name_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r'"500ms", "30s", "5m"'):
        parse_duration(bad)


def test_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.poll.interval_s == 30 and cfg.poll.jitter == 0.1
    assert cfg.settle_s == 2 and cfg.settle_max_s == 30
    assert cfg.metrics.listen == "0.0.0.0:9464"
    assert cfg.stale_after_s == 300
    out = cfg.outputs[0]
    assert (out.format, out.mode, out.owner, out.static, out.notify) == (
        "properties",
        0o600,
        None,
        {},
        [],
    )


def test_config_is_frozen() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        cfg.outputs[0].mode = 0o644  # type: ignore[misc]


def test_example_config_is_valid_and_shares_secrets() -> None:
    cfg = load_config(REPO / "sync.yaml.example")
    assert len(cfg.outputs) == 3
    assert cfg.secret_ids == [
        "/confluent_cloud_resource/kafka_cluster/java_client",
        "/confluent_cloud_resource/schema_registry_cluster/java_client",
    ]
    assert cfg.outputs[0].static == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}


def test_relative_output_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "sync.yaml"
    cfg_file.write_text("outputs:\n  - path: out/a.properties\n    secrets: [{id: s}]\n")
    assert load_config(cfg_file).outputs[0].path == tmp_path / "out" / "a.properties"


def test_static_scalars_become_java_text() -> None:
    data = {"outputs": [{**MINIMAL["outputs"][0], "static": {"a": 3, "b": True, "c": 1.5}}]}
    assert parse_config(data).outputs[0].static == {"a": "3", "b": "true", "c": "1.5"}


def test_keys_list_and_mapping() -> None:
    data = {
        "outputs": [
            {
                "path": "/tmp/x/a",
                "secrets": [
                    {"id": "one", "keys": ["k1", "k2"]},
                    {"id": "two", "keys": {"user": "basic.auth.user.info"}},
                    {"id": "three", "as": "ssl.truststore.password"},
                ],
            }
        ]
    }
    refs = parse_config(data).outputs[0].secrets
    assert refs[0].output_keys() == {"k1", "k2"}
    assert refs[1].output_keys() == {"basic.auth.user.info"}
    assert refs[2].output_keys() == {"ssl.truststore.password"}


# (name, config text, field named in the message, a word of the allowed values)
MALFORMED = [
    ("unknown top-level key", "outputz: []\n", "outputz", "allowed: aws, poll"),
    (
        "unknown output key",
        "outputs:\n  - path: /o/a\n    secrets: [{id: s}]\n    colour: red\n",
        "outputs[0].colour",
        "allowed: path, format, mode",
    ),
    (
        "bad duration",
        "poll: {interval: 5 parsecs}\noutputs: [{path: /o/a, secrets: [{id: s}]}]\n",
        "poll.interval",
        '"500ms"',
    ),
    (
        "interval out of range",
        "poll: {interval: 0s}\noutputs: [{path: /o/a, secrets: [{id: s}]}]\n",
        "poll.interval",
        ">= 0.1",
    ),
    (
        "jitter out of range",
        "poll: {jitter: 2}\noutputs: [{path: /o/a, secrets: [{id: s}]}]\n",
        "poll.jitter",
        "<= 0.5",
    ),
    (
        "unquoted mode",
        "outputs: [{path: /o/a, mode: 0600, secrets: [{id: s}]}]\n",
        "outputs[0].mode",
        "quote it",
    ),
    (
        "world-writable mode",
        "outputs: [{path: /o/a, mode: '0666', secrets: [{id: s}]}]\n",
        "outputs[0].mode",
        "world-writable",
    ),
    (
        "unknown format",
        "outputs: [{path: /o/a, format: xml, secrets: [{id: s}]}]\n",
        "outputs[0].format",
        "'properties', 'json' or 'env'",
    ),
    (
        "unknown signal",
        "notify: {app: {signal: SIGFOO, pidfile: /p}}\n"
        "outputs: [{path: /o/a, secrets: [{id: s}], notify: [app]}]\n",
        "notify.app.signal",
        "SIGHUP, SIGUSR1",
    ),
    (
        "undefined notify name",
        "outputs: [{path: /o/a, secrets: [{id: s}], notify: [ghost]}]\n",
        "outputs[0].notify",
        "allowed: (none defined)",
    ),
    (
        "two outputs one path",
        "outputs:\n  - {path: /o/a, secrets: [{id: s}]}\n  - {path: /o/a, secrets: [{id: t}]}\n",
        "outputs[1].path",
        "each output needs its own",
    ),
    (
        "key from two sources",
        "outputs:\n  - path: /o/a\n    secrets:\n"
        "      - {id: s, keys: [k]}\n      - {id: t, keys: [k]}\n",
        "outputs[0]",
        "one source",
    ),
    (
        "static clashes with a secret",
        "outputs:\n  - path: /o/a\n    static: {k: v}\n    secrets: [{id: s, keys: [k]}]\n",
        "outputs[0]",
        "one source",
    ),
    (
        "keys and as together",
        "outputs: [{path: /o/a, secrets: [{id: s, keys: [k], as: k}]}]\n",
        "outputs[0].secrets[0]",
        "either `keys`",
    ),
    (
        "keys of the wrong type",
        "outputs: [{path: /o/a, secrets: [{id: s, keys: 5}]}]\n",
        "outputs[0].secrets[0].keys",
        "a list of keys or a mapping",
    ),
    ("no secrets", "outputs: [{path: /o/a, secrets: []}]\n", "outputs[0].secrets", "at least 1"),
    ("no outputs", "aws: {region: us-east-1}\n", "outputs", "required"),
    (
        "notify target with two kinds",
        "notify: {app: {command: [x], http: {url: 'http://h'}}}\n"
        "outputs: [{path: /o/a, secrets: [{id: s}], notify: [app]}]\n",
        "notify.app",
        "exactly one of",
    ),
    (
        "bad listen address",
        "metrics: {listen: nine}\noutputs: [{path: /o/a, secrets: [{id: s}]}]\n",
        "metrics.listen",
        "host:port",
    ),
    (
        "settle_max below settle",
        "settle: 10s\nsettle_max: 1s\noutputs: [{path: /o/a, secrets: [{id: s}]}]\n",
        "settle_max",
        ">= settle",
    ),
    ("YAML syntax error", "outputs: [\n", "line", "YAML syntax error"),
    ("not a mapping", "- just\n- a list\n", "config", "mapping at the top level"),
]


@pytest.mark.parametrize(
    ("name", "text", "field", "allowed"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_config_is_one_clear_error_with_exit_2(
    tmp_path: Path, name: str, text: str, field: str, allowed: str
) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(text)

    result = run_cli("check", "-c", str(cfg))

    assert result.returncode == 2, (name, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("secretsync: config error: ")
    assert field in result.stderr, result.stderr
    assert allowed in result.stderr, result.stderr
    assert result.stdout == ""


def test_once_with_a_malformed_config_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(f"outputs: [{{path: {out}/a, mode: '0666', secrets: [{{id: s}}]}}]\n")

    result = run_cli("once", "-c", str(cfg))

    assert result.returncode == 2
    assert not out.exists()


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("check", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read config" in result.stderr


def test_check_accepts_the_example() -> None:
    result = run_cli("check", "-c", str(REPO / "sync.yaml.example"))
    assert result.returncode == 0
    assert "ok (3 outputs, 2 secrets)" in result.stdout


def test_errors_are_config_error_not_pydantic() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"outputs": [{"path": "/o/a", "secrets": [{"id": "s"}], "x": 1}]})
    assert "pydantic" not in str(info.value)
