"""config_creds.py: the `sasl` and `basic_auth` sections, and `keys: []`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from secretsync.config.model import ConfigError, parse_config
from tests.support.examples import commented_examples
from tests.support.paths import REPO


def creds_output(**extra: Any) -> dict[str, Any]:
    return {"outputs": [{"path": "/o/a", "secrets": [{"id": "k", "keys": []}], **extra}]}


SASL = {"mechanism": "PLAIN", "secret": "k"}


@pytest.mark.parametrize("empty", [[], {}])
def test_empty_keys_copy_nothing_and_feed_a_derivation(empty: object) -> None:
    data = creds_output(sasl=SASL)
    data["outputs"][0]["secrets"][0]["keys"] = empty
    out = parse_config(data).outputs[0]
    assert out.secrets[0].output_keys() == set()
    assert out.secret_ids == ["k"] and out.derived == [out.sasl]


def test_empty_keys_that_feed_nothing_are_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(creds_output())
    assert str(info.value) == (
        "outputs[0]: secret 'k' has `keys: []` (copy no keys), and neither `sasl` nor "
        "`basic_auth` reads it; name the keys to copy, or omit `keys` to copy every key"
    )


@pytest.mark.parametrize(
    ("mechanism", "keys"),
    [
        ("PLAIN", ("apiKey", "apiSecret")),
        ("SCRAM-SHA-256", ("username", "password")),
        ("SCRAM-SHA-512", ("username", "password")),
    ],
)
def test_sasl_default_keys_follow_the_mechanism(mechanism: str, keys: tuple[str, str]) -> None:
    out = parse_config(creds_output(sasl={"mechanism": mechanism, "secret": "k"})).outputs[0]
    assert out.sasl is not None and out.sasl.credential_keys() == keys
    named = {"mechanism": mechanism, "secret": "k", "username_key": "u", "password_key": "p"}
    out = parse_config(creds_output(sasl=named)).outputs[0]
    assert out.sasl is not None and out.sasl.credential_keys() == ("u", "p")


def test_basic_auth_defaults_to_api_key_and_secret() -> None:
    out = parse_config(creds_output(basic_auth={"secret": "k"})).outputs[0]
    assert out.basic_auth is not None
    assert out.basic_auth.credential_keys() == ("apiKey", "apiSecret")
    assert out.derived == [out.basic_auth]


def test_a_derivation_may_read_a_secret_whose_keys_are_all_copied() -> None:
    data = {"outputs": [{"path": "/o/a", "secrets": [{"id": "k"}], "sasl": SASL}]}
    assert (
        parse_config(data).outputs[0].sasl == parse_config(creds_output(sasl=SASL)).outputs[0].sasl
    )


# (extra output fields, the message); secret "k" is listed with keys: []
CREDS_ERRORS = [
    (
        {"sasl": {**SASL, "secret": "other"}},
        "outputs[0]: sasl.secret: 'other' is not one of this output's secrets; list it under "
        "`secrets` (with `keys: []` to copy none of its keys into the file); listed: 'k'",
    ),
    (
        {"basic_auth": {"secret": "k"}, "secrets": [{"id": "k", "as": "password"}]},
        "outputs[0]: basic_auth.secret: secret 'k' is read with `as` (a plain string); "
        "basic_auth needs a JSON secret: list it with `keys` instead",
    ),
    (
        {"sasl": SASL, "static": {"sasl.jaas.config": "x"}},
        "outputs[0]: key 'sasl.jaas.config' is given by both static and sasl; each key must "
        "come from one source",
    ),
    (
        {
            "sasl": SASL,
            "secrets": [{"id": "k", "keys": []}, {"id": "t", "keys": ["sasl.mechanism"]}],
        },
        "outputs[0]: key 'sasl.mechanism' is given by both secret 't' and sasl;",
    ),
    (
        {
            "basic_auth": {"secret": "k"},
            "secrets": [{"id": "k", "keys": {"u": "basic.auth.user.info"}}],
        },
        "outputs[0]: key 'basic.auth.user.info' is given by both secret 'k' and basic_auth;",
    ),
    (
        {"basic_auth": {"secret": "k"}, "static": {"basic.auth.credentials.source": "URL"}},
        "key 'basic.auth.credentials.source' is given by both static and basic_auth",
    ),
    (
        {"sasl": {**SASL, "username_key": "key", "password_key": "key"}},
        "outputs[0].sasl: username_key and password_key are both 'key'; they must be two "
        "different keys of the secret",
    ),
    (
        {"basic_auth": {"secret": "k", "password_key": "apiKey"}},
        "outputs[0].basic_auth: username_key and password_key are both 'apiKey'",
    ),
    ({"sasl": {"secret": "k"}}, "outputs[0].sasl.mechanism: required field is missing"),
    ({"sasl": {**SASL, "mechanism": "plain"}}, "outputs[0].sasl.mechanism: allowed: 'PLAIN',"),
    ({"sasl": {**SASL, "username_key": ""}}, "outputs[0].sasl.username_key: must not be empty"),
    (
        {"sasl": {**SASL, "user": "x"}},
        "outputs[0].sasl.user: unknown field; allowed: secret, username_key, password_key, "
        "mechanism",
    ),
    ({"basic_auth": "k"}, "outputs[0].basic_auth: expected a mapping with keys from: secret,"),
]


@pytest.mark.parametrize(("extra", "expected"), CREDS_ERRORS, ids=[e for _, e in CREDS_ERRORS])
def test_sasl_and_basic_auth_config_errors(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(creds_output(**extra))
    assert expected in str(info.value)


def test_the_commented_credential_examples_are_valid() -> None:
    base = yaml.safe_load((REPO / "sync.yaml.example").read_text())
    examples = commented_examples()
    config = parse_config({**base, "outputs": base["outputs"] + examples})
    confluent, msk = config.outputs[3:]
    assert confluent.sasl is not None and confluent.basic_auth is not None
    assert (confluent.sasl.mechanism, confluent.sasl.credential_keys()) == (
        "PLAIN",
        ("apiKey", "apiSecret"),
    )
    assert confluent.basic_auth.secret == "confluent/sr-api-key"
    assert msk.sasl is not None and msk.sasl.secret.startswith("AmazonMSK_")
    assert (msk.sasl.mechanism, msk.sasl.credential_keys()) == (
        "SCRAM-SHA-512",
        ("username", "password"),
    )
