"""The sync.yaml contract: pydantic models that reject anything they do not know.

Everything here is pure except :func:`load_config`, which reads one file (through
the bounded reader in :mod:`secretsync.config.loader`) and resolves symlinks. Models
are frozen; every validation error is turned into a :class:`ConfigError` whose
lines each name the field (``outputs[1].mode``) and what is allowed there (see
:mod:`secretsync.config.errors`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from secretsync import DEFAULT_CONFIG_PATH
from secretsync.config.creds import BasicAuthConfig, Credentials, SaslConfig, check_derived
from secretsync.config.errors import MAX_PATH_ECHO_CHARS, ConfigError, brief, format_errors
from secretsync.config.fields import (
    Duration,
    FileMode,
    NullIsEmptyList,
    NullIsEmptyMapping,
    SignalName,
    StaticValue,
    account_field,
    file_path,
    parse_duration,
    state_dir_path,
)
from secretsync.config.loader import MAX_CONFIG_BYTES, MAX_CONFIG_NODES, load_yaml, read_config_text
from secretsync.config.sections import (
    AwsConfig,
    FrozenModel,
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


class SecretRef(FrozenModel):
    """One secret feeding an output.

    ``keys`` absent: every key of the JSON secret. A list: only these keys, each
    required; ``[]`` (or ``{}``): no key (the secret only feeds ``sasl`` or
    ``basic_auth``). A mapping ``{secret_key: output_key}``: only these, each
    required, renamed. ``as``: the secret is a plain string placed whole under that key.
    """

    id: str = Field(min_length=1, max_length=2048)
    keys: list[str] | dict[str, str] | None = None
    as_key: str | None = Field(default=None, alias="as", min_length=1)

    @field_validator("keys")
    @classmethod
    def _distinct(
        cls, keys: list[str] | dict[str, str] | None
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
                f"{_names(names)} to {brief(out)}"
                for out, names in sources.items()
                if len(names) > 1
            ]
            if clashes:
                raise ValueError(
                    f"maps {'; '.join(clashes[:3])}{'; …' if len(clashes) > 3 else ''}; "
                    "each output key must come from one secret key"
                )
        return keys

    @model_validator(mode="after")
    def _exclusive(self) -> SecretRef:
        if self.as_key is not None and self.keys is not None:
            raise ValueError("use either `keys` (JSON secret) or `as` (plain string), not both")
        return self

    def output_keys(self) -> set[str] | None:
        """The output keys this source is known to give, or None if that depends on the value."""
        if self.as_key is not None:
            return {self.as_key}
        if isinstance(self.keys, list):
            return set(self.keys)
        if isinstance(self.keys, dict):
            return set(self.keys.values())
        return None


class OutputConfig(FrozenModel):
    """One file to write.

    ``sasl`` / ``basic_auth``: login settings derived from one of ``secrets``
    (see :mod:`secretsync.config.creds`); their keys may come from no other source.

    ``path``: absolute, or relative to the config file's directory; kept
    normalised (``/o/../o/x`` becomes ``/o/x``). ``owner``/``group``: a name, or
    a uid/gid (a YAML number or a string of ASCII digits, kept as an int).
    """

    path: Path
    format: Literal["properties", "json", "env"] = "properties"
    mode: FileMode = 0o600
    owner: Annotated[str | int | None, account_field("user")] = None
    group: Annotated[str | int | None, account_field("group")] = None
    secrets: Annotated[list[SecretRef], NullIsEmptyList] = Field(min_length=1)
    static: Annotated[dict[str, StaticValue], NullIsEmptyMapping] = Field(default_factory=dict)
    notify: Annotated[list[str], NullIsEmptyList] = Field(default_factory=list)
    sasl: SaslConfig | None = None
    basic_auth: BasicAuthConfig | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object, info: ValidationInfo) -> Path:
        return file_path(value, info)

    @model_validator(mode="after")
    def _static_vs_secrets(self) -> OutputConfig:
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
        return self

    @property
    def derived(self) -> list[Credentials]:
        """The ``sasl`` and ``basic_auth`` sections that are set, in that order."""
        return [creds for creds in (self.sasl, self.basic_auth) if creds is not None]

    @property
    def secret_ids(self) -> list[str]:
        return list(dict.fromkeys(ref.id for ref in self.secrets))


class HttpTarget(FrozenModel):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: Annotated[dict[str, str], NullIsEmptyMapping] = Field(default_factory=dict)
    timeout_s: Duration = Field(default=5.0, alias="timeout", gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value


class NotifyTarget(FrozenModel):
    """How to tell one dependent process: a signal, a command or an HTTP call.

    ``pidfile``: absolute, or relative to the config file's directory (like
    output paths; never to the daemon's working directory). ``process``: a
    regex searched in ``/proc/<pid>/cmdline`` (NULs as spaces); one that
    matches the empty string is refused, as it would match every process.
    ``splay``: each delivery waits a random time in [0, splay] after its batch
    settles, so a fleet spreads the restarts a rotation causes.
    """

    signal: SignalName | None = None
    pidfile: Path | None = None
    process: str | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    http: HttpTarget | None = None
    timeout_s: Duration = Field(default=30.0, alias="timeout", gt=0, le=3600)
    retries: int = Field(default=0, ge=0, le=1)
    retry_backoff_s: Duration = Field(default=1.0, alias="retry_backoff", ge=0, le=60)
    splay_s: Duration = Field(default=0.0, alias="splay", ge=0, le=3600)

    @field_validator("pidfile", mode="before")
    @classmethod
    def _pidfile(cls, value: object, info: ValidationInfo) -> Path | None:
        return None if value is None else file_path(value, info)

    @field_validator("process")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
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

    @model_validator(mode="after")
    def _one_kind(self) -> NotifyTarget:
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
        return self

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


class Config(FrozenModel):
    """The whole sync.yaml. An empty (null) ``aws``, ``poll``, ``metrics`` or
    ``notify`` section means its defaults; to disable metrics set ``metrics.listen: null``.
    """

    aws: Annotated[AwsConfig, NullIsEmptyMapping] = Field(default_factory=AwsConfig)
    poll: Annotated[PollConfig, NullIsEmptyMapping] = Field(default_factory=PollConfig)
    settle_s: Duration = Field(default=2.0, alias="settle", ge=0, le=3600)
    settle_max_s: Duration = Field(default=30.0, alias="settle_max", ge=0, le=86400)
    metrics: Annotated[MetricsConfig, NullIsEmptyMapping] = Field(default_factory=MetricsConfig)
    shutdown_timeout_s: Duration = Field(default=5.0, alias="shutdown_timeout", ge=1, le=600)
    push: PushConfig | None = None
    state_dir: Annotated[Path | None, BeforeValidator(state_dir_path)] = None
    outputs: Annotated[list[OutputConfig], NullIsEmptyList] = Field(min_length=1)
    notify: Annotated[dict[str, NotifyTarget], NullIsEmptyMapping] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
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
        return self

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
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, Config)) from None


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


def _check_distinct_files(config: Config) -> None:
    """Raise ConfigError if two outputs resolve (through symlinks) to one file."""
    seen: dict[str, int] = {}
    problems = []
    for index, output in enumerate(config.outputs):
        real = os.path.realpath(output.path)
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
