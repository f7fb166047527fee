"""Hypothesis strategies for usernames and passwords, and outputs that derive from them.

The intended result is restated here from the issue, not taken from derive.py:
the JAAS parsers must read back exactly the username and password, and
``basic.auth.user.info`` must be ``user:password``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from secretsync.config.model import OutputConfig, parse_config
from secretsync.source.protocol import SecretValue

KAFKA_ID = "confluent/kafka-api-key"
SR_ID = "confluent/sr-api-key"
MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
DEFAULT_KEYS = {
    "PLAIN": ("apiKey", "apiSecret"),
    "SCRAM-SHA-256": ("username", "password"),
    "SCRAM-SHA-512": ("username", "password"),
}

# What matters to JAAS (quote, escape, separators, comments, braces), to
# .properties, and text beyond ASCII and beyond the BMP; letters that follow a
# backslash in an escape (\n \t \u \0 \7) must stay plain letters.
SPECIALS = (
    *"\"\\;= {}'/*$:#!,&%@+-_~`|<>?[]().^",
    "//", "/*", "*/", "${user.home}", "\\n", "\\t", "\\u0041", "\\0", "\\377",
    *"ntub07AZ", "é", "ß", "日本", "Ω", "\xa0", "\xff", "\u0100", "\u2028", "\u2029",
    "\ufeff", "\ufffd", "\uffff", "😀", "\U0001f511", "\U0010ffff",
)  # fmt: skip
# Every character a secret can hold that the issue allows: no control
# characters (category Cc) and no lone surrogates (Cs).
ALLOWED_CHAR = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
CONTROLS = (*map(chr, range(0x20)), "\x7f", "\x80", "\x85", "\x9f")
MUST_SEE = ('"', "\\", ";", "=", " ", "}", "{")  # each must appear in some generated password


@st.composite
def secret_texts(draw: st.DrawFn, *, exclude: str = "", max_parts: int = 12) -> str:
    """A non-empty username or password made of specials and any allowed character."""
    parts = draw(
        st.lists(st.one_of(st.sampled_from(SPECIALS), ALLOWED_CHAR), min_size=1, max_size=max_parts)
    )
    text = "".join(parts)
    for char in exclude:
        text = text.replace(char, "")
    return text or "x"


@dataclass
class CredCase:
    """One output with `sasl` (from one secret) and `basic_auth` (from another)."""

    mechanism: str
    user: str
    password: str
    sr_user: str
    sr_password: str
    custom_keys: bool  # name the keys in the config, or rely on the defaults

    def keys(self) -> tuple[str, str]:
        return ("key", "secret") if self.custom_keys else DEFAULT_KEYS[self.mechanism]

    def output(self, fmt: str = "properties") -> OutputConfig:
        sasl: dict[str, Any] = {"mechanism": self.mechanism, "secret": KAFKA_ID}
        if self.custom_keys:
            sasl |= {"username_key": "key", "password_key": "secret"}
        data = {
            "path": "/tmp/o/client",
            "format": fmt,
            "secrets": [{"id": KAFKA_ID, "keys": []}, {"id": SR_ID, "keys": ["url"]}],
            "static": {"security.protocol": "SASL_SSL"},
            "sasl": sasl,
            "basic_auth": {"secret": SR_ID},
        }
        return parse_config({"outputs": [data]}).outputs[0]

    def values(self) -> dict[str, SecretValue]:
        user_key, password_key = self.keys()
        kafka = {user_key: self.user, password_key: self.password, "resourceId": "lkc-1"}
        sr = {"apiKey": self.sr_user, "apiSecret": self.sr_password, "url": "https://sr"}
        return {
            KAFKA_ID: SecretValue(KAFKA_ID, "v1", text=json.dumps(kafka)),
            SR_ID: SecretValue(SR_ID, "v1", text=json.dumps(sr, ensure_ascii=False)),
        }

    def intended(self) -> dict[str, str]:
        """The properties the client must read (the JAAS line is checked by parsing it)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": self.mechanism,
            "url": "https://sr",
            "basic.auth.credentials.source": "USER_INFO",
            "basic.auth.user.info": f"{self.sr_user}:{self.sr_password}",
        }


@st.composite
def cred_cases(draw: st.DrawFn) -> CredCase:
    return CredCase(
        mechanism=draw(st.sampled_from(sorted(MODULES))),
        user=draw(secret_texts()),
        password=draw(secret_texts(max_parts=24)),
        sr_user=draw(secret_texts(exclude=":")),
        sr_password=draw(secret_texts()),
        custom_keys=draw(st.booleans()),
    )
