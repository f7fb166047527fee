"""render.py: pure renderers, checked against what Java's Properties.load reads."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretsync.config.model import OutputConfig, parse_config
from secretsync.output.render import RenderError, collect, env_key, leaf_strings, render
from secretsync.source.protocol import SecretValue
from tests.support.java import JavaProperties
from tests.support.render_cases import (
    FORMATS,
    SECRET_ID,
    Case,
    cases,
    expected,
    message_problems,
    texts,
)
from tests.support.shell import source_env_files

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
    with pytest.raises(RenderError, match="'nested' holds an object;"):
        collect(output(), {"s": value({"nested": {"CANARY": 1}})})
    with pytest.raises(RenderError, match="'k' holds null;"):
        collect(output(), {"s": value({"k": None})})
    with pytest.raises(RenderError, match="'k' holds a list;"):
        collect(output(), {"s": value({"k": ["CANARY"]})})


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


@pytest.mark.slow
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


# --- text that is not valid Unicode -------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ascii_json", [True, False])
def test_a_lone_surrogate_in_a_value_is_a_render_error(fmt: str, ascii_json: bool) -> None:
    text = json.dumps({"ok": "fine", "note": "CANARY-x\ud800y"}, ensure_ascii=ascii_json)
    with pytest.raises(RenderError) as info:
        render(output(fmt), {"s": SecretValue("s", "v1", text=text)})
    message = str(info.value)
    assert message.startswith("secret 's': key 'note' holds text that is not valid Unicode")
    assert "character 9 of 10" in message
    assert "CANARY" not in message and "\\ud800" not in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_lone_surrogate_in_a_key_is_a_render_error_that_hides_the_key(fmt: str) -> None:
    with pytest.raises(RenderError) as info:
        render(output(fmt), {"s": value({"a": "1", "CANARY\udc00": "2"})})
    message = str(info.value)
    assert message.startswith("secret 's': a key is not valid Unicode text (key 2 of 2, 7 ")
    assert "CANARY" not in message and "dc00" not in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_text_that_is_not_valid_unicode_is_a_render_error(fmt: str) -> None:
    plain = output(fmt, secrets=[{"id": "s", "as": "password"}])
    with pytest.raises(RenderError, match=r"^secret 's': key 'password' holds text that is not"):
        render(plain, {"s": value("CANARY\ud83d")})
    renamed = output(fmt, secrets=[{"id": "s", "keys": {"k": "out\udfff"}}])
    with pytest.raises(RenderError, match=r"^secret 's': a key is not valid Unicode text"):
        render(renamed, {"s": value({"k": "v"})})
    static = output(fmt, static={"k": "CANARY\ud800"})
    with pytest.raises(RenderError, match=r"^static: key 'k' holds text that is not valid"):
        render(static, {"s": value({"a": "1"})})


def test_a_required_key_list_never_shows_a_key_that_is_not_text() -> None:
    out = output(secrets=[{"id": "s", "keys": ["need"]}])
    with pytest.raises(RenderError) as info:
        collect(out, {"s": value({"have": "1", "CANARY\ud800": "2"})})
    assert str(info.value) == (
        "secret 's': missing required key(s) 'need'; it has 'have', "
        "1 key(s) that are not valid Unicode text"
    )


def test_json_nested_too_deeply_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="nested too deeply"):
        render(output(), {"s": value('{"a": ' + "[" * 200_000)})


# --- leaf_strings: what the log redactor is given ------------------------------------


def test_leaf_strings_are_the_text_and_every_scalar_inside_it() -> None:
    text = json.dumps({"a": "top", "b": [1, "in-list", {"c": "deep", "d": True}], "e": None})
    assert sorted(leaf_strings(value(text))) == sorted([text, "top", "1", "in-list", "deep"])
    assert leaf_strings(SecretValue("s", "v1", binary=b"bin-text")) == ["bin-text"]
    assert leaf_strings(value("not json")) == ["not json"]


def test_leaf_strings_never_reserialise_nested_levels() -> None:
    levels = 400
    text = (
        '{"k": '
        + "".join(f'{{"v{n}": "leaf-{n:04d}-{"x" * 120}", "n": ' for n in range(levels))
        + '"end"'
        + "}" * levels
        + "}"
    )
    leaves = leaf_strings(value(text))
    assert len(leaves) == levels + 2  # the text, each level's string, "end"
    assert sum(map(len, leaves)) < 2 * len(text)  # was one JSON copy per level: 200x


@pytest.mark.parametrize("levels", [999, 5_000, 200_000])
def test_leaf_strings_of_json_too_deep_to_read_is_the_text_alone(levels: int) -> None:
    text = '{"k": ' + "[" * levels + '"leaf"' + "]" * levels + "}"
    assert leaf_strings(value(text))[0] == text  # never an exception: a render error later


# --- env: NUL, dangerous names, header ----------------------------------------------


def test_env_nul_in_a_value_is_a_render_error() -> None:
    with pytest.raises(RenderError) as info:
        render(output("env"), {"s": value({"token": "CANARY\0rest"})})
    assert str(info.value).startswith("secret 's': key 'token' holds a NUL character")
    assert "CANARY" not in str(info.value)
    # the other formats can carry it
    assert json.loads(render(output("json"), {"s": value({"token": "a\0b"})})) == {"token": "a\0b"}


# The names the README promises to refuse; env_key() maps key.lower() to each.
REFUSED = [
    "LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BASH_ENV", "ENV", "IFS", "PS4", "SHELLOPTS",
    "BASHOPTS", "PYTHONPATH", "PYTHONSTARTUP", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS", "CLASSPATH", "JAVA_HOME", "NODE_OPTIONS", "PERL5OPT", "PERL5LIB",
    "RUBYOPT", "GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "TMPDIR", "HOME",
    "GLIBC_TUNABLES", "KAFKA_OPTS", "KAFKA_HEAP_OPTS", "OPENSSL_CONF", "SSL_CERT_FILE",
    "HTTPS_PROXY", "PPID", "OPTIND", "_",
]  # fmt: skip
ALLOWED = ["SASL_JAAS_CONFIG", "AWS_ACCESS_KEY_ID", "KAFKA_BOOTSTRAP_SERVERS", "PATHNAME"]


@pytest.mark.parametrize("name", REFUSED)
def test_env_refuses_a_dangerous_name_a_secret_did_not_name(name: str) -> None:
    key = "-" if name == "_" else name.lower()
    assert env_key(key) == name
    with pytest.raises(RenderError) as info:
        render(output("env"), {"s": value({"ok": "1", key: "CANARY"})})
    assert str(info.value) == (
        f"secret 's': key {key!r} would set variable {name}, which can change what the "
        "consuming process runs or trusts; if that is intended, name the key in this "
        "secret's `keys`"
    )
    for fmt in ("properties", "json"):  # only env turns keys into variables
        render(output(fmt), {"s": value({key: "x"})})


@pytest.mark.parametrize("name", REFUSED)
def test_env_allows_a_dangerous_name_the_config_names(name: str) -> None:
    key = "-" if name == "_" else name.lower()
    line = f"{name}=/opt/x".encode()
    named = output("env", secrets=[{"id": "s", "keys": [key]}])
    assert line in render(named, {"s": value({key: "/opt/x", "other": "1"})}).splitlines()
    renamed = output("env", secrets=[{"id": "s", "keys": {"v": key}}])
    assert line in render(renamed, {"s": value({"v": "/opt/x"})}).splitlines()
    plain = output("env", secrets=[{"id": "s", "as": key}])
    assert line in render(plain, {"s": value("/opt/x")}).splitlines()
    static = output("env", static={key: "/opt/x"})
    assert line in render(static, {"s": value({"a": "1"})}).splitlines()


@pytest.mark.parametrize("name", ALLOWED)
def test_env_writes_ordinary_names_from_any_secret(name: str) -> None:
    data = render(output("env"), {"s": value({name.lower(): "v"})})
    assert f"{name}=v".encode() in data.splitlines()


def test_env_collision_names_both_sources() -> None:
    out = output("env", static={"a-b": "1"})
    with pytest.raises(RenderError) as info:
        render(out, {"s": value({"a.b": "2"})})
    assert str(info.value) == (
        "key 'a-b' (static) and key 'a.b' (secret 's') both become variable A_B; "
        "rename one with `keys`"
    )


@pytest.mark.parametrize("secret_id", ["x\nEVIL=1", "x\rEVIL=1", "x\0\x1b\u2028", "x\\"])
@pytest.mark.slow
def test_env_header_cannot_be_broken_by_a_secret_id(secret_id: str, tmp_path: Path) -> None:
    out = output("env", secrets=[{"id": secret_id}])
    data = render(out, {secret_id: value({"k": "v"}, secret_id)})
    lines = data.decode().splitlines()  # splitlines also breaks at \r and \u2028
    assert lines[1].startswith("# Sources: x\\")
    assert not lines[1].replace("\\\\", "").endswith("\\")  # systemd < 254 continues it
    assert lines[2:] == ["K=v"]
    path = tmp_path / "a.env"
    path.write_bytes(data)
    assert source_env_files("sh", [path], tmp_path) == [{"K": "v"}]


# --- properties: every character ------------------------------------------------------


def test_properties_carry_every_character_to_java(tmp_path: Path, java: JavaProperties) -> None:
    every = "".join(map(chr, range(0x300))) + "\u2028\ufeff\ufffd\uffff😀\U0010ffff"
    data = {every: every, " lead": " lead", "trail ": "trail ", "\\": "\\", "": ""}
    data |= {f"{c}k{c}": f"{c}v{c}" for c in "=:#! \t\f\r\n\0\\"}
    path = tmp_path / "all.properties"
    path.write_bytes(render(output(), {"s": value(data)}))
    assert java.load(path) == data


# --- property-based: every format, any secret ---------------------------------------

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _read_back(
    fmt: str, files: list[Path], tmp_path: Path, request: Any
) -> list[list[dict[str, str]]]:
    """Per reader, what it sees in each file (one process per reader for all files)."""
    if fmt == "json":
        return [[json.loads(path.read_bytes()) for path in files]]
    if fmt == "properties":
        return [request.getfixturevalue("java").load_many(files)]
    return [source_env_files(shell, files, tmp_path) for shell in ("sh", "bash")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.slow
def test_any_secret_renders_exactly_or_fails_safely(
    fmt: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """For any secret: RenderError naming the secret and key (and no value), or a file
    that the real reader (json, Java's Properties.load, sh/bash) reads as the intended map."""
    written: list[tuple[bytes, dict[str, str], Case]] = []
    refused: list[str] = []

    @SETTINGS
    @given(case=cases())
    def check(case: Case) -> None:
        outcome = expected(case, fmt)
        try:
            data = render(case.output(fmt), {SECRET_ID: case.secret()})
        except RenderError as exc:
            assert outcome.reasons, f"refused a renderable secret: {exc}"
            assert message_problems(str(exc), case, outcome) == [], str(exc)
            refused.append(str(exc))
            return
        assert outcome.reasons == [], f"rendered despite {outcome.reasons}"
        written.append((data, outcome.intended, case))

    check()
    # the generator must exercise both paths, or the test proves little
    assert len(written) >= 60 and len(refused) >= 15, (len(written), len(refused))
    files = []
    for index, (data, _, _) in enumerate(written):
        files.append(tmp_path / f"{index}.{fmt}")
        files[-1].write_bytes(data)
    for seen in _read_back(fmt, files, tmp_path, request):
        for index, ((_, intended, case), got) in enumerate(zip(written, seen, strict=True)):
            assert got == intended, f"file {files[index]} from {case!r}"


RAW_TEXTS = st.one_of(
    texts(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | texts(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(), inner, max_size=3),
        max_leaves=12,
    ).flatmap(lambda v: st.sampled_from([json.dumps(v), json.dumps(v, ensure_ascii=False)])),
    st.sampled_from(
        [
            "[" * 5_000,
            '{"a": ' * 5_000,
            '{"a": 1' + "1" * 5000 + "}",
            '{"a": 1e999, "b": NaN, "c": -Infinity}',
            '{"\\ud800": "x"}',
            '{"a": "\\udfff"}',
            '{"a": "\\u0000"}',
            '{"a": 1, "a": [2]}',
            "\ufeff{}",
            "",
        ]
    ),
)
REFS = [{}, {"keys": ["a"]}, {"keys": {"a": "path"}}, {"as": "k"}, {"as": "ld.preload"}]


@SETTINGS
@given(
    text=st.none() | RAW_TEXTS,
    binary=st.none() | st.binary(max_size=40),
    ref=st.sampled_from(REFS),
    fmt=st.sampled_from(FORMATS),
)
def test_render_returns_bytes_or_raises_render_error(
    text: str | None, binary: bytes | None, ref: dict[str, Any], fmt: str
) -> None:
    out = output(fmt, secrets=[{"id": "s", **ref}])
    try:
        data = render(out, {"s": SecretValue("s", "v1", text=text, binary=binary)})
    except RenderError:
        return
    assert isinstance(data, bytes) and data.endswith(b"\n")
