"""``secretsync check --online``: ask AWS, read-only, whether the config can work.

For each unique secret, in the primary region and in ``aws.failover_region``
when there is one, the calls the daemon itself makes: ``DescribeSecret`` (the
secret exists, is not scheduled for deletion, has a version staged
``AWSCURRENT``) and ``GetSecretValue`` pinned to that version (the
credentials may read it, KMS decryption included). Each output is then
rendered from those values exactly as the daemon would, so a missing key, a
secret that is not JSON, a username or password that ``sasl``/``basic_auth``
cannot use, or an env name that is refused is found now rather than at run
time. With ``push``: ``sqs:GetQueueAttributes`` on the queue or
``sns:GetTopicAttributes`` on the topic (it exists, the endpoint and the
credentials reach it). Nothing is ever written, created or consumed: no
``ReceiveMessage`` (that would hide a message from the daemon), no queue.

Values stay in memory for the length of the check: a problem names secrets,
keys, fields and AWS error codes, never a value, and every problem's text is
scrubbed of the values fetched (:func:`secretsync.logs.scrub`) all the same.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import NoRegionError

from secretsync import logs
from secretsync.config.model import Config, OutputConfig
from secretsync.output.render import RenderError, leaf_strings, render
from secretsync.source.classify import classify
from secretsync.source.protocol import SecretValue, SourceError
from secretsync.source.secretsmanager import SecretsManagerSource

MAX_MESSAGE_CHARS = 240  # of an AWS error message quoted in a problem
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0


class PreflightError(Exception):
    """The check cannot run at all (no region); ``str()`` says why."""

    safe_message = True


@dataclass(frozen=True)
class Problem:
    """One thing that would fail at run time: where (a secret, an output, a config field)
    and what. Never a value."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class Report:
    """What the check asked and found."""

    problems: list[Problem] = field(default_factory=list)
    secrets: int = 0  # unique secrets checked (per region)
    regions: list[str] = field(default_factory=list)
    outputs: int = 0  # outputs rendered
    push: str | None = None  # the push call made, when there is push

    @property
    def ok(self) -> bool:
        return not self.problems


def _message(exc: BaseException) -> str:
    """``Code: message`` of an AWS error, on one line and short; never a value (AWS error
    messages name resources and actions)."""
    error = exc if isinstance(exc, SourceError) else classify("", exc)
    text = str(error)
    if error.secret_id:
        text = text.removeprefix(f"secret {error.secret_id!r}: ")
    text = re.sub(r"\s+", " ", text).strip()
    if error.code in {"ClientError", "403"} or "AccessDenied" in text:
        # moto answers a JSON client with an XML body that botocore cannot read: name it
        found = re.search(r"<Code>([\w.]+)</Code>.*?<Message>([^<]*)</Message>", text)
        if found:
            text = f"{found.group(1)}: {found.group(2)}"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


async def _secret(
    source: SecretsManagerSource, secret_id: str, where: str
) -> tuple[SecretValue | None, Problem | None]:
    """DescribeSecret, then GetSecretValue of the AWSCURRENT version; a problem names the call."""
    try:
        version_id = await source.current_version(secret_id)
    except SourceError as exc:
        return None, Problem(where, f"DescribeSecret: {_message(exc)}")
    try:
        value = await source.fetch(secret_id, version_id)
    except SourceError as exc:
        return None, Problem(where, f"GetSecretValue (version {version_id}): {_message(exc)}")
    return value, None


def _render_problem(
    index: int, output: OutputConfig, values: dict[str, SecretValue], suffix: str
) -> Problem | None:
    try:
        render(output, values)
    except RenderError as exc:
        return Problem(f"outputs[{index}] ({output.path}){suffix}", str(exc))
    except Exception as exc:  # a renderer bug: name its type, as the daemon would
        return Problem(f"outputs[{index}] ({output.path}){suffix}", type(exc).__name__)
    return None


async def _check_region(
    config: Config, report: Report, *, region: str, endpoint_url: str | None, label: str
) -> None:
    """Every secret and output against one region; problems are added to ``report``."""
    suffix = "" if not label else f" [{label}]"
    source = SecretsManagerSource(
        region=region,
        endpoint_url=endpoint_url,
        max_concurrency=config.aws.concurrency,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        read_timeout_s=READ_TIMEOUT_S,
    )
    async with source:
        ids = config.secret_ids
        results = await asyncio.gather(
            *(_secret(source, sid, f"secret {sid!r}{suffix}") for sid in ids)
        )
    values: dict[str, SecretValue] = {}
    for sid, (value, problem) in zip(ids, results, strict=True):
        if problem is not None:
            report.problems.append(problem)
        elif value is not None:
            values[sid] = value
            logs.hold_secret(f"preflight:{label}:{sid}", leaf_strings(value))
    report.secrets += len(ids)
    report.regions.append(region)
    for index, output in enumerate(config.outputs):
        if not all(sid in values for sid in output.secret_ids):
            continue  # the secret's own problem is reported already
        problem = _render_problem(index, output, values, suffix)
        if problem is not None:
            report.problems.append(problem)
        elif not label:
            report.outputs += 1


async def _check_push(config: Config, report: Report, region: str) -> None:
    """The one read-only call that shows the push queue or topic is there and reachable."""
    push = config.push
    if push is None:
        return
    params: dict[str, Any]
    if push.sqs_queue_url is not None:
        service, operation, where = "sqs", "GetQueueAttributes", "push.sqs_queue_url"
        method, params = "get_queue_attributes", {"QueueUrl": push.sqs_queue_url}
        params["AttributeNames"] = ["QueueArn"]
    else:  # the config holds exactly one of the two
        service, operation, where = "sns", "GetTopicAttributes", "push.sns_topic_arn"
        method, params = "get_topic_attributes", {"TopicArn": push.sns_topic_arn}
    report.push = f"{service}:{operation}"
    aio = AioConfig(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": 3},
        user_agent_extra="secretsync",
    )
    client = aioboto3.Session().client(
        service, region_name=region, endpoint_url=push.endpoint_url, config=aio
    )
    try:
        async with client as opened:
            await getattr(opened, method)(**params)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        report.problems.append(Problem(where, f"{operation}: {_message(exc)}"))


async def check_online(config: Config, *, region: str | None) -> Report:
    """Run every read-only check of ``config`` against AWS (see the module docstring).

    ``region`` is the primary region as resolved (config, environment or AWS
    config file). Returns a :class:`Report` whose problems name each thing that
    would fail; raises :class:`PreflightError` when no region can be found.
    """
    if region is None:
        raise PreflightError(
            "no AWS region: set aws.region, AWS_REGION or a region in the AWS config file"
        )
    report = Report()
    try:
        await _check_region(
            config, report, region=region, endpoint_url=config.aws.endpoint_url, label=""
        )
        if config.aws.failover_region is not None:
            await _check_region(
                config,
                report,
                region=config.aws.failover_region,
                endpoint_url=config.aws.failover_endpoint_url,
                label=f"failover region {config.aws.failover_region}",
            )
        await _check_push(config, report, region)
        # the last line of defence, while the values are still held
        report.problems = [Problem(p.where, logs.scrub(p.problem)) for p in report.problems]
    except SourceError as exc:  # NoRegion from the SDK's own lookup
        raise PreflightError(str(exc)) from None
    except NoRegionError:
        raise PreflightError("no AWS region: set aws.region or AWS_REGION") from None
    finally:
        logs.release_secrets_except(())
    return report
