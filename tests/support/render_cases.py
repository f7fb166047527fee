"""Hypothesis strategies for secret contents, and the oracle: what render() must do with them.

The oracle restates the README rules independently of render.py (except the
list of dangerous env names, which is the spec itself): a case either renders
to ``intended`` exactly, or fails for one of ``reasons``; each reason lists
the fragments the RenderError message must contain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from secretsync.config.model import OutputConfig, parse_config
from secretsync.output.render import env_key, is_dangerous_env_name
from secretsync.source.protocol import SecretValue

SECRET_ID = "app/kafka-client"
FORMATS = ("properties", "json", "env")

# Characters that matter to one of the formats or their readers.
SPECIALS = (
    *"=:#! \\\n\r\t\f\v'\"$`%;&|<>(){}*?[]~",
    "\x01", "\x1b", "\x7f", "\x80", "\x85", "\xa0", "\xff", "\u2028", "\u2029", "\ufeff",
    "\ufffd", "é", "ß", "日", "😀", "\U0010ffff", "u", "0", "A",
)  # fmt: skip
SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d")
CLEAN_CHAR = st.one_of(
    st.sampled_from(SPECIALS), st.characters(codec="utf-8", exclude_characters="\0")
)

# Keys whose env names matter: dangerous ones, collisions, odd mappings.
POOL_KEYS = (
    "path", "home", "tmpdir", "ifs", "env", "ps4", "java.tool.options", "kafka.opts",
    "pythonpath", "node.options", "classpath", "sasl.jaas.config", "bootstrap.servers",
    "a.b", "a_b", "A-B", "9lives", "_9lives", "", "-", ".", "ld.preload", "bash.env",
    "bashopts", "shellopts", "ppid", "optind", "lineno", "_", "security.protocol",
)  # fmt: skip
STATIC_KEYS = ("security.protocol", "client.id", "path", "a.b", "sasl.jaas.config")


def breaks_the_probe(name: str) -> bool:
    """Env names a test may not set for real: the probing shell owns them, refuses
    them, or the loader acts on them when the probe runs ``env``."""
    return name in {
        "PPID", "UID", "EUID", "OPTIND", "LINENO", "RANDOM", "SRANDOM", "SECONDS",
        "GROUPS", "FUNCNAME", "HISTCMD", "_", "SHELLOPTS", "POSIXLY_CORRECT",
    } or name.startswith(("LD_", "BASH", "GLIBC_", "GCONV_", "LOCPATH", "MALLOC"))  # fmt: skip


@st.composite
def texts(draw: st.DrawFn, max_size: int = 20, taint: bool = True) -> str:
    """Mostly valid text; sometimes a lone surrogate or a NUL somewhere in it."""
    text = draw(st.text(CLEAN_CHAR, max_size=max_size))
    if taint:
        extra = draw(st.sampled_from(("",) * 18 + ("\0", SURROGATES[0])))
        if extra == SURROGATES[0]:
            extra = draw(st.sampled_from(SURROGATES))
        if extra:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + extra + text[at:]
    return text


def _fill_64k(pattern: str) -> str:
    """``pattern`` repeated to 64 KiB of UTF-8, the most a SecretString can hold."""
    text = pattern * (65536 // len(pattern.encode()) + 1)
    return text.encode()[:65536].decode(errors="ignore")


def big_texts() -> st.SearchStrategy[str]:
    """64 KiB of a short repeated pattern (cheap to generate, large to write and read)."""
    return st.text(CLEAN_CHAR, min_size=1, max_size=8).map(_fill_64k)


@st.composite
def json_values(draw: st.DrawFn) -> object:
    kind = draw(st.integers(0, 99))
    if kind < 74:
        return draw(texts(max_size=30))
    if kind < 81:
        return draw(big_texts())
    if kind < 87:
        return draw(st.integers(min_value=-(10**30), max_value=10**30))
    if kind < 92:
        return draw(st.floats())
    if kind < 96:
        return draw(st.booleans())
    return draw(st.sampled_from((None, [], {}, ["x"], {"k": "v"})))


@st.composite
def json_keys(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 99)) < 15:
        return draw(st.sampled_from(POOL_KEYS))
    return draw(texts(max_size=12))


@dataclass
class Case:
    """One secret, how the output selects from it, and the output's static keys."""

    data: dict[str, Any]
    ascii_json: bool
    keys: list[str] | None
    static: dict[str, str] = field(default_factory=dict)

    def output(self, fmt: str) -> OutputConfig:
        ref: dict[str, Any] = {"id": SECRET_ID}
        if self.keys is not None:
            ref["keys"] = self.keys
        data = {"path": "/tmp/o/x", "format": fmt, "secrets": [ref], "static": self.static}
        return parse_config({"outputs": [data]}).outputs[0]

    def secret(self) -> SecretValue:
        text = json.dumps(self.data, ensure_ascii=self.ascii_json)
        return SecretValue(SECRET_ID, "v1", text=text)

    def values(self) -> list[str]:
        return [v for v in (*self.data.values(), *self.static.values()) if isinstance(v, str)]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    data = draw(st.dictionaries(json_keys(), json_values(), max_size=6))
    static = draw(st.dictionaries(st.sampled_from(STATIC_KEYS), texts(max_size=10), max_size=2))
    keys = None
    eligible = [k for k in data if k not in static and not breaks_the_probe(env_key(k))]
    if eligible and draw(st.integers(0, 9)) < 3:
        keys = draw(st.lists(st.sampled_from(eligible), min_size=1, unique=True))
    return Case(data, draw(st.booleans()), keys, static)


@dataclass
class Outcome:
    intended: dict[str, str]
    reasons: list[tuple[str, ...]]


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def expected(case: Case, fmt: str) -> Outcome:
    """What render() must give for ``case`` in ``fmt``: the map the reader must see, or why not."""
    origin = f"secret {SECRET_ID!r}"
    reasons: list[tuple[str, ...]] = []
    entries: dict[str, tuple[str, str, bool]] = {}  # key -> (value, origin, explicit)
    for key, text in case.static.items():
        if not _valid(key):
            reasons.append(("static", "not valid Unicode text"))
        elif not _valid(text):
            reasons.append(("static", repr(key), "not valid Unicode"))
        entries[key] = (text, "static", True)
    for key in case.data if case.keys is None else case.keys:
        item = case.data[key]
        if not _valid(key):
            reasons.append((origin, "a key is not valid Unicode text"))
            continue
        if item is None or isinstance(item, list | dict):
            reasons.append((origin, repr(key), "holds"))
            continue
        if isinstance(item, str):
            text = item
        elif isinstance(item, bool):
            text = "true" if item else "false"
        else:
            text = json.dumps(item)  # numbers as JSON writes them (1.5, 1e+100, NaN)
        if not _valid(text):
            reasons.append((origin, repr(key), "not valid Unicode"))
        if key in entries:
            reasons.append((repr(key), "both static and secret"))
        entries[key] = (text, origin, case.keys is not None)
    if fmt != "env":
        return Outcome({k: v for k, (v, _, _) in entries.items()}, reasons)
    names: dict[str, list[str]] = {}
    for key, (text, where, explicit) in entries.items():
        name = env_key(key)
        names.setdefault(name, []).append(key)
        if "\0" in text:
            reasons.append((where, repr(key), "NUL"))
        if not explicit and is_dangerous_env_name(name):
            reasons.append((where, repr(key), name, "`keys`"))
    reasons += [(name, "both become variable") for name, keys in names.items() if len(keys) > 1]
    return Outcome({env_key(k): v for k, (v, _, _) in entries.items()}, reasons)


def message_problems(message: str, case: Case, outcome: Outcome) -> list[str]:
    """Why a RenderError message is wrong for this case (empty when it is right)."""
    problems = []
    if not any(all(part in message for part in reason) for reason in outcome.reasons):
        problems.append(f"matches none of the reasons {outcome.reasons}")
    allowed = " ".join([SECRET_ID, *map(repr, case.data), *map(repr, case.static)])
    for v in case.values():
        # the value as it is, or as repr/ascii/json would escape it
        forms = {v, repr(v)[1:-1], ascii(v)[1:-1], json.dumps(v)[1:-1]}
        if len(v) >= 8 and any(f in message and f not in allowed for f in forms):
            problems.append(f"shows a value of {len(v)} characters")
    return problems
