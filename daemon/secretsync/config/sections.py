"""The simple sections of sync.yaml (``aws``, ``push``, ``poll``, ``metrics``) and the model base.

Pure: pydantic models, no I/O. :class:`FrozenModel` is the base of every
sync.yaml model (unknown keys are errors; instances are frozen).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from secretsync.config.errors import brief
from secretsync.config.fields import Duration, file_path


class FrozenModel(BaseModel):
    """The base of every sync.yaml model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AwsConfig(FrozenModel):
    """Where Secrets Manager is, how many requests may be in flight, and a replica region.

    ``failover_region``: a region holding replicas of every secret; a check the
    primary region cannot answer runs there (see :mod:`secretsync.source.failover`).
    It must differ from the primary region. ``call_timeout``: the deadline of
    each Secrets Manager call, its retries included; a call cut off counts as
    the region not answering.
    """

    region: str | None = None
    endpoint_url: str | None = None
    concurrency: int = Field(default=16, ge=1, le=128)
    call_timeout_s: Duration = Field(default=10.0, alias="call_timeout", ge=1, le=60)
    failover_region: str | None = None
    failover_endpoint_url: str | None = None

    @field_validator("endpoint_url", "failover_endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("region", "failover_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", value):
            raise ValueError("expected a region name such as us-east-1")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> AwsConfig:
        if self.failover_region is not None and self.failover_region == self.region:
            raise ValueError(
                f"failover_region: {self.failover_region} is the primary region; a failover "
                "region must be another region that holds replicas of the secrets"
            )
        if self.failover_endpoint_url is not None and self.failover_region is None:
            raise ValueError("failover_endpoint_url: needs failover_region")
        return self


class PushConfig(FrozenModel):
    """Event-driven refresh: Secrets Manager events delivered through SQS (optional).

    ``sqs_queue_url``: a queue for this instance (every sidecar of a fleet
    needs its own, or each sees only part of the events). ``sns_topic_arn``:
    instead, a topic the events are published to; the daemon creates a queue
    for itself at start, subscribes it, and removes both at a clean stop.
    """

    sqs_queue_url: str | None = None
    sns_topic_arn: str | None = None
    endpoint_url: str | None = None
    wait_s: Duration = Field(default=20.0, alias="wait", ge=1, le=20)
    # topic mode: names and tags the queue of our own (default: ECS task family, else host name)
    identity: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/=+@-]{1,128}$")
    # topic mode: how often the queue's lease is renewed; stale after three missed renewals
    heartbeat_s: Duration = Field(default=300.0, alias="heartbeat", ge=1, le=3600)

    @field_validator("sqs_queue_url", "endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("sns_topic_arn")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^arn:[a-z-]+:sns:[a-z0-9-]+:[0-9]{12}:[\w-]{1,256}$", value
        ):
            raise ValueError("expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PushConfig:
        if (self.sqs_queue_url is None) == (self.sns_topic_arn is None):
            raise ValueError("set exactly one of: sqs_queue_url, sns_topic_arn")
        return self


class PollConfig(FrozenModel):
    interval_s: Duration = Field(default=30.0, alias="interval", ge=0.1, le=86400)
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)


ENDPOINTS = ("/metrics", "/status", "/healthz", "/readyz", "/fresh")
DEFAULT_OPEN_PATHS = ("/healthz", "/readyz", "/fresh")
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_TLS_VERSIONS = {"TLS12": 12, "TLS13": 13}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
FilePath = Annotated[Path, BeforeValidator(file_path)]


class TlsServerConfig(FrozenModel):
    """``metrics.web_config.tls_server_config``: the exporter-toolkit keys secretsync supports.

    The files are read at start and again whenever they change (checked at
    most once a second, on a new connection). ``client_auth_type``:
    ``NoClientCert``, ``VerifyClientCertIfGiven`` or ``RequireAndVerifyClientCert``
    (both need ``client_ca_file``); Go's ``RequestClientCert`` and
    ``RequireAnyClientCert`` accept certificates nobody verified and are refused.
    """

    cert_file: FilePath
    key_file: FilePath
    client_auth_type: str = "NoClientCert"
    client_ca_file: FilePath | None = None
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS12", "TLS13"] = "TLS13"

    @field_validator("client_auth_type")
    @classmethod
    def _auth_type(cls, value: str) -> str:
        if value in ("RequestClientCert", "RequireAnyClientCert"):
            raise ValueError(
                f"{value} accepts a client certificate without verifying it; use "
                "RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
            )
        if value not in CLIENT_AUTH_TYPES:
            raise ValueError(f"expected one of {', '.join(CLIENT_AUTH_TYPES)}; got {brief(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(
                f"client_ca_file: required with client_auth_type {self.client_auth_type}"
            )
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file: has no effect with client_auth_type NoClientCert; set "
                "client_auth_type: RequireAndVerifyClientCert to verify client certificates"
            )
        if self.client_allowed_sans is not None and (
            self.client_auth_type != "RequireAndVerifyClientCert" or not self.client_allowed_sans
        ):
            raise ValueError(
                "client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert and at "
                "least one name"
            )
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version: {self.min_version} is above max_version")
        return self


def _bcrypt_hash(value: object) -> str:
    # never echo the value: a plain password put here by mistake must not reach a log
    if isinstance(value, str) and _BCRYPT.fullmatch(value):
        return value
    raise ValueError(
        "expected a bcrypt hash such as $2y$10$… (htpasswd -nBC 10 \"\" | tr -d ':\\n'); "
        "the value is not shown"
    )


BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]


class WebConfig(FrozenModel):
    """``metrics.web_config``: the Prometheus exporter-toolkit web configuration, inline.

    ``tls_server_config`` serves HTTPS; ``basic_auth_users`` maps user names
    to bcrypt hashes (any user may read every endpoint that is not open).
    """

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        for user in value:
            if not user or ":" in user or not user.isprintable():
                raise ValueError(
                    f"user {brief(user)}: a user name is 1 or more printable characters without ':'"
                )
        return value


class MetricsConfig(FrozenModel):
    """The HTTP endpoints. ``listen`` defaults to loopback (the container manifests set
    ``0.0.0.0:9464``). ``readiness``: ``synced`` (``/readyz`` is 200 once every output
    was written or found current since start) or ``fresh`` (only while none is older
    than ``stale_after``: an outage takes the pod out of service). ``web_config``:
    TLS and basic auth; ``open_paths`` need neither credentials nor a client
    certificate (the kubelet's probes have none)."""

    listen: str | None = "127.0.0.1:9464"
    stale_after_s: Duration | None = Field(default=None, alias="stale_after", gt=0)
    readiness: Literal["synced", "fresh"] = "synced"
    web_config: WebConfig = Field(default_factory=WebConfig)
    open_paths: tuple[str, ...] = DEFAULT_OPEN_PATHS

    @field_validator("web_config", mode="before")
    @classmethod
    def _null_web_config(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("open_paths")
    @classmethod
    def _open_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if path not in ENDPOINTS:
                raise ValueError(f"expected paths among {', '.join(ENDPOINTS)}; got {brief(path)}")
        return value

    @property
    def secured(self) -> bool:
        """TLS or basic auth is configured."""
        web = self.web_config
        return web.tls_server_config is not None or bool(web.basic_auth_users)

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
