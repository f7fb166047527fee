"""Secrets Manager adapter: the only module that talks to AWS.

One aioboto3 client lives as long as the daemon. ``current_version`` costs one
DescribeSecret; ``fetch`` costs one GetSecretValue pinned to the exact
VersionId that was seen as AWSCURRENT, so a rotation between the two calls
cannot mix versions. Errors come out as :class:`SourceError`, classified
transient (retry with backoff) or permanent (retry at the normal interval).

Every call, the client's own retries and the wait for a connection slot
included, has a total deadline (``call_timeout_s``): the client's connect and
read timeouts bound each wait for a byte, so an endpoint that keeps sending a
byte now and then would hold a call (and the pass waiting for it) forever. A
call cut off is a transient ``CallTimeout`` that counts as "the region cannot
answer".

The client is built lean (:func:`lean_session`): straight from aiobotocore (no
boto3/aioboto3 import), and botocore's endpoint table (``endpoints.json``: every
service in every partition, ≈ 6.5 MiB once parsed into OrderedDicts and kept in
the loader's cache for the life of the process) is cut to the services this
client and the credential chain can need before the client is made, and the
loader's cache of JSON models is emptied once it is made. ``endpoint_url``,
``AWS_CA_BUNDLE``, region resolution and the credential chain are botocore's own,
untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    NoRegionError,
)
from botocore.regions import EndpointResolver

from secretsync.config.model import AwsConfig
from secretsync.metrics import Metrics
from secretsync.source.classify import classify
from secretsync.source.failover import FailoverSource
from secretsync.source.protocol import (
    THROTTLE_CODES,
    Read,
    SecretSource,
    SecretValue,
    SourceError,
)

RequestObserver = Callable[[str, str], None]
"""Called once per real HTTP attempt (retries included) with (operation, outcome)."""

DEFAULT_CALL_TIMEOUT_S = 10.0
_OPERATIONS = {"describe_secret": "DescribeSecret", "get_secret_value": "GetSecretValue"}
# the services whose endpoints a Secrets Manager client and the credential chain use:
# the client itself; STS for web identity (IRSA) and assumed roles; SSO for SSO profiles
ENDPOINT_SERVICES = frozenset({"secretsmanager", "sts", "sso", "sso-oidc"})


def _lean_endpoints() -> dict[str, Any] | None:
    """botocore's endpoint table cut to ENDPOINT_SERVICES, or None to leave botocore's own
    (a custom data path, or a table of a shape this does not know)."""
    if os.environ.get("AWS_DATA_PATH"):
        return None  # the user's models may override the table: let botocore find it
    path = os.path.join(botocore.BOTOCORE_ROOT, "data", "endpoints.json")
    try:
        with open(path, "rb") as stream:
            table = json.loads(stream.read())  # plain dicts: about half the size
        partitions = [
            {
                **part,
                "services": {k: v for k, v in part["services"].items() if k in ENDPOINT_SERVICES},
            }
            for part in table["partitions"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {**table, "partitions": partitions}


def lean_session() -> AioSession:
    """An aiobotocore session whose endpoint table holds only ENDPOINT_SERVICES.

    Falls back to the stock session when botocore's internals are not as expected.
    """
    session = AioSession()
    table = _lean_endpoints()
    components = getattr(session, "_internal_components", None)
    if table is not None and hasattr(components, "register_component"):
        resolver = EndpointResolver(table, uses_builtin_data=True)
        components.register_component("endpoint_resolver", resolver)  # type: ignore[union-attr]
    return session


def _drop_model_cache(session: AioSession) -> None:
    """Empty the loader's cache of parsed JSON models: the client holds what it uses, and
    a new client (a credential refresh's STS) parses its own model again."""
    cache = getattr(session.get_component("data_loader"), "_cache", None)
    if isinstance(cache, dict):
        cache.clear()


class SecretsManagerSource:
    """Async Secrets Manager client. Construct, then ``async with`` (or ``start``/``close``).

    ``region`` and ``endpoint_url`` override the default chain; credentials always
    come from the default chain (env, web identity/IRSA, ECS task role, instance
    profile). At most ``max_concurrency`` requests are in flight at once; each
    call ends within ``call_timeout_s``, answered or not, the wait for one of
    those slots included.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_concurrency: int = 8,
        max_attempts: int = 3,  # total HTTP attempts per call, the first included
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        on_request: RequestObserver | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.call_timeout_s = call_timeout_s
        self.on_request = on_request
        self.describe_calls = 0
        self.fetch_calls = 0
        self._max_concurrency = max_concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    def __repr__(self) -> str:
        return (
            f"SecretsManagerSource(region={self.region!r}, endpoint_url={self.endpoint_url!r}, "
            f"describe_calls={self.describe_calls}, fetch_calls={self.fetch_calls})"
        )

    async def start(self) -> None:
        """Create the client. Raises SourceError("NoRegion") when no region can be found."""
        if self._client is not None:
            return
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            max_pool_connections=self._max_concurrency,
            user_agent_extra="secretsync",
        )
        stack = contextlib.AsyncExitStack()
        try:
            session = lean_session()
            self._client = await stack.enter_async_context(
                session.create_client(
                    "secretsmanager",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
            )
            _drop_model_cache(session)
        except NoRegionError:
            await stack.aclose()
            raise SourceError(
                "", "NoRegion", "set aws.region, AWS_REGION or AWS_DEFAULT_REGION", transient=False
            ) from None
        self._stack = stack
        self._semaphore = asyncio.Semaphore(self._max_concurrency)
        if self.on_request is not None:
            self._client.meta.events.register("needs-retry.secrets-manager", self._observe)

    async def close(self) -> None:
        """Close the client and its connection pool; safe to call twice."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> SecretsManagerSource:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _observe(self, **kwargs: Any) -> None:
        # Fires once per HTTP attempt, before botocore decides whether to retry.
        assert self.on_request is not None
        operation = getattr(kwargs.get("operation"), "name", "unknown")
        if kwargs.get("caught_exception") is not None:
            outcome = "error"
        else:
            http, parsed = kwargs.get("response") or (None, None)
            error: dict[str, Any] = (parsed or {}).get("Error") or {}
            code = error.get("Code")
            status = getattr(http, "status_code", 200)
            if code in THROTTLE_CODES or status == 429:
                outcome = "throttled"
            elif status >= 400 or code:
                outcome = "error"
            else:
                outcome = "ok"
        self.on_request(operation, outcome)

    async def _call(self, secret_id: str, operation: str, **params: str) -> dict[str, Any]:
        if self._client is None or self._semaphore is None:
            raise RuntimeError("SecretsManagerSource used before start()")
        # the deadline covers the wait for a free slot too: when the region stalls, the
        # slots are held by stalled calls, and a call queued behind them must fail over
        # after one deadline, not after every call ahead of it has used up its own
        deadline = asyncio.timeout(self.call_timeout_s)
        sent = False
        try:
            async with deadline, self._semaphore:
                sent = True
                result: dict[str, Any] = await getattr(self._client, operation)(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if deadline.expired():
                raise self._cut_off(secret_id, operation, sent=sent) from None
            raise classify(secret_id, exc) from None
        return result

    def _cut_off(self, secret_id: str, operation: str, *, sent: bool) -> SourceError:
        if sent and self.on_request is not None:
            # the attempt in flight never reached botocore's retry handler: count it here
            self.on_request(_OPERATIONS.get(operation, operation), "error")
        what = "no complete answer" if sent else "no free connection (calls ahead stalled)"
        return SourceError(
            secret_id,
            "CallTimeout",
            f"{what} within {self.call_timeout_s:g}s",
            transient=True,
            unavailable=True,
        )

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        """DescribeSecret, then GetSecretValue pinned to the version it reports when that is
        not ``held_version``. Raises SourceError."""
        version_id = await self.current_version(secret_id)
        if version_id == held_version:
            return Read(version_id, None, self.region)
        value, created = await self._get(secret_id, version_id)
        return Read(version_id, value, self.region, created)

    async def current_version(self, secret_id: str) -> str:
        """The VersionId staged AWSCURRENT (one DescribeSecret). Raises SourceError."""
        self.describe_calls += 1
        resp = await self._call(secret_id, "describe_secret", SecretId=secret_id)
        if resp.get("DeletedDate") is not None:
            raise SourceError(
                secret_id, "SecretDeleted", "secret is scheduled for deletion", transient=False
            )
        for version_id, stages in (resp.get("VersionIdsToStages") or {}).items():
            if "AWSCURRENT" in stages:
                return str(version_id)
        raise SourceError(
            secret_id, "NoCurrentVersion", "no version is staged AWSCURRENT", transient=False
        )

    async def fetch(self, secret_id: str, version_id: str) -> SecretValue:
        """GetSecretValue pinned to ``version_id``. Raises SourceError."""
        return (await self._get(secret_id, version_id))[0]

    async def _get(self, secret_id: str, version_id: str) -> tuple[SecretValue, float | None]:
        """GetSecretValue pinned to ``version_id``: the value, and the version's
        ``CreatedDate`` as epoch seconds (None when the answer has none)."""
        self.fetch_calls += 1
        resp = await self._call(
            secret_id, "get_secret_value", SecretId=secret_id, VersionId=version_id
        )
        binary = resp.get("SecretBinary")
        value = SecretValue(
            secret_id=secret_id,
            version_id=str(resp.get("VersionId") or version_id),
            text=resp.get("SecretString"),
            binary=bytes(binary) if binary is not None else None,
        )
        created = resp.get("CreatedDate")  # botocore parses the timestamp into a datetime
        return value, created.timestamp() if isinstance(created, datetime.datetime) else None


async def open_source(
    stack: contextlib.AsyncExitStack,
    aws: AwsConfig,
    metrics: Metrics,
    *,
    region: str | None,
) -> SecretSource:
    """Start the Secrets Manager client(s) of ``aws`` on ``stack``: the primary region's,
    and with ``failover_region`` a second one behind a :class:`FailoverSource`.

    ``region`` is the primary region as resolved (config, environment or AWS
    config file). Raises SourceError ("NoRegion", or a failover region equal to
    the primary one).
    """
    primary = SecretsManagerSource(
        region=region,
        endpoint_url=aws.endpoint_url,
        max_concurrency=aws.concurrency,
        call_timeout_s=aws.call_timeout_s,
        on_request=metrics.request_observer(region or "default"),
    )
    await stack.enter_async_context(primary)
    if aws.failover_region is None:
        return primary
    if aws.failover_region == region:
        raise SourceError(
            "",
            "FailoverRegion",
            f"aws.failover_region {aws.failover_region} is the primary region",
            transient=False,
        )
    failover = SecretsManagerSource(
        region=aws.failover_region,
        endpoint_url=aws.failover_endpoint_url,
        max_concurrency=aws.concurrency,
        call_timeout_s=aws.call_timeout_s,
        on_request=metrics.request_observer(aws.failover_region),
    )
    await stack.enter_async_context(failover)

    def switched(secret_id: str, on_failover: bool) -> None:
        metrics.failover_active.labels(secret=secret_id).set(1 if on_failover else 0)

    return FailoverSource(
        primary,
        failover,
        primary_region=region,
        failover_region=aws.failover_region,
        on_switch=switched,
    )
