"""SQS (and SNS) adapter for push refresh: the only module besides ``source`` that talks to AWS.

With ``sqs_queue_url`` it reads that queue. With ``sns_topic_arn`` it makes a
queue of its own at start and subscribes it to the topic (raw delivery, a
policy that lets only that topic send to it, messages kept 15 minutes), and at
a clean stop unsubscribes and deletes it.

Its own queues, and the rule for removing the stale ones (docs/push.md):

- **Name and tags.** ``secretsync-<identity>-<8 hex>``. The identity is
  ``push.identity``, else the ECS task family (task metadata endpoint), else
  the host name (on EKS: the pod name). Tags: ``secretsync:identity``,
  ``secretsync:topic``, ``secretsync:created``, ``secretsync:subscription``
  and ``secretsync:expires``, a lease the daemon renews every
  ``push.heartbeat`` to three heartbeats ahead.
- **Stale.** A queue is stale when its ``secretsync:identity`` and
  ``secretsync:topic`` are this daemon's and its lease has expired: a live
  daemon renews its lease, so a daemon never removes the queue of another
  live one, even one sharing its identity (replicas of one task family).
- **Sweep.** At start and every three heartbeats the daemon lists the queues
  named with its identity, removes the stale ones (their subscription first),
  and at start also unsubscribes subscriptions of the topic whose queue (named
  with its identity) no longer exists.
- **Gone under it.** A queue of its own that disappears (deleted by hand, by a
  clean-up job) is replaced at the next receive, and the subscription to the
  dead queue is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig

from secretsync import logs
from secretsync.push.listener import Message, PushError
from secretsync.source.classify import classify
from secretsync.source.protocol import THROTTLE_CODES

QUEUE_PREFIX = "secretsync-"
MAX_MESSAGES = 10  # SQS's own maximum per receive
VISIBILITY_S = 60  # a message not deleted in this time comes back (a crash mid-batch)
RETENTION_S = 900  # an event older than this is worth nothing: polling has caught up since
LEASE_HEARTBEATS = 3  # a lease runs this many heartbeats ahead
SWEEP_MAX_QUEUES = 20  # stale candidates looked at per sweep (a random sample if more)
SUBSCRIPTION_PAGES = 10  # pages of ListSubscriptionsByTopic read at start (100 each)
IDENTITY_NAME_CHARS = 40  # of the identity in a queue name (SQS allows 80 in all)
ECS_METADATA_TIMEOUT_S = 2.0

TAG_TOPIC = "secretsync:topic"
TAG_IDENTITY = "secretsync:identity"
TAG_CREATED = "secretsync:created"
TAG_EXPIRES = "secretsync:expires"
TAG_SUBSCRIPTION = "secretsync:subscription"
TAG_VALUE_CHARS = 256

ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "AuthorizationErrorException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSecurity",
        "NoCredentials",
        "KMSAccessDenied",
        "KMSAccessDeniedException",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
        "NotFound",
        "NotFoundException",
    }
)
QUEUE_THROTTLE_CODES = THROTTLE_CODES | {"RequestThrottled", "ThrottledException", "OverLimit"}

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/=+@-]+")


def push_error(step: str, exc: BaseException) -> PushError:
    """A PushError naming ``step`` and the AWS code, with its ``reason`` (never the message)."""
    error = classify("", exc)
    code = error.code
    if code in ACCESS_CODES:
        reason = "access_denied"
    elif code in NOT_FOUND_CODES:
        reason = "not_found"
    elif code in QUEUE_THROTTLE_CODES:
        reason = "throttled"
    elif error.unavailable or code == "ConnectionError":
        reason = "unavailable"
    else:
        reason = "error"
    return PushError(f"cannot {step}: {code}", reason)


def name_part(identity: str) -> str:
    """The identity as it appears in a queue name: ``[A-Za-z0-9_-]``, at most 40 characters."""
    part = _NAME_UNSAFE.sub("-", identity).strip("-")[:IDENTITY_NAME_CHARS].strip("-")
    return part or "unknown"


def tag_value(text: str) -> str:
    """``text`` as an SQS tag value: the characters SQS allows, at most 256."""
    return _TAG_UNSAFE.sub("-", text)[:TAG_VALUE_CHARS]


def identity_prefix(identity: str) -> str:
    """The prefix of every queue name made for ``identity`` (``secretsync-<identity>-``)."""
    return f"{QUEUE_PREFIX}{name_part(identity)}-"


def own_queue_name(identity: str) -> str:
    """``secretsync-<identity>-<8 hex>``: at most 60 of SQS's 80 characters of ``[A-Za-z0-9_-]``."""
    return identity_prefix(identity) + secrets.token_hex(4)


def queue_name_of(url_or_arn: str) -> str:
    """The queue name at the end of a queue URL or ARN."""
    return re.split(r"[/:]", url_or_arn.rstrip("/"))[-1]


async def ecs_task_family(metadata_uri: str) -> str | None:
    """The task family from the ECS task metadata endpoint (v4), or None when it does not say."""
    timeout = aiohttp.ClientTimeout(total=ECS_METADATA_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(metadata_uri.rstrip("/") + "/task") as response,
        ):
            if response.status != 200:
                return None
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return None
    family = data.get("Family") if isinstance(data, dict) else None
    return family if isinstance(family, str) and family.strip() else None


async def derive_identity(env: Mapping[str, str] | None = None) -> str:
    """This instance's identity when ``push.identity`` is not set.

    On ECS (``ECS_CONTAINER_METADATA_URI_V4`` set) the task family; otherwise,
    or when the endpoint does not answer within 2 s, the host name (on EKS the
    pod name, on EC2 the instance's host name).
    """
    env = os.environ if env is None else env
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4")
    if uri:
        family = await ecs_task_family(uri)
        if family:
            return family
    return socket.gethostname() or "unknown"


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """A policy letting ``topic_arn`` (and nothing else) send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "SecretsyncTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


def is_stale(tags: Mapping[str, str], *, identity: str, topic_arn: str, now: float) -> bool:
    """A queue of ``identity`` for ``topic_arn`` whose lease expired before ``now`` (unix time).

    A queue without a readable lease is never stale: it is not ours to judge.
    """
    if tags.get(TAG_IDENTITY) != tag_value(identity):
        return False
    if tags.get(TAG_TOPIC) != topic_arn[-TAG_VALUE_CHARS:]:
        return False
    try:
        expires = float(tags[TAG_EXPIRES])
    except (KeyError, ValueError):
        return False
    return expires < now


class PushQueue:
    """Receives push messages. Construct, then ``async with`` (or ``start``/``close``).

    ``identity`` (topic mode) names and tags the queue of our own; None:
    :func:`derive_identity` at start. ``heartbeat_s``: how often the queue's
    lease is renewed (see the module's docstring).
    """

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        queue_url: str | None = None,
        topic_arn: str | None = None,
        wait_s: float = 20.0,
        identity: str | None = None,
        heartbeat_s: float = 300.0,
        clock: Any = time.monotonic,
        wall_clock: Any = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.queue_url = queue_url
        self.topic_arn = topic_arn
        self.wait_s = wait_s
        self.identity = identity
        self.heartbeat_s = heartbeat_s
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 (sampling, not crypto)
        self.own_queue = False
        self.lost = False  # our queue vanished: a new one is made before the next receive
        self.subscription_arn: str | None = None
        self.removed: list[str] = []  # names of stale queues this instance removed
        self._dangling: set[str] = set()  # subscriptions to a dead queue of ours
        self._swept_once = False
        self._next_heartbeat = 0.0
        self._next_sweep = 0.0
        self._stack: contextlib.AsyncExitStack | None = None
        self._sqs: Any = None
        self._sns: Any = None
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"PushQueue(queue={self.queue_name!r}, own_queue={self.own_queue})"

    @property
    def lease_s(self) -> float:
        return self.heartbeat_s * LEASE_HEARTBEATS

    @property
    def queue_name(self) -> str | None:
        return queue_name_of(self.queue_url) if self.queue_url else None

    async def start(self) -> None:
        """Open the clients; with a topic, make and subscribe a queue of our own.

        Raises PushError (the message names the step and the AWS error code).
        """
        stack = contextlib.AsyncExitStack()
        # the long poll must outlast the read timeout, or every idle receive times out
        config = AioConfig(
            connect_timeout=5,
            read_timeout=self.wait_s + 10,
            retries={"mode": "standard", "total_max_attempts": 3},
            user_agent_extra="secretsync",
        )
        session = aioboto3.Session()
        kwargs = {"region_name": self.region, "endpoint_url": self.endpoint_url, "config": config}
        try:
            self._sqs = await stack.enter_async_context(session.client("sqs", **kwargs))
            if self.topic_arn is not None:
                self._sns = await stack.enter_async_context(session.client("sns", **kwargs))
                if self.identity is None:
                    self.identity = await derive_identity()
                await self._make_own_queue()
        except BaseException as exc:
            await self._remove_own_queue()
            await stack.aclose()
            if isinstance(exc, PushError):
                raise
            if isinstance(exc, Exception):
                raise push_error("set up push", exc) from None
            raise
        self._stack = stack

    async def _make_own_queue(self) -> None:
        """Create, allow, subscribe and tag a queue of our own. Raises PushError."""
        assert self.topic_arn is not None and self.identity is not None
        topic_arn, identity = self.topic_arn, self.identity
        name = own_queue_name(identity)
        now = int(self._wall())
        try:
            created = await self._sqs.create_queue(
                QueueName=name,
                Attributes={"MessageRetentionPeriod": str(RETENTION_S)},
                tags={
                    TAG_IDENTITY: tag_value(identity),
                    TAG_TOPIC: topic_arn[-TAG_VALUE_CHARS:],
                    TAG_CREATED: str(now),
                    TAG_EXPIRES: str(int(now + self.lease_s)),
                },
            )
        except Exception as exc:
            raise push_error("create the queue", exc) from None
        self.queue_url, self.own_queue, self.lost = created["QueueUrl"], True, False
        try:
            attrs = await self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )
            queue_arn = attrs["Attributes"]["QueueArn"]
            await self._sqs.set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"Policy": queue_policy(queue_arn, topic_arn)}
            )
        except Exception as exc:
            raise push_error("set the queue's policy", exc) from None
        try:
            subscribed = await self._sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={"RawMessageDelivery": "true"},
                ReturnSubscriptionArn=True,
            )
        except Exception as exc:
            raise push_error("subscribe to the topic", exc) from None
        self.subscription_arn = subscribed.get("SubscriptionArn")
        if self.subscription_arn and len(self.subscription_arn) <= TAG_VALUE_CHARS:
            # so whoever finds the queue stale can remove its subscription too
            try:
                await self._sqs.tag_queue(
                    QueueUrl=self.queue_url, Tags={TAG_SUBSCRIPTION: self.subscription_arn}
                )
            except Exception as exc:
                raise push_error("tag the queue", exc) from None
        self._next_heartbeat = self._clock() + self.heartbeat_s

    async def _replace_own_queue(self) -> None:
        """Our queue is gone: drop its subscription, make a new queue. Raises PushError."""
        old, self.subscription_arn = self.subscription_arn, None
        gone = self.queue_name
        self.own_queue = False
        if old:
            try:
                await self._sns.unsubscribe(SubscriptionArn=old)
            except Exception:
                self._dangling.add(old)  # retried at the next sweep
        try:
            await self._make_own_queue()
        except PushError:
            # never read a queue that is not subscribed: remove what was made, try again later
            await self._remove_own_queue()
            self.lost = True
            raise
        self._log.warning("push_queue_replaced", gone=gone, queue=self.queue_name)

    async def receive(self) -> list[Message]:
        """Long-poll for up to ten messages (``wait_s``). Raises PushError.

        In topic mode a queue of ours found gone is replaced first.
        """
        if self.lost:
            await self._replace_own_queue()
        try:
            answer = await self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=MAX_MESSAGES,
                WaitTimeSeconds=int(self.wait_s),
                VisibilityTimeout=VISIBILITY_S,
            )
        except Exception as exc:
            raise self._queue_error("receive", exc) from None
        return [
            Message(str(m.get("Body") or ""), str(m["ReceiptHandle"]))
            for m in answer.get("Messages", [])
        ]

    def _queue_error(self, step: str, exc: BaseException) -> PushError:
        error = push_error(step, exc)
        if error.reason == "not_found" and self.topic_arn is not None:
            self.lost = True
        return error

    async def delete(self, messages: list[Message]) -> None:
        """Delete handled messages (one batch call). Raises PushError."""
        if not messages:
            return
        entries = [{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(messages)]
        try:
            await self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as exc:
            raise self._queue_error("delete messages", exc) from None

    async def tend(self) -> None:
        """Topic mode, when due: sweep stale queues of our identity, renew our lease.

        Each is tried again at its next due time when it fails. Raises
        PushError (the first failure).
        """
        if self.topic_arn is None or self.identity is None:
            return
        now = self._clock()
        first: PushError | None = None
        if now >= self._next_sweep:
            self._next_sweep = now + self.lease_s
            try:
                await self._sweep()
            except PushError as exc:
                first = exc
        if self.own_queue and not self.lost and now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            expires = str(int(self._wall() + self.lease_s))
            try:
                await self._sqs.tag_queue(QueueUrl=self.queue_url, Tags={TAG_EXPIRES: expires})
            except Exception as exc:
                first = first or self._queue_error("renew the queue's lease", exc)
        if first is not None:
            raise first

    async def _sweep(self) -> None:
        """Remove the stale queues (and subscriptions) of our identity. Raises PushError."""
        assert self.topic_arn is not None and self.identity is not None
        topic_arn, identity = self.topic_arn, self.identity
        prefix = identity_prefix(identity)
        try:
            listed = await self._sqs.list_queues(QueueNamePrefix=prefix, MaxResults=1000)
        except Exception as exc:
            raise push_error("list queues", exc) from None
        urls = [u for u in listed.get("QueueUrls", []) if u != self.queue_url]
        names = {queue_name_of(u) for u in listed.get("QueueUrls", [])}
        self._rng.shuffle(urls)
        first: PushError | None = None
        removed: list[str] = []
        untagged = False
        now = self._wall()
        for url in urls[:SWEEP_MAX_QUEUES]:
            try:
                tags = (await self._sqs.list_queue_tags(QueueUrl=url)).get("Tags") or {}
                if not is_stale(tags, identity=identity, topic_arn=topic_arn, now=now):
                    continue
                subscription = tags.get(TAG_SUBSCRIPTION)
                if subscription:
                    await self._unsubscribe(subscription)
                else:
                    untagged = True
                await self._sqs.delete_queue(QueueUrl=url)
                removed.append(queue_name_of(url))
            except PushError as exc:
                first = first or exc
            except Exception as exc:
                error = push_error("remove a stale queue", exc)
                if error.reason != "not_found":  # removed meanwhile (by a replica)
                    first = first or error
        dropped = 0
        try:
            for subscription in sorted(self._dangling):
                await self._unsubscribe(subscription)
                self._dangling.discard(subscription)
                dropped += 1
            if not self._swept_once or untagged:
                dropped += await self._drop_subscriptions_without_queue(prefix, names)
            self._swept_once = True
        except PushError as exc:
            first = first or exc
        if removed or dropped:
            self.removed.extend(removed)
            self._log.info("push_stale_removed", queues=sorted(removed), subscriptions=dropped)
        if first is not None:
            raise first

    async def _unsubscribe(self, subscription_arn: str) -> None:
        try:
            await self._sns.unsubscribe(SubscriptionArn=subscription_arn)
        except Exception as exc:
            error = push_error("unsubscribe a stale queue", exc)
            if error.reason != "not_found":
                raise error from None

    async def _drop_subscriptions_without_queue(self, prefix: str, names: set[str]) -> int:
        """Unsubscribe the topic's subscriptions to queues of our identity that no longer exist."""
        assert self.topic_arn is not None
        candidates: list[tuple[str, str]] = []
        token: str | None = None
        try:
            for _ in range(SUBSCRIPTION_PAGES):
                kwargs: dict[str, str] = {"TopicArn": self.topic_arn}
                if token:
                    kwargs["NextToken"] = token
                page = await self._sns.list_subscriptions_by_topic(**kwargs)
                for sub in page.get("Subscriptions", []):
                    name = queue_name_of(str(sub.get("Endpoint") or ""))
                    arn = str(sub.get("SubscriptionArn") or "")
                    if (
                        sub.get("Protocol") == "sqs"
                        and name.startswith(prefix)
                        and name not in names
                        and arn.startswith("arn:")
                        and arn != self.subscription_arn
                    ):
                        candidates.append((name, arn))
                token = page.get("NextToken")
                if not token:
                    break
        except Exception as exc:
            raise push_error("list the topic's subscriptions", exc) from None
        dropped = 0
        for name, arn in candidates:
            try:
                await self._sqs.get_queue_url(QueueName=name)
                continue  # it exists after all (not listed yet): not ours to touch
            except Exception as exc:
                if push_error("find a queue", exc).reason != "not_found":
                    raise push_error("find a queue", exc) from None
            await self._unsubscribe(arn)
            dropped += 1
        return dropped

    async def _remove_own_queue(self) -> None:
        with contextlib.suppress(Exception):
            if self.subscription_arn and self._sns is not None:
                await self._sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        with contextlib.suppress(Exception):
            if self.own_queue and self._sqs is not None:
                await self._sqs.delete_queue(QueueUrl=self.queue_url)
        self.subscription_arn, self.own_queue = None, False

    async def close(self, *, remove_own_queue: bool = True) -> None:
        """Close the clients; a queue of our own is unsubscribed and deleted first."""
        if remove_own_queue:
            await self._remove_own_queue()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
