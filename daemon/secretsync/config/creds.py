"""The ``sasl`` and ``basic_auth`` sections of an output: login settings derived
from a secret that holds a username and a password. Pure.

A secret that rotates on its own (Secrets Manager's managed rotation for
Confluent Cloud API keys, Amazon MSK SCRAM secrets, most hand-made ones) holds a
key and a secret, not a finished ``sasl.jaas.config`` line. These sections name
the secret and its two keys; :mod:`secretsync.output.derive` writes the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from secretsync.config.errors import brief
from secretsync.config.schema import Model, OneOf, Opt, Str, model, spec

if TYPE_CHECKING:
    from secretsync.config.model import SecretRef

Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
LOGIN_MODULES: dict[str, str] = {
    "PLAIN": PLAIN_LOGIN_MODULE,
    "SCRAM-SHA-256": SCRAM_LOGIN_MODULE,
    "SCRAM-SHA-512": SCRAM_LOGIN_MODULE,
}
# Confluent Cloud API keys (also under managed rotation) hold apiKey/apiSecret;
# Amazon MSK SCRAM secrets (AmazonMSK_*) hold username/password.
_DEFAULT_KEYS: dict[str, tuple[str, str]] = {
    "PLAIN": ("apiKey", "apiSecret"),
    "SCRAM-SHA-256": ("username", "password"),
    "SCRAM-SHA-512": ("username", "password"),
}

JAAS_KEY = "sasl.jaas.config"
MECHANISM_KEY = "sasl.mechanism"
USER_INFO_KEY = "basic.auth.user.info"
CREDENTIALS_SOURCE_KEY = "basic.auth.credentials.source"


@model
class _Credentials(Model):
    """A username and a password, each under its own key of one JSON secret."""

    secret: str = spec(Str(min_length=1, max_length=2048))
    username_key: str | None = spec(Opt(Str(min_length=1)), default=None)
    password_key: str | None = spec(Opt(Str(min_length=1)), default=None)

    section: ClassVar[str] = "credentials"  # the field name on the output, for messages

    def _check(self) -> None:
        user, password = self.credential_keys()
        if user == password:
            raise ValueError(
                f"username_key and password_key are both {brief(user)}; they must be two "
                "different keys of the secret"
            )

    def default_keys(self) -> tuple[str, str]:
        return ("apiKey", "apiSecret")

    def credential_keys(self) -> tuple[str, str]:
        """The secret's (username key, password key), defaults applied."""
        user, password = self.default_keys()
        return (self.username_key or user, self.password_key or password)

    def output_keys(self) -> tuple[str, ...]:
        """The keys this section writes (fixed: known when the config is read)."""
        raise NotImplementedError

    def config_values(self) -> dict[str, str]:
        """The keys this section writes whose values come from the config, not the secret
        (not secret: the dry run shows them)."""
        raise NotImplementedError


@model
class SaslConfig(_Credentials):
    """``sasl``: writes ``sasl.jaas.config`` and ``sasl.mechanism``.

    The login module follows the mechanism. Default keys: ``apiKey`` /
    ``apiSecret`` for PLAIN, ``username`` / ``password`` for SCRAM.
    """

    mechanism: Mechanism = spec(OneOf("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))

    section: ClassVar[str] = "sasl"

    def default_keys(self) -> tuple[str, str]:
        return _DEFAULT_KEYS[self.mechanism]

    @property
    def login_module(self) -> str:
        return LOGIN_MODULES[self.mechanism]

    def output_keys(self) -> tuple[str, ...]:
        return (JAAS_KEY, MECHANISM_KEY)

    def config_values(self) -> dict[str, str]:
        return {MECHANISM_KEY: self.mechanism}


@model
class BasicAuthConfig(_Credentials):
    """``basic_auth``: writes ``basic.auth.user.info`` (``user:password``) and
    ``basic.auth.credentials.source=USER_INFO`` (Schema Registry clients).
    Default keys: ``apiKey`` / ``apiSecret``."""

    section: ClassVar[str] = "basic_auth"

    def output_keys(self) -> tuple[str, ...]:
        return (USER_INFO_KEY, CREDENTIALS_SOURCE_KEY)

    def config_values(self) -> dict[str, str]:
        return {CREDENTIALS_SOURCE_KEY: "USER_INFO"}


Credentials = SaslConfig | BasicAuthConfig


def check_derived(
    derived: Sequence[Credentials], secrets: Sequence[SecretRef], seen: Mapping[str, str]
) -> None:
    """Raise ValueError if the output's ``sasl``/``basic_auth`` cannot work as configured.

    ``seen`` maps each key known at config time (``static``, and secrets with
    ``keys`` or ``as``) to its source. Refused: a derivation from a secret not
    listed in ``secrets``, or listed only with ``as`` (a plain string, not JSON);
    a derived key that another source also gives; and a secret with
    ``keys: []`` that no derivation uses (it would be fetched for nothing).
    """
    listed = list(dict.fromkeys(ref.id for ref in secrets))
    for creds in derived:
        where = f"{creds.section}.secret"
        if creds.secret not in listed:
            raise ValueError(
                f"{where}: {brief(creds.secret)} is not one of this output's secrets; list it "
                "under `secrets` (with `keys: []` to copy none of its keys into the file); "
                f"listed: {', '.join(map(brief, listed))}"
            )
        if all(ref.as_key is not None for ref in secrets if ref.id == creds.secret):
            raise ValueError(
                f"{where}: secret {brief(creds.secret)} is read with `as` (a plain string); "
                f"{creds.section} needs a JSON secret: list it with `keys` instead"
            )
        for key in creds.output_keys():
            if key in seen:
                raise ValueError(
                    f"key {brief(key)} is given by both {seen[key]} and {creds.section}; each "
                    "key must come from one source"
                )
    used = {creds.secret for creds in derived}
    for ref in secrets:
        if ref.keys is not None and not ref.keys and ref.id not in used:
            raise ValueError(
                f"secret {brief(ref.id)} has `keys: []` (copy no keys), and neither `sasl` nor "
                "`basic_auth` reads it; name the keys to copy, or omit `keys` to copy every key"
            )
