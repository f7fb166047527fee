"""derive.py: `sasl` / `basic_auth` settings, read back by parsers nobody here wrote.

Each .properties file is loaded by Java's ``Properties.load(InputStream)``, and
its ``sasl.jaas.config`` is parsed by the JDK's JAAS login-configuration parser
and by a StreamTokenizer set up as Kafka's ``JaasConfig`` does it (see
tests/support/jaas.py): one JVM for all the examples of a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from secretsync.config.model import OutputConfig, parse_config
from secretsync.escapes import jaas_quote
from secretsync.output.render import RenderError, collect, env_key, render
from secretsync.source.protocol import SecretValue
from tests.support.configs import example_config, write_yaml
from tests.support.cred_cases import (
    CONTROLS,
    MODULES,
    MUST_SEE,
    CredCase,
    cred_cases,
    secret_texts,
)
from tests.support.daemon import run_cli
from tests.support.examples import commented_examples
from tests.support.jaas import PARSERS, JaasEntry, JaasReader, compile_jaas_reader
from tests.support.motoserver import Moto
from tests.support.shell import source_env_files

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def jaas(tmp_path_factory: pytest.TempPathFactory) -> JaasReader:
    return compile_jaas_reader(tmp_path_factory.mktemp("jaas"))


def entry(case: CredCase) -> JaasEntry:
    return JaasEntry(
        MODULES[case.mechanism], "REQUIRED", {"username": case.user, "password": case.password}
    )


def sasl_output(fmt: str = "properties", **sasl: Any) -> OutputConfig:
    data = {
        "path": "/tmp/o/c",
        "format": fmt,
        "secrets": [{"id": "k", "keys": []}],
        "sasl": {"mechanism": "PLAIN", "secret": "k", **sasl},
    }
    return parse_config({"outputs": [data]}).outputs[0]


def basic_output(**extra: Any) -> OutputConfig:
    data = {"path": "/tmp/o/c", "secrets": [{"id": "k", "keys": []}], "basic_auth": {"secret": "k"}}
    return parse_config({"outputs": [{**data, **extra}]}).outputs[0]


def value(data: object, secret_id: str = "k") -> SecretValue:
    text = data if isinstance(data, str) else json.dumps(data)
    return SecretValue(secret_id, "v1", text=text)


# --- the JAAS line, as the JDK and Kafka read it --------------------------------------


@pytest.mark.slow
def test_any_credentials_reach_both_jaas_parsers_and_every_format_intact(
    tmp_path: Path, jaas: JaasReader
) -> None:
    """Hypothesis-made usernames and passwords (quotes, backslashes, ;, =, braces,
    spaces, non-ASCII, astral characters) in all three formats: each reader sees
    the intended values, and the JAAS line parses to exactly the intended entry."""
    cases: list[CredCase] = []

    @SETTINGS
    @given(case=cred_cases())
    @example(case=CredCase("PLAIN", 'p"a\\ss', '\\"; x=y } {', "u", "p:a\\ss", custom_keys=False))
    def collect_cases(case: CredCase) -> None:
        cases.append(case)

    collect_cases()
    # the generator must reach the characters the issue names, or the test proves little
    passwords = "".join(case.password for case in cases)
    assert set(MUST_SEE) <= set(passwords)
    assert any(ord(c) > 0xFFFF for c in passwords) and any(
        0x7F < ord(c) < 0xFFFF for c in passwords
    )

    paths: dict[str, list[Path]] = {fmt: [] for fmt in ("properties", "json", "env")}
    for index, case in enumerate(cases):
        for fmt, files in paths.items():
            files.append(tmp_path / f"{index}.{fmt}")
            files[-1].write_bytes(render(case.output(fmt), case.values()))
    views = jaas.load_many(paths["properties"])
    shells = [source_env_files(shell, paths["env"], tmp_path) for shell in ("sh", "bash")]
    for index, (case, view) in enumerate(zip(cases, views, strict=True)):
        where = f"case {index}: {case!r}"
        assert view.jaas == {parser: [entry(case)] for parser in PARSERS}, where
        line = view.properties.pop("sasl.jaas.config")
        assert view.properties == case.intended(), where
        everything = {**case.intended(), "sasl.jaas.config": line}
        assert json.loads(paths["json"][index].read_bytes()) == everything, where
        for env in shells:
            assert env[index] == {env_key(k): v for k, v in everything.items()}, where


@pytest.mark.slow
def test_the_oracle_catches_a_hand_written_template(tmp_path: Path, jaas: JaasReader) -> None:
    """The failure the issue describes: an unescaped template in `static` breaks the
    login in both parsers, while `sasl` gives the intended password to both."""
    passwords = ['a"b', "a\\b", 'x";', "ends\\", '"; y="z']
    files = []
    for index, password in enumerate(passwords):
        naive = f'{MODULES["PLAIN"]} required username="u" password="{password}";'
        out = parse_config(
            {
                "outputs": [
                    {
                        "path": "/o/x",
                        "secrets": [{"id": "k"}],
                        "static": {"sasl.jaas.config": naive},
                    }
                ]
            }
        ).outputs[0]
        files.append(tmp_path / f"naive{index}.properties")
        files[-1].write_bytes(render(out, {"k": value({"other": "1"})}))
        files.append(tmp_path / f"derived{index}.properties")
        files[-1].write_bytes(
            render(sasl_output(), {"k": value({"apiKey": "u", "apiSecret": password})})
        )
    views = jaas.load_many(files)
    for index, password in enumerate(passwords):
        naive_view, derived_view = views[2 * index], views[2 * index + 1]
        intended = [
            JaasEntry(MODULES["PLAIN"], "REQUIRED", {"username": "u", "password": password})
        ]
        for parser in PARSERS:
            assert naive_view.jaas[parser] != intended, (parser, password)
            assert derived_view.jaas[parser] == intended, (parser, password)


@pytest.mark.parametrize(
    ("mechanism", "secret", "module"),
    [
        ("PLAIN", {"apiKey": "K", "apiSecret": "S", "serviceAccountId": "sa-1"}, "plain.Plain"),
        ("SCRAM-SHA-256", {"username": "K", "password": "S"}, "scram.Scram"),
        ("SCRAM-SHA-512", {"username": "K", "password": "S"}, "scram.Scram"),
    ],
)
def test_the_mechanism_picks_the_module_and_the_default_keys(
    mechanism: str, secret: dict[str, str], module: str
) -> None:
    got = collect(sasl_output(mechanism=mechanism), {"k": value(secret)})
    assert got == {
        "sasl.jaas.config": (
            f"org.apache.kafka.common.security.{module}LoginModule required "
            'username="K" password="S";'
        ),
        "sasl.mechanism": mechanism,
    }


def test_jaas_quote_escapes_only_backslash_and_quote() -> None:
    assert jaas_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert jaas_quote("; = { } ' / é 😀") == '"; = { } \' / é 😀"'


def test_named_keys_are_used() -> None:
    out = sasl_output(username_key="user", password_key="pass")
    got = collect(out, {"k": value({"user": "U", "pass": "P", "apiKey": "no"})})
    assert got["sasl.jaas.config"].endswith('username="U" password="P";')


# --- basic_auth -------------------------------------------------------------------------


def test_basic_auth_writes_user_info_and_its_source() -> None:
    got = collect(basic_output(), {"k": value({"apiKey": "K", "apiSecret": 'a:b\\c"d'})})
    assert got == {
        "basic.auth.user.info": 'K:a:b\\c"d',  # a password may contain ':'
        "basic.auth.credentials.source": "USER_INFO",
    }


def test_a_colon_in_the_basic_auth_username_is_a_render_error() -> None:
    with pytest.raises(RenderError) as info:
        collect(basic_output(), {"k": value({"apiKey": "CANARY:user", "apiSecret": "p"})})
    assert str(info.value) == (
        "secret 'k': basic_auth: the username (key 'apiKey') contains ':', which "
        "basic.auth.user.info uses to separate the username from the password"
    )


# --- render errors: named by secret, section and key, never by value --------------------

BAD_VALUES = [
    ({"apiKey": "CANARY-k", "apiSecret": 12345678}, "key 'apiSecret' holds a number; a username"),
    ({"apiKey": True, "apiSecret": "CANARY-s"}, "key 'apiKey' holds a boolean"),
    ({"apiKey": None, "apiSecret": "CANARY-s"}, "key 'apiKey' holds null"),
    ({"apiKey": ["CANARY"], "apiSecret": "CANARY-s"}, "key 'apiKey' holds a list"),
    ({"apiKey": {"CANARY": 1}, "apiSecret": "CANARY-s"}, "key 'apiKey' holds an object"),
    ({"apiKey": "CANARY-k", "apiSecret": ""}, "key 'apiSecret' is empty"),
    ({"apiKey": "CANARY-k", "apiSecret": "CANARY\ud800"}, "a lone surrogate at character 7 of 7"),
    ({"apiKey": "CANARY-k", "apiSecret": "CANARY-s\n"}, "U+000A at character 9 of 9"),
    ({"apiKey": "CANARY\tk", "apiSecret": "s"}, "key 'apiKey' holds control character U+0009"),
]


@pytest.mark.parametrize("section", ["sasl", "basic_auth"])
@pytest.mark.parametrize(("secret", "problem"), BAD_VALUES, ids=[p for _, p in BAD_VALUES])
def test_an_unusable_username_or_password_is_a_render_error(
    section: str, secret: dict[str, object], problem: str
) -> None:
    out = sasl_output() if section == "sasl" else basic_output()
    with pytest.raises(RenderError) as info:
        render(out, {"k": value(secret)})
    message = str(info.value)
    assert message.startswith(f"secret 'k': {section}: ") and problem in message
    assert "CANARY" not in message


def test_missing_keys_are_named_with_the_keys_the_secret_has() -> None:
    # an MSK secret read with PLAIN's default keys
    with pytest.raises(RenderError) as info:
        render(sasl_output(), {"k": value({"username": "CANARY-u", "password": "CANARY-p"})})
    assert str(info.value) == (
        "secret 'k': sasl needs key(s) 'apiKey', 'apiSecret', which the secret does not "
        "have; it has 'password', 'username' (set `sasl.username_key` and "
        "`sasl.password_key` to the keys that hold them)"
    )
    with pytest.raises(RenderError, match=r"^secret 'k': basic_auth needs key\(s\) 'apiSecret'"):
        render(basic_output(), {"k": value({"apiKey": "CANARY"})})


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (
            SecretValue("k", "v1", binary=b'{"apiKey": "a", "apiSecret": "b"}'),
            "has no SecretString",
        ),
        (value("CANARY not json"), "is not a JSON object"),
        (value(["CANARY"]), "is not a JSON object"),
        (value('{"apiKey": ' + "[" * 100_000), "its JSON is nested too deeply to read"),
    ],
)
def test_a_secret_that_is_not_a_json_object_is_a_render_error(
    secret: SecretValue, problem: str
) -> None:
    out = parse_config(
        {
            "outputs": [
                {
                    "path": "/o/x",
                    "secrets": [{"id": "k", "keys": []}],
                    "sasl": {"mechanism": "PLAIN", "secret": "k"},
                    "basic_auth": {"secret": "k"},
                }
            ]
        }
    ).outputs[0]
    with pytest.raises(RenderError) as info:
        render(out, {"k": secret})
    message = str(info.value)
    assert message.startswith(f"secret 'k': {problem}")
    if "nested" not in problem:  # sasl comes first, and says what it needs
        assert message.endswith("; sasl needs a JSON object holding a username and a password")
    assert "CANARY" not in message


def test_a_secret_not_fetched_yet_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"^secret 'k': no value fetched yet$"):
        render(sasl_output(), {})


@pytest.mark.parametrize(
    ("key", "section"),
    [
        ("sasl.jaas.config", "sasl"),
        ("sasl.mechanism", "sasl"),
        ("basic.auth.user.info", "basic_auth"),
        ("basic.auth.credentials.source", "basic_auth"),
    ],
)
def test_a_derived_key_that_a_secret_gives_on_its_own_is_a_render_error(
    key: str, section: str
) -> None:
    """Known only at render time: a secret without `keys` copies whatever it holds."""
    out = parse_config(
        {
            "outputs": [
                {
                    "path": "/o/x",
                    "secrets": [{"id": "terraform"}, {"id": "k", "keys": []}],
                    section: {"secret": "k"}
                    | ({"mechanism": "PLAIN"} if section == "sasl" else {}),
                }
            ]
        }
    ).outputs[0]
    values = {
        "terraform": value({key: "CANARY", "bootstrap.servers": "b:9092"}, "terraform"),
        "k": value({"apiKey": "a", "apiSecret": "b"}),
    }
    with pytest.raises(RenderError) as info:
        render(out, values)
    assert str(info.value) == (
        f"key {key!r} is given by both secret 'terraform' and {section} (secret 'k'); "
        "restrict one source with `keys`"
    )


@SETTINGS
@given(
    text=secret_texts(),
    control=st.sampled_from(CONTROLS),
    at=st.integers(0, 30),
    which=st.sampled_from(["apiKey", "apiSecret"]),
    section=st.sampled_from(["sasl", "basic_auth"]),
)
def test_any_control_character_is_refused_without_showing_the_value(
    text: str, control: str, at: int, which: str, section: str
) -> None:
    at = min(at, len(text))
    bad = text[:at] + control + text[at:]
    secret = {"apiKey": "user", "apiSecret": "pass", which: bad}
    out = sasl_output() if section == "sasl" else basic_output()
    with pytest.raises(RenderError) as info:
        render(out, {"k": value(secret)})
    message = str(info.value)
    assert message == (
        f"secret 'k': {section}: key {which!r} holds control character "
        f"U+{ord(control):04X} at character {at + 1} of {len(bad)}; a username or password "
        "cannot contain control characters"
    )


def test_the_dry_run_lists_derived_keys() -> None:
    got = collect(
        basic_output(static={"schema.registry.url": "https://sr"}),
        {"k": value({"apiKey": "a", "apiSecret": "b"})},
    )
    assert sorted(got) == [
        "basic.auth.credentials.source",
        "basic.auth.user.info",
        "schema.registry.url",
    ]


def test_an_unchanged_secret_gives_identical_bytes() -> None:
    out = sasl_output()
    v1 = SecretValue("k", "version-1", text='{"apiKey": "a", "apiSecret": "b"}')
    v2 = SecretValue("k", "version-2", text='{"apiSecret": "b", "apiKey": "a", "x": 1}')
    assert render(out, {"k": v1}) == render(out, {"k": v2})


# --- the documented shapes, end to end ----------------------------------------------------


def test_the_documented_credential_shapes_work_end_to_end(
    moto: Moto, tmp_path: Path, jaas: JaasReader
) -> None:
    """sync.yaml.example's commented Confluent (managed rotation) and MSK SCRAM
    outputs, run by `secretsync once` against the emulator, then a rotation."""
    kafka = {
        "apiKey": "CKEY123",
        "apiSecret": 'CANARY-k"\\;{x}=😀',
        "serviceAccountId": "sa-1",
        "resourceId": "lkc-1",
        "environmentId": "env-1",
    }
    sr = {**kafka, "apiKey": "SRKEY456", "apiSecret": 'CANARY-sr:a\\b"c', "resourceId": "lsrc-1"}
    msk = {"username": "myuser", "password": "CANARY-msk ${user.home} \\n"}
    moto.create("confluent/kafka-api-key", kafka)
    moto.create("confluent/sr-api-key", sr)
    moto.create("AmazonMSK_myuser", msk)
    out = tmp_path / "out"
    outputs = commented_examples()
    for item in outputs:
        item["path"] = str(out / Path(item["path"]).name)
        item.pop("notify", None)  # the shapes name no target: nothing to signal here
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url, outputs=outputs))
    files = [out / "rotating.properties", out / "msk.properties"]

    def run_and_read() -> list[Any]:
        result = run_cli("once", "-c", str(cfg))
        assert result.returncode == 0, result.stderr
        assert "CANARY" not in result.stdout + result.stderr
        return jaas.load_many(files)

    confluent, scram = run_and_read()
    plain = MODULES["PLAIN"]
    login = {"username": "CKEY123", "password": kafka["apiSecret"]}
    assert confluent.jaas == {p: [JaasEntry(plain, "REQUIRED", login)] for p in PARSERS}
    del confluent.properties["sasl.jaas.config"]
    assert confluent.properties == {
        "bootstrap.servers": "pkc-00000.us-east-1.aws.confluent.cloud:9092",
        "security.protocol": "SASL_SSL",
        "schema.registry.url": "https://psrc-00000.us-east-1.aws.confluent.cloud",
        "sasl.mechanism": "PLAIN",
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"SRKEY456:{sr['apiSecret']}",
    }
    assert scram.properties["sasl.mechanism"] == "SCRAM-SHA-512"
    scram_entry = JaasEntry(MODULES["SCRAM-SHA-512"], "REQUIRED", msk)
    assert scram.jaas == {p: [scram_entry] for p in PARSERS}

    rotated = {"username": "myuser", "password": 'CANARY-rotated"\\'}
    moto.rotate("AmazonMSK_myuser", rotated)
    _, scram = run_and_read()
    scram_entry = JaasEntry(MODULES["SCRAM-SHA-512"], "REQUIRED", rotated)
    assert scram.jaas == {p: [scram_entry] for p in PARSERS}
