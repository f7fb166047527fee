"""events.py: which secret an EventBridge / CloudTrail / SNS message names (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretsync.push.events import MAX_BODY_BYTES, MAX_NAMES, SecretIndex, keys_of, match

ACCOUNT, REGION = "123456789012", "us-east-1"
NAME = "/confluent_cloud_resource/kafka_cluster/java_client"
FULL_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{NAME}-AbC123"
PARTIAL_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{NAME}"


def label_updated(arn: str = FULL_ARN) -> dict[str, Any]:
    # the shape Secrets Manager sends to EventBridge when a staging label moves
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Secret Label Updated",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [arn],
        "detail": {"versionId": "v2", "stagingLabels": ["AWSCURRENT"]},
    }


def cloudtrail(event_name: str, **detail: Any) -> dict[str, Any]:
    return {
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.secretsmanager",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [],
        "detail": {
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": event_name,
            **detail,
        },
    }


def sns(event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:secret-events",
            "Message": json.dumps(event),
        }
    )


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(label_updated()),
        sns(label_updated()),
        json.dumps(cloudtrail("PutSecretValue", requestParameters={"secretId": NAME})),
        json.dumps(cloudtrail("PutSecretValue", requestParameters={"secretId": PARTIAL_ARN})),
        json.dumps(
            cloudtrail(
                "UpdateSecretVersionStage",
                requestParameters={"secretId": FULL_ARN, "versionStage": "AWSCURRENT"},
            )
        ),
        json.dumps(cloudtrail("RotateSecret", responseElements={"arn": FULL_ARN})),
        json.dumps(
            {
                "detail-type": "AWS Service Event via CloudTrail",
                "source": "aws.secretsmanager",
                "detail": {
                    "eventName": "RotationSucceeded",
                    "additionalEventData": {"SecretId": FULL_ARN},
                },
            }
        ),
        json.dumps({"source": "aws.secretsmanager", "detail": {"name": NAME}}),
        json.dumps({"source": "aws.secretsmanager", "detail": {"aRN": FULL_ARN}}),
    ],
    ids=[
        "label-updated",
        "sns-envelope",
        "put-by-name",
        "put-by-partial-arn",
        "update-stage",
        "rotate",
        "rotation-succeeded",
        "detail-name",
        "detail-aRN",
    ],
)
def test_every_shape_aws_sends_is_matched_to_a_name_or_arn_in_the_config(body: str) -> None:
    for ours in (NAME, FULL_ARN, PARTIAL_ARN):
        verdict = match(body, ["other/secret", ours])
        assert (verdict.outcome, verdict.secret_ids) == ("matched", (ours,)), ours


def test_events_for_other_secrets_or_accounts_are_ignored() -> None:
    assert match(json.dumps(label_updated()), ["team/other"]).outcome == "ignored"
    elsewhere = label_updated(FULL_ARN.replace(ACCOUNT, "999999999999"))
    assert match(json.dumps(elsewhere), [PARTIAL_ARN]).outcome == "ignored"
    no_secret = {"source": "aws.secretsmanager", "detail": {"eventName": "ListSecrets"}}
    assert match(json.dumps(no_secret), [NAME]).outcome == "ignored"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '"a string"',
        '{"Type": "Notification", "Message": "{"}',
        json.dumps({"source": "aws.s3", "resources": [FULL_ARN]}),
        "x" * (MAX_BODY_BYTES + 1),
    ],
)
def test_malformed_or_foreign_messages_are_invalid(body: str) -> None:
    verdict = match(body, [NAME])
    assert verdict.outcome == "invalid" and verdict.secret_ids == ()


def test_a_name_that_merely_looks_suffixed_still_matches_itself() -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/db-abcdef"
    assert {k.name for k in keys_of(arn)} == {"app/db-abcdef", "app/db"}
    assert keys_of("plain-name") == keys_of("plain-name")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=2000) | st.binary(max_size=2000).map(lambda b: b.decode("latin-1")))
def test_any_body_gives_a_verdict_and_never_raises(body: str) -> None:
    assert match(body, [NAME, FULL_ARN]).outcome in {"matched", "ignored", "invalid"}


@pytest.mark.parametrize(
    "body",
    [
        "[" * 2000,
        "{" * 2000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        json.dumps({"Type": "Notification", "Message": "[" * 5000}),
        json.dumps({"source": "aws.secretsmanager", "resources": ["[" * 5000]}),
    ],
    ids=["brackets", "braces", "nested-objects", "sns-envelope", "nested-in-a-string"],
)
def test_a_deeply_nested_body_is_invalid_and_never_raises(body: str) -> None:
    # json.loads raises RecursionError (not a ValueError) past about 1,000 levels
    verdict = match(body, [NAME])
    assert verdict.outcome in {"invalid", "ignored"} and verdict.secret_ids == ()
    if body.startswith(("[", '{"a"', "{{")):
        assert verdict.outcome == "invalid"


def many_names(count: int, ours_at: int) -> str:
    """An event just under SQS's 256 KB naming ``count`` secrets, ours at ``ours_at``."""
    names = [f"s{n}" for n in range(count)]
    names[ours_at] = NAME
    body = json.dumps({**label_updated(), "resources": names})
    assert len(body) <= MAX_BODY_BYTES
    return body


def test_only_the_first_names_of_a_message_are_read() -> None:
    # an event of AWS names one secret; a message naming thousands is read up to the cap
    ours = [NAME] + [f"team/secret-{n}" for n in range(100)]
    assert match(many_names(25_500, ours_at=0), ours).secret_ids == (NAME,)
    assert match(many_names(25_500, ours_at=MAX_NAMES - 1), ours).secret_ids == (NAME,)
    assert match(many_names(25_500, ours_at=MAX_NAMES), ours).outcome == "ignored"
    assert match(many_names(25_500, ours_at=20_000), ours).outcome == "ignored"


def test_an_index_built_once_matches_like_the_list_of_ids() -> None:
    ours = ["other/secret", NAME, FULL_ARN, PARTIAL_ARN, "team/b"]
    index = SecretIndex(ours)
    bodies = [
        json.dumps(label_updated()),
        json.dumps(label_updated(FULL_ARN.replace(ACCOUNT, "999999999999"))),
        json.dumps(cloudtrail("PutSecretValue", requestParameters={"secretId": "team/b"})),
        sns(label_updated(PARTIAL_ARN)),
        "not json",
    ]
    for body in bodies:
        assert match(body, index) == match(body, ours)
    # matched ids come in the config's order, each once
    assert match(json.dumps(label_updated()), index).secret_ids == (NAME, FULL_ARN, PARTIAL_ARN)
    assert index.ids == tuple(ours)
