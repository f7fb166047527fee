"""The simple sections of sync.yaml (``aws``, ``push``, ``poll``, ``metrics``) and the model base.

Pure: pydantic models, no I/O. :class:`FrozenModel` is the base of every
sync.yaml model (unknown keys are errors; instances are frozen).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from secretsync.config_types import Duration


class FrozenModel(BaseModel):
    """The base of every sync.yaml model: unknown keys are errors, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AwsConfig(FrozenModel):
    """Where Secrets Manager is, how many requests may be in flight, and a replica region.

    ``failover_region``: a region holding replicas of every secret; a check the
    primary region cannot answer runs there (see :mod:`secretsync.failover`).
    It must differ from the primary region.
    """

    region: str | None = None
    endpoint_url: str | None = None
    concurrency: int = Field(default=16, ge=1, le=128)
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


class MetricsConfig(FrozenModel):
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
