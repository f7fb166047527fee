"""The simple sections of sync.yaml (``aws``, ``push``, ``poll``, ``metrics``) and the model base.

Pure: models of :mod:`secretsync.config.schema` (unknown keys are errors; instances
are frozen), no I/O.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from secretsync.config.errors import brief
from secretsync.config.fields import FILE_PATH, duration
from secretsync.config.schema import (
    Custom,
    Kind,
    MapOf,
    Model,
    Nested,
    NullIs,
    Number,
    OneOf,
    Opt,
    Seq,
    Str,
    model,
    spec,
)

_URL_RE = re.compile(r"^https?://[^\s/]+")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")


def _url(value: str | None, _ctx: object = None) -> str | None:
    if value is not None and not _URL_RE.match(value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _region(value: str | None, _ctx: object = None) -> str | None:
    if value is not None and not _REGION_RE.fullmatch(value):
        raise ValueError("expected a region name such as us-east-1")
    return value


OPT_STR: Kind = Opt(Str())
URL = Custom(_url, Str())
OPT_URL = Opt(URL)
OPT_REGION = Opt(Custom(_region, Str()))


@model
class AwsConfig(Model):
    """Where Secrets Manager is, how many requests may be in flight, and a replica region.

    ``failover_region``: a region holding replicas of every secret; a check the
    primary region cannot answer runs there (see :mod:`secretsync.source.failover`).
    It must differ from the primary region. ``call_timeout``: the deadline of
    each Secrets Manager call, its retries included; a call cut off counts as
    the region not answering.
    """

    region: str | None = spec(OPT_REGION, default=None)
    endpoint_url: str | None = spec(OPT_URL, default=None)
    concurrency: int = spec(Number(whole=True, ge=1, le=128), default=16)
    call_timeout_s: float = spec(duration(ge=1, le=60), default=10.0, key="call_timeout")
    failover_region: str | None = spec(OPT_REGION, default=None)
    failover_endpoint_url: str | None = spec(OPT_URL, default=None)

    def _check(self) -> None:
        if self.failover_region is not None and self.failover_region == self.region:
            raise ValueError(
                f"failover_region: {self.failover_region} is the primary region; a failover "
                "region must be another region that holds replicas of the secrets"
            )
        if self.failover_endpoint_url is not None and self.failover_region is None:
            raise ValueError("failover_endpoint_url: needs failover_region")


def _topic(value: str, _ctx: object) -> str:
    if not re.match(r"^arn:[a-z-]+:sns:[a-z0-9-]+:[0-9]{12}:[\w-]{1,256}$", value):
        raise ValueError("expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return value


@model
class PushConfig(Model):
    """Event-driven refresh: Secrets Manager events delivered through SQS (optional).

    ``sqs_queue_url``: a queue for this instance (every sidecar of a fleet
    needs its own, or each sees only part of the events). ``sns_topic_arn``:
    instead, a topic the events are published to; the daemon creates a queue
    for itself at start, subscribes it, and removes both at a clean stop.
    """

    sqs_queue_url: str | None = spec(OPT_URL, default=None)
    sns_topic_arn: str | None = spec(Opt(Custom(_topic, Str())), default=None)
    endpoint_url: str | None = spec(OPT_URL, default=None)
    wait_s: float = spec(duration(ge=1, le=20), default=20.0, key="wait")
    # topic mode: names and tags the queue of our own (default: ECS task family, else host name)
    identity: str | None = spec(
        Opt(
            Str(
                pattern=r"[A-Za-z0-9_.:/=+@-]{1,128}",
                help="1-128 characters from letters, digits and _ . : / = + @ -",
            )
        ),
        default=None,
    )
    # topic mode: how often the queue's lease is renewed; stale after three missed renewals
    heartbeat_s: float = spec(duration(ge=1, le=3600), default=300.0, key="heartbeat")

    def _check(self) -> None:
        if (self.sqs_queue_url is None) == (self.sns_topic_arn is None):
            raise ValueError("set exactly one of: sqs_queue_url, sns_topic_arn")


@model
class PollConfig(Model):
    interval_s: float = spec(duration(ge=0.1, le=86400), default=30.0, key="interval")
    jitter: float = spec(Number(ge=0.0, le=0.5), default=0.1)


ENDPOINTS = ("/metrics", "/status", "/healthz", "/readyz", "/fresh")
DEFAULT_OPEN_PATHS = ("/healthz", "/readyz", "/fresh")
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_TLS_VERSIONS = {"TLS12": 12, "TLS13": 13}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def _auth_type(value: str, _ctx: object) -> str:
    if value in ("RequestClientCert", "RequireAnyClientCert"):
        raise ValueError(
            f"{value} accepts a client certificate without verifying it; use "
            "RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
        )
    if value not in CLIENT_AUTH_TYPES:
        raise ValueError(f"expected one of {', '.join(CLIENT_AUTH_TYPES)}; got {brief(value)}")
    return value


TLS_VERSION = OneOf("TLS12", "TLS13")


@model
class TlsServerConfig(Model):
    """``metrics.web_config.tls_server_config``: the exporter-toolkit keys secretsync supports.

    The files are read at start and again whenever they change (checked at
    most once a second, on a new connection). ``client_auth_type``:
    ``NoClientCert``, ``VerifyClientCertIfGiven`` or ``RequireAndVerifyClientCert``
    (both need ``client_ca_file``); Go's ``RequestClientCert`` and
    ``RequireAnyClientCert`` accept certificates nobody verified and are refused.
    """

    cert_file: Path = spec(FILE_PATH)
    key_file: Path = spec(FILE_PATH)
    client_auth_type: str = spec(Custom(_auth_type, Str()), default="NoClientCert")
    client_ca_file: Path | None = spec(Opt(FILE_PATH), default=None)
    client_allowed_sans: tuple[str, ...] | None = spec(Opt(Seq(Str(), as_tuple=True)), default=None)
    min_version: Literal["TLS12", "TLS13"] = spec(TLS_VERSION, default="TLS12")
    max_version: Literal["TLS12", "TLS13"] = spec(TLS_VERSION, default="TLS13")

    def _check(self) -> None:
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


def _bcrypt_hash(value: object, _ctx: object) -> str:
    # never echo the value: a plain password put here by mistake must not reach a log
    if isinstance(value, str) and _BCRYPT.fullmatch(value):
        return value
    raise ValueError(
        "expected a bcrypt hash such as $2y$10$… (htpasswd -nBC 10 \"\" | tr -d ':\\n'); "
        "the value is not shown"
    )


def _users(value: dict[str, str], _ctx: object) -> dict[str, str]:
    for user in value:
        if not user or ":" in user or not user.isprintable():
            raise ValueError(
                f"user {brief(user)}: a user name is 1 or more printable characters without ':'"
            )
    return value


@model
class WebConfig(Model):
    """``metrics.web_config``: the Prometheus exporter-toolkit web configuration, inline.

    ``tls_server_config`` serves HTTPS; ``basic_auth_users`` maps user names
    to bcrypt hashes (any user may read every endpoint that is not open).
    """

    tls_server_config: TlsServerConfig | None = spec(Opt(Nested(TlsServerConfig)), default=None)
    basic_auth_users: dict[str, str] = spec(
        Custom(_users, MapOf(Custom(_bcrypt_hash))), default_factory=dict
    )


def _open_paths(value: tuple[str, ...], _ctx: object) -> tuple[str, ...]:
    for path in value:
        if path not in ENDPOINTS:
            raise ValueError(f"expected paths among {', '.join(ENDPOINTS)}; got {brief(path)}")
    return value


def _listen(value: str | None, _ctx: object) -> str | None:
    if value is None:
        return None
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError('expected "host:port" with a port 0-65535, or null to disable')
    return value


@model
class MetricsConfig(Model):
    """The HTTP endpoints. ``listen`` defaults to loopback (the container manifests set
    ``0.0.0.0:9464``). ``readiness``: ``synced`` (``/readyz`` is 200 once every output
    was written or found current since start) or ``fresh`` (only while none is older
    than ``stale_after``: an outage takes the pod out of service). ``web_config``:
    TLS and basic auth; ``open_paths`` need neither credentials nor a client
    certificate (the kubelet's probes have none)."""

    listen: str | None = spec(Opt(Custom(_listen, Str())), default="127.0.0.1:9464")
    stale_after_s: float | None = spec(Opt(duration(gt=0)), default=None, key="stale_after")
    readiness: Literal["synced", "fresh"] = spec(OneOf("synced", "fresh"), default="synced")
    web_config: WebConfig = spec(NullIs(dict, Nested(WebConfig)), default_factory=WebConfig)
    open_paths: tuple[str, ...] = spec(
        Custom(_open_paths, Seq(Str(), as_tuple=True)), default=DEFAULT_OPEN_PATHS
    )

    @property
    def secured(self) -> bool:
        """TLS or basic auth is configured."""
        web = self.web_config
        return web.tls_server_config is not None or bool(web.basic_auth_users)

    @property
    def host(self) -> str:
        assert self.listen is not None
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        assert self.listen is not None
        return int(self.listen.rpartition(":")[2])
