"""SQS (and SNS) adapter for push refresh: the only module besides ``source`` that talks to AWS.

With ``sqs_queue_url`` it reads that queue. With ``sns_topic_arn`` it makes a
queue of its own at start (``secretsync-<host>-<pid>-<random>``, tagged with
the topic and the creation time, a policy that lets only that topic send to
it), subscribes it to the topic with raw message delivery, and at a clean
stop unsubscribes and deletes it. A queue left behind by a crashed instance
is found by its name prefix and tag (README "Push refresh").
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig

from secretsync.push import Message, PushError
from secretsync.source import classify

QUEUE_PREFIX = "secretsync-"
MAX_MESSAGES = 10  # SQS's own maximum per receive
VISIBILITY_S = 60  # a message not deleted in this time comes back (a crash mid-batch)


def own_queue_name() -> str:
    """``secretsync-<host>-<pid>-<hex>``, cut to SQS's 80 characters of ``[A-Za-z0-9_-]``."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    suffix = f"-{os.getpid()}-{secrets.token_hex(4)}"
    return (QUEUE_PREFIX + host)[: 80 - len(suffix)] + suffix


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


class PushQueue:
    """Receives push messages. Construct, then ``async with`` (or ``start``/``close``)."""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        queue_url: str | None = None,
        topic_arn: str | None = None,
        wait_s: float = 20.0,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.queue_url = queue_url
        self.topic_arn = topic_arn
        self.wait_s = wait_s
        self.own_queue = False
        self.subscription_arn: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._sqs: Any = None
        self._sns: Any = None

    def __repr__(self) -> str:
        return f"PushQueue(queue_url={self.queue_url!r}, own_queue={self.own_queue})"

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
                await self._subscribe(self.topic_arn)
        except BaseException as exc:
            await self._remove_own_queue()
            await stack.aclose()
            if isinstance(exc, Exception):
                raise PushError(f"cannot set up push: {classify('', exc).code}") from None
            raise
        self._stack = stack

    async def _subscribe(self, topic_arn: str) -> None:
        name = own_queue_name()
        created = await self._sqs.create_queue(
            QueueName=name,
            tags={
                "secretsync:topic": topic_arn[-256:],
                "secretsync:created": str(int(time.time())),
            },
        )
        self.queue_url, self.own_queue = created["QueueUrl"], True
        attrs = await self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )
        queue_arn = attrs["Attributes"]["QueueArn"]
        await self._sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": queue_policy(queue_arn, topic_arn)}
        )
        subscribed = await self._sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )
        self.subscription_arn = subscribed.get("SubscriptionArn")

    async def receive(self) -> list[Message]:
        """Long-poll for up to ten messages (``wait_s``). Raises PushError."""
        try:
            answer = await self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=MAX_MESSAGES,
                WaitTimeSeconds=int(self.wait_s),
                VisibilityTimeout=VISIBILITY_S,
            )
        except Exception as exc:
            raise PushError(f"cannot receive: {classify('', exc).code}") from None
        return [
            Message(str(m.get("Body") or ""), str(m["ReceiptHandle"]))
            for m in answer.get("Messages", [])
        ]

    async def delete(self, messages: list[Message]) -> None:
        """Delete handled messages (one batch call). Raises PushError."""
        if not messages:
            return
        entries = [{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(messages)]
        try:
            await self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as exc:
            raise PushError(f"cannot delete messages: {classify('', exc).code}") from None

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
