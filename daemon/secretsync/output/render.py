"""Pure renderers: secret values + static properties → the bytes of one output file.

No I/O, no clock: the same inputs always give the same bytes, so an unchanged
secret never rewrites a file nor wakes a process. Error messages name secret
ids and keys, never values. :func:`render` returns bytes or raises
RenderError, whatever a secret holds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from secretsync.config.creds import Credentials
from secretsync.config.model import OutputConfig, SecretRef
from secretsync.escapes import properties_text
from secretsync.output.derive import CredentialError, derive, key_list, kind_of, surrogate_at
from secretsync.source.protocol import SecretValue

HEADER = "Managed by secretsync; do not edit: changes are overwritten."


class RenderError(Exception):
    """The output cannot be rendered from these values; the message holds no secret value."""

    safe_message = True


@dataclass(frozen=True, repr=False)
class Entry:
    """One key of an output: its text, where it came from, and whether the config names it.

    ``origin`` is ``"static"`` or ``"secret '<id>'"``. ``explicit`` is true when
    the operator wrote the key in the config (``static``, ``keys`` or ``as``)
    rather than taking whatever keys the secret happens to hold.
    """

    value: str
    origin: str
    explicit: bool

    def __repr__(self) -> str:
        return f"Entry(origin={self.origin!r}, explicit={self.explicit!r})"


def _check_key(origin: str, key: str, *, position: int, count: int) -> None:
    """Refuse a key that is not valid Unicode text; the message never shows the key."""
    at = surrogate_at(key)
    if at is not None:
        raise RenderError(
            f"{origin}: a key is not valid Unicode text (key {position} of {count}, "
            f"{len(key)} characters, a lone surrogate at character {at + 1})"
        )


def _check_value(origin: str, key: str, value: str) -> None:
    """Refuse a value that is not valid Unicode text (UTF-8 cannot encode it).

    JSON allows ``"\\ud800"``, so a secret can hold such text, but no output
    format can carry it faithfully. The message gives a position, never text.
    """
    at = surrogate_at(value)
    if at is not None:
        raise RenderError(
            f"{origin}: key {key!r} holds text that is not valid Unicode (a lone "
            f"surrogate at character {at + 1} of {len(value)})"
        )


def _scalar(origin: str, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise RenderError(
        f"{origin}: key {key!r} holds {kind_of(value)}; only strings, numbers "
        "and booleans can be written"
    )


def _json_object(secret_id: str, text: str, hint: str) -> dict[str, object]:
    """The secret's JSON object; RenderError (ending with ``hint``) for anything else."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise RenderError(f"secret {secret_id!r}: its JSON is nested too deeply to read") from None
    except ValueError:  # not JSON, or an integer too long to convert
        data = None
    if not isinstance(data, dict):
        raise RenderError(f"secret {secret_id!r}: is not a JSON object; {hint}")
    return data


def _pairs(ref: SecretRef, value: SecretValue) -> list[tuple[str, str, object]]:
    """``(key in the secret, key in the output, value)`` for each key this source gives."""
    if ref.keys is not None and not ref.keys:
        return []  # `keys: []`: the secret only feeds `sasl` / `basic_auth`, which check it
    if value.text is None:
        if ref.as_key is not None and value.binary is not None:
            try:
                return [(ref.as_key, ref.as_key, value.binary.decode("utf-8"))]
            except UnicodeDecodeError:
                raise RenderError(f"secret {ref.id!r}: binary secret is not UTF-8 text") from None
        raise RenderError(f"secret {ref.id!r}: has no SecretString (binary secrets need `as`)")
    if ref.as_key is not None:
        return [(ref.as_key, ref.as_key, value.text)]
    hint = "set `as: <key>` on this source to write the whole string under one key"
    data = _json_object(ref.id, value.text, hint)
    if ref.keys is None:
        return [(key, key, item) for key, item in data.items()]
    mapping = dict(zip(ref.keys, ref.keys, strict=True)) if isinstance(ref.keys, list) else ref.keys
    missing = [key for key in mapping if key not in data]
    if missing:
        raise RenderError(
            f"secret {ref.id!r}: missing required key(s) {key_list(missing)}; "
            f"it has {key_list(list(data))}"
        )
    return [(key, out_key, data[key]) for key, out_key in mapping.items()]


def _derived(creds: Credentials, values: Mapping[str, SecretValue]) -> list[tuple[str, str]]:
    """``(output key, value)`` for each key ``sasl`` or ``basic_auth`` writes."""
    value = values.get(creds.secret)
    if value is None:
        raise RenderError(f"secret {creds.secret!r}: no value fetched yet")
    hint = f"{creds.section} needs a JSON object holding a username and a password"
    if value.text is None:
        raise RenderError(f"secret {creds.secret!r}: has no SecretString; {hint}")
    try:
        return derive(creds, creds.secret, _json_object(creds.secret, value.text, hint))
    except CredentialError as exc:
        raise RenderError(str(exc)) from None


def collect_entries(output: OutputConfig, values: Mapping[str, SecretValue]) -> dict[str, Entry]:
    """Merge the output's static properties and its secrets into key → :class:`Entry`.

    ``values`` maps secret id → fetched value; every secret of the output must be
    present. ``sasl`` and ``basic_auth`` keys come last (see
    :mod:`secretsync.output.derive`). Raises RenderError for a missing secret, a
    non-JSON secret without ``as``, a missing required key, a nested or null
    value, a key or value that is not valid Unicode text, a username or
    password :func:`secretsync.output.derive.derive` refuses, or a key given by two
    sources (also a derived key that a secret without ``keys`` turns out to hold).
    """
    merged: dict[str, Entry] = {}
    static = list(output.static.items())
    for index, (name, literal) in enumerate(static, 1):
        _check_key("static", name, position=index, count=len(static))
        _check_value("static", name, literal)
        merged[name] = Entry(literal, "static", explicit=True)
    for ref in output.secrets:
        value = values.get(ref.id)
        if value is None:
            raise RenderError(f"secret {ref.id!r}: no value fetched yet")
        origin = f"secret {ref.id!r}"
        explicit = ref.keys is not None or ref.as_key is not None
        pairs = _pairs(ref, value)
        for index, (secret_key, key, item) in enumerate(pairs, 1):
            _check_key(origin, secret_key, position=index, count=len(pairs))
            _check_key(origin, key, position=index, count=len(pairs))
            text = _scalar(origin, secret_key, item)
            _check_value(origin, secret_key, text)
            if key in merged:
                raise RenderError(
                    f"key {key!r} is given by both {merged[key].origin} and {origin}; "
                    "restrict one source with `keys`"
                )
            merged[key] = Entry(text, origin, explicit)
    for creds in output.derived:
        origin = f"{creds.section} (secret {creds.secret!r})"
        for key, text in _derived(creds, values):
            if key in merged:
                raise RenderError(
                    f"key {key!r} is given by both {merged[key].origin} and {origin}; "
                    "restrict one source with `keys`"
                )
            merged[key] = Entry(text, origin, explicit=True)
    return merged


def collect(output: OutputConfig, values: Mapping[str, SecretValue]) -> dict[str, str]:
    """The output's key → value map; errors as :func:`collect_entries`."""
    return {key: entry.value for key, entry in collect_entries(output, values).items()}


def render_properties(props: Mapping[str, str], sources: list[str]) -> bytes:
    """Java ``.properties`` as ``Properties.load(InputStream)`` reads it (ISO-8859-1).

    Keys are sorted, non-ASCII is written as ``\\uXXXX``, newlines and other
    specials are escaped so a value can never start a new key, and there is no
    timestamp comment. Text must be valid Unicode (see :func:`collect_entries`).
    """
    comments = HEADER + "\nSources: " + ", ".join(sources)
    text = properties_text(props, comments)
    # everything above U+007E is escaped, comments included: the result is
    # ASCII, so this encode cannot fail.
    return text.encode("iso-8859-1")


def render_json(props: Mapping[str, str]) -> bytes:
    """A JSON object with sorted keys, two-space indent, UTF-8, trailing newline.

    Text must be valid Unicode (see :func:`collect_entries`).
    """
    return (json.dumps(dict(props), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


_ENV_BAD = re.compile(r"[^A-Za-z0-9]")

# Variables a secret's own keys may not set unless the operator names the key
# (`keys`, `as` or `static`): whoever can write the secret could otherwise make
# the consuming process load or run code of their choosing, trust another CA,
# send traffic through a proxy, look elsewhere for programs, config or temp
# files, or make the shell sourcing the file abort or drop the value.
_DANGEROUS_ENV_NAMES = frozenset(
    {
        # dynamic loader and libc: load libraries / modules, change name resolution
        "GLIBC_TUNABLES", "GCONV_PATH", "LOCPATH", "NLSPATH",
        "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS",
        # where programs, config and temp files are looked up
        "PATH", "HOME", "TMPDIR", "SHELL", "CDPATH",
        # shells: startup files, evaluated prompts, field splitting, options
        "ENV", "IFS", "PS1", "PS2", "PS4", "PROMPT_COMMAND", "SHELLOPTS",
        # shells own these: bash refuses (readonly) or ignores them, dash aborts
        # on a non-number OPTIND, so sourcing fails or the value never arrives
        "PPID", "UID", "EUID", "OPTIND", "LINENO", "RANDOM", "SRANDOM",
        "SECONDS", "GROUPS", "FUNCNAME", "HISTCMD", "_",
        # JVM: agents, class path
        "CLASSPATH",
        # TLS trust and proxies
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY",
    }
)  # fmt: skip
_DANGEROUS_ENV_PREFIXES = (
    "LD_",  # LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT: load any shared object
    "DYLD_",  # the same on macOS
    "BASH",  # BASH_ENV (sourced by every script), BASHOPTS, BASH_XTRACEFD, BASH_FUNC_*
    "JAVA_",  # JAVA_TOOL_OPTIONS (-javaagent), JAVA_HOME, JAVA_OPTS
    "_JAVA_",  # _JAVA_OPTIONS
    "JDK_",  # JDK_JAVA_OPTIONS
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONINSPECT
    "NODE_",  # NODE_OPTIONS (--require), NODE_PATH, NODE_TLS_REJECT_UNAUTHORIZED
    "PERL",  # PERL5OPT, PERL5LIB, PERLLIB
    "RUBY",  # RUBYOPT, RUBYLIB
    "OPENSSL_",  # OPENSSL_CONF loads engines / providers
)
# Launch scripts pass these to the runtime: KAFKA_OPTS, KAFKA_HEAP_OPTS,
# SCHEMA_REGISTRY_OPTS, CATALINA_OPTS, MAVEN_OPTS, JAVA_TOOL_OPTIONS, ...
_DANGEROUS_ENV_SUFFIXES = ("_OPTS", "_OPTIONS")


def env_key(key: str) -> str:
    """``sasl.jaas.config`` → ``SASL_JAAS_CONFIG``; a leading digit gets a ``_`` prefix."""
    name = _ENV_BAD.sub("_", key).upper()
    return "_" + name if not name or name[0].isdigit() else name


def is_dangerous_env_name(name: str) -> bool:
    """True for a variable name a secret's keys may only set when the config names the key."""
    return (
        name in _DANGEROUS_ENV_NAMES
        or name.startswith(_DANGEROUS_ENV_PREFIXES)
        or name.endswith(_DANGEROUS_ENV_SUFFIXES)
    )


def _comment(text: str) -> str:
    """``text`` on one comment line: newlines, CR (a line end for systemd) and other
    unprintable characters are written as Python escapes, and a backslash is
    doubled (before v254, systemd continued a comment that ends in one)."""
    return "".join(c if c.isprintable() and c != "\\" else ascii(c)[1:-1] for c in text)


def render_env(entries: Mapping[str, Entry], sources: list[str]) -> bytes:
    """``NAME='value'`` lines, single-quoted for POSIX shells and systemd EnvironmentFile.

    Raises RenderError when a value holds NUL (a shell drops it and everything
    after it), when a key a secret gave without the config naming it becomes a
    dangerous variable (:func:`is_dangerous_env_name`), or when two keys become
    one variable (``a.b`` and ``a_b``).
    """
    names: dict[str, str] = {}
    for key, entry in entries.items():
        name = env_key(key)
        if "\0" in entry.value:
            raise RenderError(
                f"{entry.origin}: key {key!r} holds a NUL character, which an environment "
                "variable cannot carry"
            )
        if not entry.explicit and is_dangerous_env_name(name):
            raise RenderError(
                f"{entry.origin}: key {key!r} would set variable {name}, which can change "
                "what the consuming process runs or trusts; if that is intended, name the "
                "key in this secret's `keys`"
            )
        if name in names:
            other = names[name]
            where = (
                f"{entry.origin}: keys {other!r} and {key!r}"
                if entries[other].origin == entry.origin
                else f"key {other!r} ({entries[other].origin}) and key {key!r} ({entry.origin})"
            )
            raise RenderError(f"{where} both become variable {name}; rename one with `keys`")
        names[name] = key
    lines = [f"# {HEADER}", "# Sources: " + _comment(", ".join(sources))]
    lines += [f"{name}={shlex.quote(entries[key].value)}" for name, key in sorted(names.items())]
    return ("\n".join(lines) + "\n").encode()


def render(output: OutputConfig, values: Mapping[str, SecretValue]) -> bytes:
    """Render one output from fetched secret values.

    Returns the file's bytes or raises RenderError (see :func:`collect_entries`
    and :func:`render_env`); no other exception escapes for anything a secret
    can hold.
    """
    return render_entries(output, collect_entries(output, values))


def render_entries(output: OutputConfig, entries: Mapping[str, Entry]) -> bytes:
    """The file's bytes from entries :func:`collect_entries` made (so a caller that also
    needs the keys collects once). Raises RenderError like :func:`render`."""
    if output.format == "env":
        return render_env(entries, output.secret_ids)
    props = {key: entry.value for key, entry in entries.items()}
    if output.format == "json":
        return render_json(props)
    return render_properties(props, output.secret_ids)


def leaf_strings(value: SecretValue) -> list[str]:
    """The raw secret text (first) and every string and number inside it, for log redaction.

    Only scalars: a nested object or list is never serialised again (every level
    of a 400-level secret used to be, one JSON copy each, 200 times the secret's
    size); each of its strings is in the list, so any text made from it has them
    masked. The walk is iterative. JSON nested too deeply to read (or not JSON)
    gives the raw text alone: never an exception (rendering such a secret is a
    RenderError of its outputs, not a failed fetch).
    """
    leaves: list[str] = []
    if value.binary is not None:
        with contextlib.suppress(UnicodeDecodeError):
            leaves.append(value.binary.decode("utf-8"))
    if value.text is None:
        return leaves
    leaves.append(value.text)
    try:
        data = json.loads(value.text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than it can read
        return leaves
    if isinstance(data, dict):
        leaves.extend(_leaves(data))
    return leaves


def _leaves(root: dict[str, object]) -> list[str]:
    out: list[str] = []
    todo: list[object] = [root]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            out.append(json.dumps(item))
        elif isinstance(item, dict):
            todo.extend(reversed(item.values()))
        elif isinstance(item, list):
            todo.extend(reversed(item))
    return out
