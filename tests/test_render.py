"""render.py: pure renderers, checked against what Java's Properties.load reads."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from secretsync.config import OutputConfig, parse_config
from secretsync.render import RenderError, SecretValue, collect, env_key, render
from tests.support.java import JavaProperties

NASTY = {
    "sasl.jaas.config": (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="KEY" password="p\\"a\\\\ss\\";'
    ),
    "quote.and.backslash": 'a"b\\c\\\\d\\',
    "specials": "= : # ! = :=#!",
    "spaces": "  leading and trailing  ",
    "unicode": "pässwörd-日本-😀",
    "empty": "",
    "newline": "line1\nline2\r\nline3",
    "injection": "x\nsecurity.protocol=PLAINTEXT",
    "tab\tkey with = and : and space": "v",
    "#comment.like.key": "!bang",
    "unicode.kéy": "v",
}


def output(format: str = "properties", **extra: Any) -> OutputConfig:
    data = {"outputs": [{"path": "/tmp/o/a", "format": format, "secrets": [{"id": "s"}], **extra}]}
    return parse_config(data).outputs[0]


def value(data: object, secret_id: str = "s") -> SecretValue:
    text = data if isinstance(data, str) else json.dumps(data)
    return SecretValue(secret_id=secret_id, version_id="v1", text=text)


def test_properties_round_trip_through_java(tmp_path: Path, java: JavaProperties) -> None:
    out = output(static={"security.protocol": "SASL_SSL"})
    path = tmp_path / "client.properties"
    path.write_bytes(render(out, {"s": value(NASTY)}))

    assert java.load(path) == {**NASTY, "security.protocol": "SASL_SSL"}


def test_a_value_cannot_add_a_key(tmp_path: Path, java: JavaProperties) -> None:
    out = output()
    path = tmp_path / "client.properties"
    path.write_bytes(render(out, {"s": value({"k": "x\nsecurity.protocol=PLAINTEXT"})}))

    loaded = java.load(path)
    assert set(loaded) == {"k"}
    assert loaded["k"] == "x\nsecurity.protocol=PLAINTEXT"


def test_properties_are_ascii_sorted_and_timestampless() -> None:
    data = render(output(), {"s": value({"b": "2", "a": "é"})})
    text = data.decode("ascii")  # ensure_ascii: Java reads ISO-8859-1
    lines = text.splitlines()
    assert lines[0].startswith("#Managed by secretsync")
    assert lines[1] == "#Sources: s"
    assert lines[2:] == ["a=\\u00e9", "b=2"]
    assert render(output(), {"s": value({"a": "é", "b": "2"})}) == data


def test_identical_values_give_identical_bytes_across_versions() -> None:
    v1 = SecretValue("s", "version-1", text='{"a": "1"}')
    v2 = SecretValue("s", "version-2", text='{"a": "1"}')
    assert render(output(), {"s": v1}) == render(output(), {"s": v2})
    assert b"version" not in render(output(), {"s": v1})


def test_keys_list_is_a_required_subset() -> None:
    out = output(secrets=[{"id": "s", "keys": ["a"]}])
    assert collect(out, {"s": value({"a": "1", "b": "2"})}) == {"a": "1"}


def test_keys_mapping_renames() -> None:
    out = output(secrets=[{"id": "s", "keys": {"user": "basic.auth.user.info"}}])
    assert collect(out, {"s": value({"user": "K:S", "x": "y"})}) == {"basic.auth.user.info": "K:S"}


def test_missing_required_key_names_the_key_never_a_value() -> None:
    out = output(secrets=[{"id": "s", "keys": ["sasl.jaas.config", "bootstrap.servers"]}])
    with pytest.raises(RenderError) as info:
        collect(out, {"s": value({"bootstrap.servers": "CANARY-value-123"})})
    message = str(info.value)
    assert "'sasl.jaas.config'" in message and "'s'" in message
    assert "CANARY-value-123" not in message


def test_plain_string_secret_needs_as() -> None:
    with pytest.raises(RenderError, match=r"not a JSON object.*`as:"):
        collect(output(), {"s": value("CANARY-plain")})
    out = output(secrets=[{"id": "s", "as": "ssl.truststore.password"}])
    assert collect(out, {"s": value("CANARY-plain")}) == {"ssl.truststore.password": "CANARY-plain"}


def test_json_array_is_not_an_object() -> None:
    with pytest.raises(RenderError, match="not a JSON object"):
        collect(output(), {"s": value([1, 2])})


def test_binary_secret_with_as() -> None:
    out = output(secrets=[{"id": "s", "as": "k"}])
    assert collect(out, {"s": SecretValue("s", "v", binary=b"bin")}) == {"k": "bin"}
    with pytest.raises(RenderError, match="binary secrets need `as`"):
        collect(output(), {"s": SecretValue("s", "v", binary=b"bin")})


def test_scalars_become_text_and_nested_values_are_errors() -> None:
    assert collect(output(), {"s": value({"n": 3, "f": 1.5, "t": True})}) == {
        "n": "3",
        "f": "1.5",
        "t": "true",
    }
    with pytest.raises(RenderError, match="'nested' holds a object"):
        collect(output(), {"s": value({"nested": {"CANARY": 1}})})
    with pytest.raises(RenderError, match="holds a null"):
        collect(output(), {"s": value({"k": None})})


def test_two_sources_giving_one_key_is_an_error() -> None:
    out = output(secrets=[{"id": "s"}, {"id": "t"}])
    with pytest.raises(RenderError, match="'k' is given by both secret 's' and secret 't'"):
        collect(out, {"s": value({"k": "1"}), "t": value({"k": "2"}, "t")})
    with pytest.raises(RenderError, match="both static and secret 's'"):
        collect(output(static={"k": "v"}), {"s": value({"k": "1"})})


def test_repr_of_a_value_hides_it() -> None:
    v = value({"k": "CANARY-repr"})
    assert "CANARY" not in repr(v) and "CANARY" not in str(v)


def test_json_format() -> None:
    data = render(output("json"), {"s": value({"b": "ü", "a": "1"})})
    assert data == b'{\n  "a": "1",\n  "b": "\xc3\xbc"\n}\n'


def test_env_keys() -> None:
    assert env_key("sasl.jaas.config") == "SASL_JAAS_CONFIG"
    assert env_key("basic-auth/user") == "BASIC_AUTH_USER"
    assert env_key("9lives") == "_9LIVES"


def test_env_format_survives_a_real_shell() -> None:
    data = render(output("env"), {"s": value(NASTY)})
    script = data.decode() + "\nprintf '%s' \"$SASL_JAAS_CONFIG\"; printf '\\0%s' \"$INJECTION\""
    result = subprocess.run(["sh", "-c", script], capture_output=True, check=True, timeout=10)
    jaas, injection = result.stdout.decode().split("\0")
    assert jaas == NASTY["sasl.jaas.config"]
    assert injection == NASTY["injection"]
    assert "SECURITY_PROTOCOL" not in data.decode().replace("INJECTION='x\nsecurity", "")


def test_env_collision_is_an_error() -> None:
    with pytest.raises(RenderError, match="both become variable A_B"):
        render(output("env"), {"s": value({"a.b": "1", "a_b": "2"})})


def test_env_values_are_shell_quoted() -> None:
    data = render(output("env"), {"s": value({"k": "$(id) `id` 'q'"})}).decode()
    assert f"K={shlex.quote('$(id) `id` ' + chr(39) + 'q' + chr(39))}" in data
