"""config.py: the sync.yaml contract, and `secretsync check` on malformed files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import ConfigError, load_config, parse_config, parse_duration
from tests.support.daemon import run_cli
from tests.support.paths import REPO

# a path no checkout lives under: tests/test_repo.py flags a tracked file naming the checkout
MINIMAL: dict[str, Any] = {"outputs": [{"path": "/srv/out/a.properties", "secrets": [{"id": "s"}]}]}


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
    assert cfg.metrics.listen == "127.0.0.1:9464"  # loopback; the manifests set 0.0.0.0
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
        cfg.outputs[0].mode = 0o644  # type: ignore[misc,unused-ignore]  # read-only once frozen


def test_example_config_is_valid_and_shares_secrets() -> None:
    cfg = load_config(REPO / "sync.yaml.example")
    assert len(cfg.outputs) == 3
    assert cfg.secret_ids == [
        "/confluent_cloud_resource/kafka_cluster/java_client",
        "/confluent_cloud_resource/schema_registry_cluster/java_client",
    ]
    assert cfg.outputs[0].static == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.client.callback.handler.class": "dev.secretsync.kafka.FileCredentialCallbackHandler",
        "secretsync.credentials.file": "/etc/kafka/client.properties",
    }


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
                "path": "/srv/out/a",
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
    (
        "no secrets",
        "outputs: [{path: /o/a, secrets: []}]\n",
        "outputs[0].secrets",
        "at least one secret is required",
    ),
    (
        "SIGKILL",
        "notify: {app: {signal: SIGKILL, pidfile: /p}}\n"
        "outputs: [{path: /o/a, secrets: [{id: s}], notify: [app]}]\n",
        "notify.app.signal",
        "SIGKILL cannot be used (a process cannot handle it); allowed: SIGHUP",
    ),
    (
        "owner in fullwidth digits",
        "outputs: [{path: /o/a, owner: '４２', secrets: [{id: s}]}]\n",
        "outputs[0].owner",
        "or a numeric uid 0-4294967294",
    ),
    (
        "process regex matching everything",
        "notify: {app: {process: '.*'}}\n"
        "outputs: [{path: /o/a, secrets: [{id: s}], notify: [app]}]\n",
        "notify.app.process",
        "would match every process",
    ),
    (
        "one file twice through ..",
        "outputs:\n  - {path: /o/x.properties, secrets: [{id: s}]}\n"
        "  - {path: /o/../o/x.properties, secrets: [{id: t}]}\n",
        "outputs[1].path",
        "each output needs its own",
    ),
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
    (
        "sasl from a secret the output does not list",
        "outputs: [{path: /o/a, secrets: [{id: s}], sasl: {mechanism: PLAIN, secret: t}}]\n",
        "outputs[0]",
        "sasl.secret: 't' is not one of this output's secrets",
    ),
    (
        "unknown sasl mechanism",
        "outputs: [{path: /o/a, secrets: [{id: s}], sasl: {mechanism: GSSAPI, secret: s}}]\n",
        "outputs[0].sasl.mechanism",
        "allowed: 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'",
    ),
    (
        "sasl next to a static sasl.mechanism",
        "outputs: [{path: /o/a, secrets: [{id: s, keys: []}], static: {sasl.mechanism: PLAIN},"
        " sasl: {mechanism: PLAIN, secret: s}}]\n",
        "outputs[0]",
        "key 'sasl.mechanism' is given by both static and sasl",
    ),
    ("YAML syntax error", "outputs: [\n", "line", "YAML syntax error"),
    ("not a mapping", "- just\n- a list\n", "config", "mapping at the top level"),
]


@pytest.mark.parametrize(
    ("name", "text", "field", "allowed"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
@pytest.mark.slow
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


@pytest.mark.slow
def test_once_with_a_malformed_config_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(f"outputs: [{{path: {out}/a, mode: '0666', secrets: [{{id: s}}]}}]\n")

    result = run_cli("once", "-c", str(cfg))

    assert result.returncode == 2
    assert not out.exists()


@pytest.mark.slow
def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("check", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read config" in result.stderr


@pytest.mark.slow
def test_check_accepts_the_example() -> None:
    result = run_cli("check", "-c", str(REPO / "sync.yaml.example"))
    assert result.returncode == 0
    assert "ok (3 outputs, 2 secrets)" in result.stdout


def test_errors_are_config_error_not_pydantic() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"outputs": [{"path": "/o/a", "secrets": [{"id": "s"}], "x": 1}]})
    assert "pydantic" not in str(info.value)


# --- values echoed in errors are short, and so is the whole message ---------------------


HUGE_STRING = "Q" * 1_000_000


@pytest.mark.parametrize(
    "data",
    [
        {"poll": {"interval": HUGE_STRING}, "outputs": MINIMAL["outputs"]},
        {"poll": {"interval": list(range(100_000))}, "outputs": MINIMAL["outputs"]},
        {"outputs": [{**MINIMAL["outputs"][0], "mode": HUGE_STRING}]},
        {"outputs": [{**MINIMAL["outputs"][0], "format": HUGE_STRING}]},
        {"outputs": [{**MINIMAL["outputs"][0], "owner": list(range(100_000))}]},
        {"notify": {"a": {"signal": HUGE_STRING, "pidfile": "/p"}}, "outputs": MINIMAL["outputs"]},
        {"poll": {"jitter": HUGE_STRING}, "outputs": MINIMAL["outputs"]},
    ],
    ids=["duration string", "duration list", "mode", "format", "owner list", "signal", "float"],
)
def test_a_huge_value_is_cut_short_in_the_error(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert len(message) <= 300, message
    assert "Q" * 81 not in message and "99998" not in message
    assert "…" in message or "a list of 100000 items" in message


def test_a_config_error_has_at_most_50_lines_of_at_most_300_characters() -> None:
    long_key = "k" * 5000
    outputs = [
        {"path": f"/o/{i}", "mode": "x", "secrets": [{"id": "s", "keys": {long_key: long_key}}]}
        for i in range(200)
    ]
    with pytest.raises(ConfigError) as info:
        parse_config({"outputs": outputs, "notify": {long_key: {"command": []}}})
    lines = str(info.value).splitlines()
    assert len(lines) == 50
    assert all(len(line) <= 300 for line in lines)
    assert lines[-1].startswith("… and ") and lines[-1].endswith(" more problems")


@pytest.mark.slow
def test_a_huge_yaml_string_is_cut_short_by_check(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(f"poll: {{interval: '{'x' * 500_000}'}}\n" + "outputs: []\n")

    result = run_cli("check", "-c", str(cfg))

    assert result.returncode == 2
    assert "poll.interval: expected a duration" in result.stderr
    assert "outputs: at least one output is required" in result.stderr
    assert len(result.stderr) < 1000


# --- pydantic's own wording never reaches the user ----------------------------------------

OUT = MINIMAL["outputs"][0]
RAW_WORDING = [
    ({"aws": "us-east-1", "outputs": [OUT]}, "aws: expected a mapping with keys from: region"),
    ({"outputs": "x"}, "outputs: expected a list, got 'x'"),
    ({"outputs": []}, "outputs: at least one output is required"),
    ({"outputs": [{**OUT, "secrets": [{"id": ""}]}]}, "secrets[0].id: must not be empty"),
    ({"outputs": [{**OUT, "secrets": [{"id": 5}]}]}, "id: expected a string, got 5"),
    ({"outputs": [{**OUT, "secrets": [{"id": "x" * 3000}]}]}, "at most 2048 characters"),
    ({"poll": {"jitter": "abc"}, "outputs": [OUT]}, "poll.jitter: expected a number, got 'abc'"),
    ({"notify": {"a": {"command": ["x"], "retries": 1.5}}, "outputs": [OUT]}, "a whole number"),
    ({"notify": {"a": {"command": []}}, "outputs": [OUT]}, "notify.a.command: at least one"),
    ({"notify": {"a": None}, "outputs": [OUT]}, "notify.a: expected a mapping with keys from"),
    ({"outputs": [{**OUT, "static": "x"}]}, "outputs[0].static: expected a mapping"),
    ({"outputs": [{**OUT, "format": "xml"}]}, "allowed: 'properties', 'json' or 'env'; got 'xml'"),
    (
        {"notify": {"a": {"http": {"url": "http://h", "method": "FETCH"}}}, "outputs": [OUT]},
        "method: allowed: 'GET', 'POST'",
    ),
    ({"metrics": {"listen": 9464}, "outputs": [OUT]}, "metrics.listen: expected a string"),
]


@pytest.mark.parametrize(("data", "expected"), RAW_WORDING, ids=[e for _, e in RAW_WORDING])
def test_errors_are_in_our_words(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert expected in message
    assert "Input should" not in message and "List should" not in message
    assert "pydantic" not in message.lower()


# --- one file, one output ------------------------------------------------------------------


def test_output_paths_are_kept_normalised() -> None:
    data = {"outputs": [{**OUT, "path": "/o/./sub/../x.properties"}]}
    assert parse_config(data).outputs[0].path == Path("/o/x.properties")
    data = {"outputs": [{**OUT, "path": "//o/x.properties"}]}
    assert parse_config(data).outputs[0].path == Path("/o/x.properties")


SAME_FILE = ["/o/../o/x.properties", "/o/./x.properties", "//o/x.properties"]


@pytest.mark.parametrize("second", SAME_FILE)
def test_two_spellings_of_one_path_are_one_output(second: str) -> None:
    data = {"outputs": [{**OUT, "path": "/o/x.properties"}, {**OUT, "path": second}]}
    with pytest.raises(ConfigError, match=r"outputs\[1\].path: the same file as outputs\[0\].path"):
        parse_config(data)


def test_two_outputs_through_a_symlinked_directory_are_one_file(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        "outputs:\n"
        "  - {path: real/x.properties, secrets: [{id: s}]}\n"
        "  - {path: other.properties, secrets: [{id: s}]}\n"
        f"  - {{path: {tmp_path}/link/x.properties, secrets: [{{id: t}}]}}\n"
    )

    with pytest.raises(ConfigError) as info:
        load_config(cfg)

    message = str(info.value)
    assert "outputs[2].path" in message and "outputs[0].path" in message
    assert "outputs[2].path: the same file as outputs[0].path through a symlink" in message
    assert os.path.realpath(tmp_path / "real" / "x.properties") in message


def test_an_output_that_is_a_symlink_to_another_outputs_file_is_that_file(
    tmp_path: Path,
) -> None:
    # the directories are resolved once per directory: a link at the file's own name is
    # still followed (into another directory, through a linked directory)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "alias.properties").symlink_to(tmp_path / "link" / "x.properties")
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        "outputs:\n"
        "  - {path: real/x.properties, secrets: [{id: s}]}\n"
        "  - {path: real/y.properties, secrets: [{id: s}]}\n"
        "  - {path: alias.properties, secrets: [{id: t}]}\n"
    )

    with pytest.raises(ConfigError) as info:
        load_config(cfg)

    assert "outputs[2].path: the same file as outputs[0].path through a symlink" in str(info.value)


@pytest.mark.slow
def test_a_symlinked_file_is_the_file_it_points_to(tmp_path: Path) -> None:
    (tmp_path / "a.properties").symlink_to(tmp_path / "b.properties")
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        "outputs:\n  - {path: a.properties, secrets: [{id: s}]}\n"
        "  - {path: b.properties, secrets: [{id: t}]}\n"
    )
    result = run_cli("check", "-c", str(cfg))
    assert result.returncode == 2
    assert "outputs[1].path" in result.stderr and "outputs[0].path" in result.stderr


@pytest.mark.parametrize("field", ["path", "pidfile"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "expected a file path"), ("/o/a\0b", "NUL"), ("/o/dir/", "not a directory")],
    ids=["empty", "NUL", "directory"],
)
def test_bad_paths_are_config_errors(field: str, value: str, problem: str) -> None:
    out = {**OUT, "notify": ["app"]}
    target = {"signal": "SIGHUP", "pidfile": "/run/app.pid"}
    if field == "path":
        out["path"] = value
    else:
        target["pidfile"] = value
    with pytest.raises(ConfigError, match=problem) as info:
        parse_config({"outputs": [out], "notify": {"app": target}})
    assert ("outputs[0].path" if field == "path" else "notify.app.pidfile") in str(info.value)


# --- owner and group -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["owner", "group"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        ("0", 0),
        ("1000", 1000),
        (4294967294, 4294967294),
        ("kafka", "kafka"),
        ("Kafka_App-1.x", "Kafka_App-1.x"),
        ("_svc", "_svc"),
        ("machine$", "machine$"),
        ("a" * 32, "a" * 32),
    ],
)
def test_good_owners_and_groups(field: str, value: object, expected: object) -> None:
    out = parse_config({"outputs": [{**OUT, field: value}]}).outputs[0]
    assert getattr(out, field) == expected


@pytest.mark.parametrize("field", ["owner", "group"])
@pytest.mark.parametrize(
    "value",
    [
        -1,
        "-1",
        4294967295,
        "4294967295",
        "99999999999999999999",
        "４２",  # fullwidth digits: str.isdigit() says yes
        "٤٢",  # Arabic-Indic digits
        "\u212aafka",  # KELVIN SIGN, which folds to "k"
        True,
        1.5,
        "",
        "a" * 33,
        "kafka app",
        "1kafka",
        "-kafka",
        "ka$fka",
        [1000],
    ],
)
def test_bad_owners_and_groups_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"outputs\[0\]\.{field}: (expected a|out of range)"):
        parse_config({"outputs": [{**OUT, field: value}]})


# --- notify targets ------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [".*", "x?", "", "^", "a|", "(?:)", "$", "\\s*"])
def test_a_process_regex_matching_the_empty_string_is_refused(pattern: str) -> None:
    data = {"notify": {"app": {"process": pattern}}, "outputs": [OUT]}
    with pytest.raises(ConfigError, match=r"notify\.app\.process: .*would match every process"):
        parse_config(data)


def test_a_specific_process_regex_is_accepted() -> None:
    data = {"notify": {"app": {"process": "java .*KafkaApp"}}, "outputs": [OUT]}
    assert parse_config(data).notify["app"].process == "java .*KafkaApp"


@pytest.mark.parametrize("name", ["SIGKILL", "kill", "SIGSTOP", "stop"])
def test_uncatchable_signals_say_why(name: str) -> None:
    data = {"notify": {"app": {"signal": name, "pidfile": "/p"}}, "outputs": [OUT]}
    with pytest.raises(ConfigError, match=r"SIG(KILL|STOP) cannot be used \(a process cannot"):
        parse_config(data)


def test_a_relative_pidfile_resolves_against_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    cfg = conf_dir / "sync.yaml"
    cfg.write_text(
        "notify: {app: {pidfile: run/../run/app.pid}}\n"
        "outputs: [{path: a.properties, secrets: [{id: s}], notify: [app]}]\n"
    )

    config = load_config(cfg)

    assert config.notify["app"].pidfile == conf_dir / "run" / "app.pid"
    assert config.outputs[0].path == conf_dir / "a.properties"


def test_a_relative_pidfile_needs_a_config_file() -> None:
    with pytest.raises(ConfigError, match=r"notify\.app\.pidfile: must be an absolute path"):
        parse_config({"notify": {"app": {"pidfile": "app.pid"}}, "outputs": [OUT]})


# --- empty sections ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_example_with_region_commented_out_is_valid(tmp_path: Path) -> None:
    text = (REPO / "sync.yaml.example").read_text()
    assert "\n  region: us-east-1" in text
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(text.replace("\n  region: us-east-1", "\n  # region: us-east-1"))

    config = load_config(cfg)

    assert config.aws.region is None and config.aws.endpoint_url is None
    assert run_cli("check", "-c", str(cfg)).returncode == 0


def test_empty_sections_mean_their_defaults() -> None:
    data = {
        "aws": None,
        "poll": None,
        "metrics": None,
        "notify": None,
        "outputs": [{**OUT, "static": None, "notify": None}],
    }
    config = parse_config(data)
    assert config == parse_config(MINIMAL)
    assert config.metrics.listen == "127.0.0.1:9464"  # an empty `metrics:` does not disable it


def test_empty_outputs_or_secrets_say_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"^outputs: at least one output is required$"):
        parse_config({"outputs": None})
    with pytest.raises(ConfigError, match=r"^outputs\[0\]\.secrets: at least one secret is req"):
        parse_config({"outputs": [{"path": "/o/a", "secrets": None}]})


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(cfg)


# --- `~` is never expanded: refused, naming the field --------------------------------------


@pytest.mark.parametrize("value", ["~/client.properties", "~", "~kafka/client.properties"])
@pytest.mark.parametrize("field", ["path", "pidfile", "state_dir"])
def test_a_path_starting_with_a_tilde_is_refused_not_written_under_a_tilde_directory(
    tmp_path: Path, field: str, value: str
) -> None:
    out: dict[str, Any] = {"path": "out/a.properties", "secrets": [{"id": "s"}]}
    data: dict[str, Any] = {"outputs": [out]}
    if field == "path":
        out["path"] = value if value != "~" else "~/a"
    elif field == "pidfile":
        data["notify"] = {"app": {"pidfile": value if value != "~" else "~/a.pid"}}
        out["notify"] = ["app"]
    else:
        data["state_dir"] = value
    where = {"path": "outputs[0].path", "pidfile": "notify.app.pidfile", "state_dir": "state_dir"}

    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path)

    message = str(info.value)
    assert message.startswith(f"{where[field]}: "), message
    assert "`~` is not expanded" in message and "absolute path" in message
    assert not (tmp_path / "~").exists()


@pytest.mark.slow
def test_check_refuses_a_tilde_output_path_with_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text("outputs: [{path: ~/client.properties, secrets: [{id: s}]}]\n")

    result = run_cli("check", "-c", str(cfg))

    assert result.returncode == 2
    assert "outputs[0].path: `~` is not expanded" in result.stderr


@pytest.mark.parametrize("value", ["a~b/x.properties", "/o/~/x.properties", "/o/x~"])
def test_a_tilde_after_the_start_is_an_ordinary_character(tmp_path: Path, value: str) -> None:
    out = {"path": value, "secrets": [{"id": "s"}]}
    path = parse_config({"outputs": [out]}, base_dir=tmp_path).outputs[0].path
    assert path.name == Path(value).name and "~" in str(path)


# --- compound durations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90),
        ("1h30m", 5400),
        ("1h0m5s", 3605),
        ("2m500ms", 120.5),
        ("1h30m15s250ms", 5415.25),
        ("1.5m30s", 120),
        (" 1m30s ", 90),
        ("1h 30m", 5400),
    ],
)
def test_compound_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30s1m", "1m1m", "1m30", "30 1m", "1m-30s", "m30s", "1h30m1h"])
def test_bad_compound_durations_name_the_accepted_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=r'"1m30s"'):
        parse_duration(bad)


def test_compound_durations_in_the_config() -> None:
    data = {
        "poll": {"interval": "1m30s"},
        "settle": "1m30s",
        "settle_max": "1h30m",
        "outputs": [OUT],
    }
    config = parse_config(data)
    assert (config.poll.interval_s, config.settle_s, config.settle_max_s) == (90, 90, 5400)


# --- every duplicate is named --------------------------------------------------------------


DUPLICATES = [
    (
        "a key listed twice in keys",
        {"outputs": [{**OUT, "secrets": [{"id": "s", "keys": ["a", "user.name", "user.name"]}]}]},
        ["outputs[0].secrets[0].keys", "'user.name'"],
    ),
    (
        "two secret keys mapped to one output key",
        {"outputs": [{**OUT, "secrets": [{"id": "s", "keys": {"u1": "user", "u2": "user"}}]}]},
        ["outputs[0].secrets[0].keys", "'u1'", "'u2'", "'user'"],
    ),
    (
        "two outputs one path",
        {"outputs": [OUT, {**OUT, "secrets": [{"id": "t"}]}]},
        ["outputs[1].path", "outputs[0].path", "/srv/out/a.properties"],
    ),
    (
        "a key from two secrets",
        {"outputs": [{**OUT, "secrets": [{"id": "s", "keys": ["k"]}, {"id": "t", "as": "k"}]}]},
        ["outputs[0]", "key 'k'", "secret 's'", "secret 't'"],
    ),
    (
        "a key from static and a secret",
        {"outputs": [{**OUT, "static": {"k": "v"}, "secrets": [{"id": "s", "keys": ["k"]}]}]},
        ["outputs[0]", "key 'k'", "static", "secret 's'"],
    ),
    (
        "a derived key also given by static",
        {
            "outputs": [
                {
                    **OUT,
                    "static": {"sasl.jaas.config": "x"},
                    "secrets": [{"id": "s", "keys": []}],
                    "sasl": {"mechanism": "PLAIN", "secret": "s"},
                }
            ]
        },
        ["outputs[0]", "key 'sasl.jaas.config'", "static", "sasl"],
    ),
    (
        "username_key and password_key the same",
        {
            "outputs": [
                {
                    **OUT,
                    "secrets": [{"id": "s", "keys": []}],
                    "basic_auth": {"secret": "s", "username_key": "k", "password_key": "k"},
                }
            ]
        },
        ["outputs[0].basic_auth", "'k'"],
    ),
    (
        "failover region equal to the region",
        {"aws": {"region": "us-east-1", "failover_region": "us-east-1"}, "outputs": [OUT]},
        ["aws", "failover_region", "us-east-1"],
    ),
]


@pytest.mark.parametrize(("name", "data", "named"), DUPLICATES, ids=[d[0] for d in DUPLICATES])
def test_every_duplicate_is_named(name: str, data: dict[str, Any], named: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    for word in named:
        assert word in message, (name, message)


def test_a_yaml_key_given_twice_is_named_with_both_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        "outputs:\n  - path: /o/a\n    secrets: [{id: s}]\n"
        "    static:\n      security.protocol: SSL\n      security.protocol: SASL_SSL\n"
    )
    with pytest.raises(ConfigError, match=r"'security\.protocol' appears twice .* line 5.* line 6"):
        load_config(cfg)


def test_two_outputs_one_file_through_a_symlink_are_named(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(
        "outputs:\n  - {path: real/a.properties, secrets: [{id: s}]}\n"
        "  - {path: link/a.properties, secrets: [{id: t}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert "outputs[1].path" in message and "outputs[0].path" in message
    assert str(tmp_path / "real" / "a.properties") in message
