"""config_errors.py: echoed values and whole messages stay short."""

from __future__ import annotations

import pytest

from secretsync.config.errors import (
    MAX_LINE_CHARS,
    MAX_LINES,
    ConfigError,
    bound_message,
    brief,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30 parsecs", "'30 parsecs'"),
        (5, "5"),
        (1.5, "1.5"),
        (None, "None"),
        (True, "True"),
        ([1, 2, 3], "a list of 3 items"),
        ([1], "a list of 1 item"),
        ({"a": 1}, "a mapping of 1 key"),
        (10**5000, "a very large number"),
        (object(), "a value of type object"),
    ],
    ids=["str", "int", "float", "None", "bool", "list", "list of 1", "dict", "huge int", "object"],
)
def test_brief_shows_small_values_and_describes_the_rest(value: object, expected: str) -> None:
    assert brief(value) == expected


@pytest.mark.parametrize(
    "value", ["x" * 10**6, b"x" * 10**6, "\0" * 10**6], ids=["str", "bytes", "escaped"]
)
def test_brief_cuts_long_text(value: str | bytes) -> None:
    text = brief(value)
    assert len(text) < 120
    assert text.endswith(" (1000000 characters)") or text.endswith(" (1000000 bytes)")
    assert "…" in text


def test_bound_message_limits_lines_and_their_length() -> None:
    message = bound_message("\n".join(f"line {i}: " + "y" * 1000 for i in range(200)))
    lines = message.splitlines()
    assert len(lines) == MAX_LINES
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)
    assert lines[0].endswith("…")
    assert lines[-1] == f"… and {200 - MAX_LINES + 1} more problems"


def test_a_short_message_is_unchanged_and_config_error_is_always_bounded() -> None:
    assert bound_message("a: b\nc: d") == "a: b\nc: d"
    assert len(str(ConfigError("z" * 10**6))) == MAX_LINE_CHARS
