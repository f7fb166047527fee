"""The sync.yaml contract: frozen models that reject anything they do not know.

Everything here is pure except :func:`load_config`, which reads one file (through
the bounded reader in :mod:`secretsync.config.loader`) and resolves symlinks. Models
are frozen dataclasses validated by :mod:`secretsync.config.schema`; every validation
error is turned into a :class:`ConfigError` whose lines each name the field
(``outputs[1].mode``) and what is allowed there (see :mod:`secretsync.config.errors`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from secretsync import DEFAULT_CONFIG_PATH
from secretsync.config.creds import BasicAuthConfig, Credentials, SaslConfig, check_derived
from secretsync.config.errors import MAX_PATH_ECHO_CHARS, ConfigError, brief, format_errors
from secretsync.config.fields import (
    FILE_MODE,
    FILE_PATH,
    OPTIONAL_FILE_PATH,
    SIGNAL_NAME,
    STATE_DIR,
    STATIC_VALUE,
    account_field,
    duration,
    null_is_empty_list,
    null_is_empty_map_of,
    null_is_empty_mapping,
    parse_duration,
)
from secretsync.config.loader import MAX_CONFIG_BYTES, MAX_CONFIG_NODES, load_yaml, read_config_text
from secretsync.config.schema import (
    Custom,
    Invalid,
    Model,
    Nested,
    Number,
    OneOf,
    Opt,
    Seq,
    Str,
    model,
    spec,
)
from secretsync.config.sections import (
    URL,
    AwsConfig,
    MetricsConfig,
    PollConfig,
    PushConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_NODES",
    "AwsConfig",
    "BasicAuthConfig",
    "Config",
    "ConfigError",
    "HttpTarget",
    "MetricsConfig",
    "NotifyTarget",
    "OutputConfig",
    "PollConfig",
    "SaslConfig",
    "SecretRef",
    "load_config",
    "parse_config",
    "parse_duration",
]


def _names(names: Iterable[str], last: str = " and ") -> str:
    """Up to five names for a message (each cut short), then how many more."""
    names = list(names)
    shown = [brief(name) for name in names[:5]]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    if len(shown) > 1 and not more:
        return ", ".join(shown[:-1]) + last + shown[-1]
    return ", ".join(shown) + more


def _distinct_keys(
    keys: list[str] | dict[str, str] | None, _ctx: object
) -> list[str] | dict[str, str] | None:
    if isinstance(keys, list):
        twice = [key for key, n in Counter(keys).items() if n > 1]
        if twice:
            raise ValueError(f"lists {_names(twice)} more than once; name each key once")
    elif isinstance(keys, dict):
        sources: dict[str, list[str]] = {}
        for secret_key, output_key in keys.items():
            sources.setdefault(output_key, []).append(secret_key)
        clashes = [
            f"{_names(names)} to {brief(out)}" for out, names in sources.items() if len(names) > 1
        ]
        if clashes:
            raise ValueError(
                f"maps {'; '.join(clashes[:3])}{'; …' if len(clashes) > 3 else ''}; "
                "each output key must come from one secret key"
            )
    return keys


def _keys_shape(value: object, _ctx: object) -> list[str] | dict[str, str]:
    if isinstance(value, list) and all(isinstance(key, str) for key in value):
        return list(value)
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ValueError("expected a list of keys or a mapping {secret_key: output_key}")


@model
class SecretRef(Model):
    """One secret feeding an output.

    ``keys`` absent: every key of the JSON secret. A list: only these keys, each
    required; ``[]`` (or ``{}``): no key (the secret only feeds ``sasl`` or
    ``basic_auth``). A mapping ``{secret_key: output_key}``: only these, each
    required, renamed. ``as``: the secret is a plain string placed whole under that key.
    """

    id: str = spec(Str(min_length=1, max_length=2048))
    keys: list[str] | dict[str, str] | None = spec(
        Opt(Custom(_distinct_keys, Custom(_keys_shape))), default=None
    )
    as_key: str | None = spec(Opt(Str(min_length=1)), default=None, key="as")

    def _check(self) -> None:
        if self.as_key is not None and self.keys is not None:
            raise ValueError("use either `keys` (JSON secret) or `as` (plain string), not both")

    def output_keys(self) -> set[str] | None:
        """The output keys this source is known to give, or None if that depends on the value."""
        if self.as_key is not None:
            return {self.as_key}
        if isinstance(self.keys, list):
            return set(self.keys)
        if isinstance(self.keys, dict):
            return set(self.keys.values())
        return None


@model
class OutputConfig(Model):
    """One file to write.

    ``sasl`` / ``basic_auth``: login settings derived from one of ``secrets``
    (see :mod:`secretsync.config.creds`); their keys may come from no other source.

    ``path``: absolute, or relative to the config file's directory; kept
    normalised (``/o/../o/x`` becomes ``/o/x``). ``owner``/``group``: a name, or
    a uid/gid (a YAML number or a string of ASCII digits, kept as an int).
    """

    path: Path = spec(FILE_PATH)
    format: Literal["properties", "json", "env"] = spec(
        OneOf("properties", "json", "env"), default="properties"
    )
    mode: int = spec(FILE_MODE, default=0o600)
    owner: str | int | None = spec(account_field("user"), default=None)
    group: str | int | None = spec(account_field("group"), default=None)
    secrets: list[SecretRef] = spec(null_is_empty_list(Seq(Nested(SecretRef), min_length=1)))
    static: dict[str, str] = spec(null_is_empty_map_of(STATIC_VALUE), default_factory=dict)
    notify: list[str] = spec(null_is_empty_list(Seq(Str())), default_factory=list)
    sasl: SaslConfig | None = spec(Opt(Nested(SaslConfig)), default=None)
    basic_auth: BasicAuthConfig | None = spec(Opt(Nested(BasicAuthConfig)), default=None)

    def _check(self) -> None:
        seen: dict[str, str] = {key: "static" for key in self.static}
        for ref in self.secrets:
            for key in sorted(ref.output_keys() or ()):
                if key in seen:
                    raise ValueError(
                        f"key {brief(key)} is given by both {seen[key]} and secret "
                        f"{brief(ref.id)}; each key must come from one source"
                    )
                seen[key] = f"secret {brief(ref.id)}"
        check_derived(self.derived, self.secrets, seen)

    @property
    def derived(self) -> list[Credentials]:
        """The ``sasl`` and ``basic_auth`` sections that are set, in that order."""
        return [creds for creds in (self.sasl, self.basic_auth) if creds is not None]

    @property
    def secret_ids(self) -> list[str]:
        return list(dict.fromkeys(ref.id for ref in self.secrets))


@model
class HttpTarget(Model):
    url: str = spec(URL)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = spec(
        OneOf("GET", "POST", "PUT", "PATCH", "DELETE"), default="POST"
    )
    headers: dict[str, str] = spec(null_is_empty_map_of(Str()), default_factory=dict)
    timeout_s: float = spec(duration(gt=0, le=300), default=5.0, key="timeout")


def _regex(value: str | None, _ctx: object) -> str | None:
    if value is not None:
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if regex.search("") is not None:
            raise ValueError(
                f"{brief(value)} matches the empty string, so it would match every "
                'process; name the program, e.g. "java .*KafkaApp"'
            )
    return value


@model
class NotifyTarget(Model):
    """How to tell one dependent process: a signal, a command or an HTTP call.

    ``pidfile``: absolute, or relative to the config file's directory (like
    output paths; never to the daemon's working directory). ``process``: a
    regex searched in ``/proc/<pid>/cmdline`` (NULs as spaces); one that
    matches the empty string is refused, as it would match every process.
    ``splay``: each delivery waits a random time in [0, splay] after its batch
    settles, so a fleet spreads the restarts a rotation causes.
    """

    signal: str | None = spec(Opt(SIGNAL_NAME), default=None)
    pidfile: Path | None = spec(OPTIONAL_FILE_PATH, default=None)
    process: str | None = spec(Opt(Custom(_regex, Str())), default=None)
    command: list[str] | None = spec(Opt(Seq(Str(), min_length=1)), default=None)
    http: HttpTarget | None = spec(Opt(Nested(HttpTarget)), default=None)
    timeout_s: float = spec(duration(gt=0, le=3600), default=30.0, key="timeout")
    retries: int = spec(Number(whole=True, ge=0, le=1), default=0)
    retry_backoff_s: float = spec(duration(ge=0, le=60), default=1.0, key="retry_backoff")
    splay_s: float = spec(duration(ge=0, le=3600), default=0.0, key="splay")

    def _check(self) -> None:
        kinds = [
            name
            for name, present in (
                ("signal", self.signal is not None or self.pidfile or self.process),
                ("command", self.command is not None),
                ("http", self.http is not None),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError(
                "set exactly one of: signal (with pidfile and/or process), command, http"
            )
        if kinds == ["signal"] and self.pidfile is None and self.process is None:
            raise ValueError("a signal target needs `pidfile`, `process` or both")

    @property
    def kind(self) -> Literal["signal", "command", "http"]:
        if self.command is not None:
            return "command"
        if self.http is not None:
            return "http"
        return "signal"

    @property
    def signal_name(self) -> str:
        return self.signal or "SIGHUP"


@model
class Config(Model):
    """The whole sync.yaml. An empty (null) ``aws``, ``poll``, ``metrics`` or
    ``notify`` section means its defaults; to disable metrics set ``metrics.listen: null``.
    """

    aws: AwsConfig = spec(null_is_empty_mapping(Nested(AwsConfig)), default_factory=AwsConfig)
    poll: PollConfig = spec(null_is_empty_mapping(Nested(PollConfig)), default_factory=PollConfig)
    settle_s: float = spec(duration(ge=0, le=3600), default=2.0, key="settle")
    settle_max_s: float = spec(duration(ge=0, le=86400), default=30.0, key="settle_max")
    metrics: MetricsConfig = spec(
        null_is_empty_mapping(Nested(MetricsConfig)), default_factory=MetricsConfig
    )
    shutdown_timeout_s: float = spec(duration(ge=1, le=600), default=5.0, key="shutdown_timeout")
    push: PushConfig | None = spec(Opt(Nested(PushConfig)), default=None)
    state_dir: Path | None = spec(STATE_DIR, default=None)
    outputs: list[OutputConfig] = spec(null_is_empty_list(Seq(Nested(OutputConfig), min_length=1)))
    notify: dict[str, NotifyTarget] = spec(
        null_is_empty_map_of(Nested(NotifyTarget)), default_factory=dict
    )

    def _check(self) -> None:
        if self.settle_max_s < self.settle_s:
            raise ValueError(
                f"settle_max: must be >= settle ({self.settle_s:g}s); got {self.settle_max_s:g}s"
            )
        paths: dict[Path, int] = {}
        for index, output in enumerate(self.outputs):
            if output.path in paths:
                # the path comes last: a long one is cut, the field names are not
                shown = brief(str(output.path), MAX_PATH_ECHO_CHARS)
                raise ValueError(
                    f"outputs[{index}].path: the same file as outputs[{paths[output.path]}].path;"
                    f" each output needs its own file (both are {shown})"
                )
            paths[output.path] = index
            for name in output.notify:
                if name not in self.notify:
                    allowed = ", ".join(sorted(self.notify)) or "(none defined)"
                    raise ValueError(
                        f"outputs[{index}].notify: {brief(name)} is not a target of the "
                        f"notify section; allowed: {allowed}"
                    )

    @property
    def secret_ids(self) -> list[str]:
        """Every secret id used by any output, each once, in config order."""
        return list(dict.fromkeys(sid for out in self.outputs for sid in out.secret_ids))

    @property
    def stale_after_s(self) -> float:
        return self.metrics.stale_after_s or 10 * self.poll.interval_s


def parse_config(data: object, *, base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML data. Pure: no file system access.

    Relative output paths and pidfiles resolve against ``base_dir``; without it
    they are an error. Paths are normalised lexically, so ``/o/x`` and
    ``/o/../o/x`` are one output (an error); symlinks are :func:`load_config`'s job.
    Raises ConfigError with one bounded line per problem, each naming the field.
    """
    if data is None:
        raise ConfigError(
            "config: the file is empty (or only comments); at least `outputs` is required"
        )
    if not isinstance(data, Mapping):
        raise ConfigError("config: expected a mapping at the top level (aws, poll, outputs, …)")
    try:
        return Config.model_validate(data, base_dir=base_dir)
    except Invalid as exc:
        raise ConfigError(format_errors(exc)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a sync.yaml file. Raises ConfigError for any problem, I/O included.

    The file is bounded before validation (at most MAX_CONFIG_BYTES, and
    MAX_CONFIG_NODES YAML nodes after alias expansion). Relative paths resolve
    against the file's directory. Two outputs that are one file through a
    symlink are an error too (checked here, as it needs the file system).
    """
    path = Path(path)
    try:
        data = load_yaml(read_config_text(path))
        config = parse_config(data, base_dir=path.resolve().parent)
        _check_distinct_files(config)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{path}: cannot read config: {reason}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def _real_paths() -> Callable[[Path], str]:
    """``os.path.realpath``, each directory resolved once: a thousand outputs in one
    directory cost one walk of it and one ``lstat`` each, not a walk each."""
    resolved: dict[str, str] = {}

    def real_path(path: Path) -> str:
        parent, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        base = resolved.get(parent)
        if base is None:
            base = resolved[parent] = os.path.realpath(parent)
        joined = os.path.join(base, name)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    return real_path


def _check_distinct_files(config: Config) -> None:
    """Raise ConfigError if two outputs resolve (through symlinks) to one file."""
    seen: dict[str, int] = {}
    problems = []
    real_path = _real_paths()
    for index, output in enumerate(config.outputs):
        real = real_path(output.path)
        if real in seen:
            first = seen[real]
            shown = brief(real, MAX_PATH_ECHO_CHARS)
            problems.append(
                f"outputs[{index}].path: the same file as outputs[{first}].path through a "
                f"symlink; each output needs its own file (both resolve to {shown})"
            )
        else:
            seen[real] = index
    if problems:
        raise ConfigError("\n".join(problems))
