"""The sync.yaml contract: pydantic models that reject anything they do not know.

Everything here is pure except :func:`load_config`, which reads one file. Models
are frozen; every validation error is turned into a :class:`ConfigError` whose
lines each name the field (``outputs[1].mode``) and what is allowed there.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = "/etc/secretsync/sync.yaml"

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_DURATION_HELP = 'a duration such as "500ms", "30s", "5m", "1h" or a number of seconds'


class ConfigError(Exception):
    """A configuration that cannot be used; ``str()`` is the message for the user."""


def parse_duration(value: object) -> float:
    """Return seconds for ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or a plain number.

    Negative values, booleans and any other unit are rejected with a ValueError
    whose text lists the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HELP}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"must not be negative; expected {_DURATION_HELP}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
    raise ValueError(f"expected {_DURATION_HELP}, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _parse_mode(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        mode = int(value, 8)
        if mode & 0o002:
            raise ValueError("must not be world-writable (allowed: 0000-0775 without o+w)")
        return mode
    raise ValueError(
        f'expected an octal string such as "0600" or "0640" (allowed: "0000"-"0775"), '
        f"got {value!r}"
        + (" (quote it in YAML: a bare 0600 is read as a number)" if isinstance(value, int) else "")
    )


FileMode = Annotated[int, BeforeValidator(_parse_mode)]


def _scalar_to_str(value: object) -> str:
    # YAML turns `retries: 3` and `enable: true` into int/bool; Java wants text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("expected a string, number or boolean")


StaticValue = Annotated[str, BeforeValidator(_scalar_to_str)]

SIGNAL_NAMES = sorted(
    s.name for s in signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")
)


def _parse_signal(value: object) -> str:
    if isinstance(value, str):
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name in SIGNAL_NAMES and name not in {"SIGKILL", "SIGSTOP"}:
            return name
    raise ValueError(
        f"unknown signal {value!r}; allowed: SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, "
        "or another standard name except SIGKILL/SIGSTOP"
    )


SignalName = Annotated[str, BeforeValidator(_parse_signal)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AwsConfig(_Model):
    region: str | None = None
    endpoint_url: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value


class PollConfig(_Model):
    interval_s: Duration = Field(default=30.0, alias="interval", ge=0.1, le=86400)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)


class MetricsConfig(_Model):
    listen: str | None = "0.0.0.0:9464"
    stale_after_s: Duration | None = Field(default=None, alias="stale_after", gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError('expected "host:port" with a port 0-65535, or null to disable')
        return value

    @property
    def host(self) -> str:
        assert self.listen is not None
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        assert self.listen is not None
        return int(self.listen.rpartition(":")[2])


class SecretRef(_Model):
    """One secret feeding an output.

    ``keys`` absent: every key of the JSON secret. A list: only these keys, each
    required. A mapping ``{secret_key: output_key}``: only these, each required,
    renamed. ``as``: the secret is a plain string placed whole under that key.
    """

    id: str = Field(min_length=1, max_length=2048)
    keys: list[str] | dict[str, str] | None = None
    as_key: str | None = Field(default=None, alias="as", min_length=1)

    @model_validator(mode="after")
    def _exclusive(self) -> SecretRef:
        if self.as_key is not None and self.keys is not None:
            raise ValueError("use either `keys` (JSON secret) or `as` (plain string), not both")
        if isinstance(self.keys, list) and len(set(self.keys)) != len(self.keys):
            raise ValueError("`keys` lists a key twice")
        if isinstance(self.keys, list | dict) and not self.keys:
            raise ValueError("`keys` is empty; omit it to take every key of the secret")
        if isinstance(self.keys, dict) and len(set(self.keys.values())) != len(self.keys):
            raise ValueError("`keys` maps two secret keys to one output key")
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


class OutputConfig(_Model):
    path: Path
    format: Literal["properties", "json", "env"] = "properties"
    mode: FileMode = 0o600
    owner: str | int | None = None
    group: str | int | None = None
    secrets: list[SecretRef] = Field(min_length=1)
    static: dict[str, StaticValue] = Field(default_factory=dict)
    notify: list[str] = Field(default_factory=list)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object, info: ValidationInfo) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a file path")
        path = Path(value)
        if not path.is_absolute():
            base = (info.context or {}).get("base_dir")
            if base is None:
                raise ValueError("must be an absolute path")
            path = Path(base) / path
        if PurePosixPath(value).name in {"", ".", ".."}:
            raise ValueError("must name a file, not a directory")
        return path

    @model_validator(mode="after")
    def _static_vs_secrets(self) -> OutputConfig:
        seen: dict[str, str] = {key: "static" for key in self.static}
        for ref in self.secrets:
            for key in sorted(ref.output_keys() or ()):
                if key in seen:
                    raise ValueError(
                        f"key {key!r} is given by both {seen[key]} and secret {ref.id!r}; "
                        "each key must come from one source"
                    )
                seen[key] = f"secret {ref.id!r}"
        return self

    @property
    def secret_ids(self) -> list[str]:
        return list(dict.fromkeys(ref.id for ref in self.secrets))


class HttpTarget(_Model):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: Duration = Field(default=5.0, alias="timeout", gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value


class NotifyTarget(_Model):
    """How to tell one dependent process: a signal, a command or an HTTP call."""

    signal: SignalName | None = None
    pidfile: Path | None = None
    process: str | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    http: HttpTarget | None = None
    timeout_s: Duration = Field(default=30.0, alias="timeout", gt=0, le=3600)
    retries: int = Field(default=0, ge=0, le=1)
    retry_backoff_s: Duration = Field(default=1.0, alias="retry_backoff", ge=0, le=60)

    @field_validator("process")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
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


class Config(_Model):
    aws: AwsConfig = Field(default_factory=AwsConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    settle_s: Duration = Field(default=2.0, alias="settle", ge=0, le=3600)
    settle_max_s: Duration = Field(default=30.0, alias="settle_max", ge=0, le=86400)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    outputs: list[OutputConfig] = Field(min_length=1)
    notify: dict[str, NotifyTarget] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.settle_max_s < self.settle_s:
            raise ValueError(
                f"settle_max: must be >= settle ({self.settle_s:g}s); got {self.settle_max_s:g}s"
            )
        paths: dict[Path, int] = {}
        for index, output in enumerate(self.outputs):
            if output.path in paths:
                raise ValueError(
                    f"outputs[{index}].path: {str(output.path)!r} is also outputs"
                    f"[{paths[output.path]}].path; each output needs its own file"
                )
            paths[output.path] = index
            for name in output.notify:
                if name not in self.notify:
                    allowed = ", ".join(sorted(self.notify)) or "(none defined)"
                    raise ValueError(
                        f"outputs[{index}].notify: {name!r} is not a target of the "
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
    """Validate already-parsed YAML data; relative output paths resolve against ``base_dir``.

    Raises ConfigError with one line per problem, each naming the field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("config: expected a mapping at the top level (aws, poll, outputs, …)")
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a sync.yaml file. Raises ConfigError for any problem, I/O included."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    try:
        return parse_config(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def _is_model(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (for listing allowed keys)."""
    current: Any = Config
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
            )
            if field is None:
                return None
            current = field.annotation
        elif isinstance(part, int):
            current = next(iter(getattr(current, "__args__", ())), None)
        else:
            args: tuple[Any, ...] = getattr(current, "__args__", ())
            current = args[-1] if len(args) == 2 else None
        if get_origin(current) in (Union, UnionType):  # X | None
            models = [a for a in get_args(current) if _is_model(a)]
            current = models[0] if models else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


# pydantic adds the member type to the location of a union's errors
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")
_UNION_HELP = {
    "keys": "expected a list of keys or a mapping {secret_key: output_key}",
    "owner": "expected a user name or a numeric uid",
    "group": "expected a group name or a numeric gid",
}
_BOUND_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        field = _format_loc(loc)
        if not loc:  # cross-field checks name their own fields
            lines.append(err["msg"].removeprefix("Value error, "))
            continue
        if len(loc) < len(err["loc"]) and str(loc[-1]) in _UNION_HELP:
            lines.append(f"{field}: {_UNION_HELP[str(loc[-1])]}")
            continue
        if err["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            allowed = (
                ", ".join(f.alias or name for name, f in model.model_fields.items())
                if model
                else "see the configuration reference"
            )
            lines.append(f"{field}: unknown field; allowed: {allowed}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error":
            msg = msg.replace("Input should be", "allowed:")
        elif err["type"].startswith(("greater_than", "less_than")):
            ctx = err.get("ctx", {})
            bounds = " and ".join(f"{_BOUND_WORDS.get(k, k)} {v}" for k, v in ctx.items())
            msg = f"out of range: allowed {bounds}; got {err.get('input')!r}"
        lines.append(f"{field}: {msg}")
    # one line per distinct problem; unions repeat the same location several times
    return "\n".join(dict.fromkeys(lines))
