"""logs.py: JSON off a TTY, console on one, and secret values scrubbed from every event."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest

from secretsync import logs


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    logs.configure("info", "json", stream=io.StringIO())


def test_json_lines_when_not_a_tty() -> None:
    buffer = io.StringIO()
    logs.configure("info", "auto", stream=buffer)
    logs.get_logger().info("poll_cycle", secrets_checked=2)
    event = json.loads(buffer.getvalue())
    assert event["event"] == "poll_cycle" and event["secrets_checked"] == 2
    assert event["level"] == "info" and event["timestamp"].endswith("Z")


def test_console_on_a_tty() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        logs.configure("info", "auto", stream=tty)
        logs.get_logger().info("poll_cycle", secrets_checked=2)
        tty.flush()
        text = os.read(leader, 4096).decode()
    os.close(leader)
    assert "poll_cycle" in text and not text.lstrip().startswith("{")


def test_level_filters() -> None:
    buffer = io.StringIO()
    logs.configure("warning", "json", stream=buffer)
    logs.get_logger().info("quiet")
    logs.get_logger().warning("loud")
    assert [json.loads(line)["event"] for line in buffer.getvalue().splitlines()] == ["loud"]


def test_registered_secret_values_are_masked_everywhere() -> None:
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    logs.register_secret_values(["CANARY-log-5d1e", "ab"])  # too short values are not masked
    logs.get_logger().error(
        "output_failed", error="boom CANARY-log-5d1e here", detail=ValueError("CANARY-log-5d1e")
    )
    text = buffer.getvalue()
    assert "CANARY-log-5d1e" not in text
    assert text.count(logs.MASK) == 2
    assert logs.scrub("x CANARY-log-5d1e y") == f"x {logs.MASK} y"
