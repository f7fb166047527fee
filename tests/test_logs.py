"""logs.py: JSON off a TTY, console on one, and secret values scrubbed from every event."""

from __future__ import annotations

import io
import json
import os
import shlex
from collections.abc import Iterator

import javaproperties
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretsync import logs
from secretsync.escapes import jaas_quote, properties_text


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


class Writes(io.StringIO):
    """A stream that keeps each write() apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_event_is_one_write_of_a_whole_line() -> None:
    # one write(2) per line: lines of processes sharing a pipe (the demo's, a container
    # runtime's) never interleave between an event and its newline, and 1,000 secrets
    # cost 2,000 system calls fewer
    stream = Writes()
    logs.configure("info", "json", stream=stream)
    logs.get_logger().info("poll_cycle", secrets_checked=2)
    logs.get_logger().warning("file_written", path="/srv/out/a")

    assert len(stream.writes) == 2
    assert all(text.endswith("}\n") and text.count("\n") == 1 for text in stream.writes)


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


def test_held_secret_values_are_masked_everywhere() -> None:
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    logs.hold_secret("s", ["CANARY-log-5d1e", "ab"])  # too short values are not masked
    logs.get_logger().error(
        "output_failed", error="boom CANARY-log-5d1e here", detail=ValueError("CANARY-log-5d1e")
    )
    text = buffer.getvalue()
    assert "CANARY-log-5d1e" not in text
    assert text.count(logs.MASK) == 2
    assert logs.scrub("x CANARY-log-5d1e y") == f"x {logs.MASK} y"


@pytest.fixture
def held() -> Iterator[None]:
    """Hold nothing before the test (another test in this process may have) or after it."""
    logs.release_secrets_except([])
    yield
    logs.release_secrets_except([])


@pytest.mark.usefixtures("held")
def test_escaped_and_quoted_forms_of_a_value_are_masked_too() -> None:
    value = "tok'en\"CANARY=é\\x"
    logs.hold_secret("s", [value])
    rendered = [
        value,
        json.dumps(value)[1:-1],  # in a JSON file or a JSON log line
        repr(value)[1:-1],  # in a Python repr
        shlex.quote(value),  # in an env file: TOKEN='tok'"'"'en…'
        javaproperties.escape(value),  # in a .properties file
        jaas_quote(value)[1:-1],  # the password in a derived sasl.jaas.config
        javaproperties.escape(jaas_quote(value)[1:-1]),  # …written to a .properties file
    ]
    for text in rendered:
        assert logs.scrub(f"<{text}>") == f"<{logs.MASK}>", text


@pytest.mark.usefixtures("held")
def test_a_value_with_spaces_is_masked_as_a_properties_file_holds_it() -> None:
    # a .properties value keeps its inner spaces (only a leading one is escaped), unlike a
    # key: the form the renderer writes must be masked, not only the key-style escape
    value = "CANARY spaced=pass:word"
    logs.hold_secret("s", [value])
    line = properties_text({"password": value}, "").splitlines()[1]
    written = line.removeprefix("password=")
    assert written == "CANARY spaced\\=pass\\:word"
    assert logs.scrub(f"<{written}>") == f"<{logs.MASK}>"
    derived = properties_text({"sasl.jaas.config": jaas_quote(value)[1:-1]}, "")
    assert logs.scrub(derived.splitlines()[1]) == f"sasl.jaas.config={logs.MASK}"


@pytest.mark.usefixtures("held")
def test_only_the_versions_held_now_are_kept() -> None:
    logs.hold_secret("s", ["CANARY-v0-aaaa"])
    baseline = logs.redacted_count()
    for version in range(1, 1000):
        logs.hold_secret("s", [f"CANARY-v{version}-aaaa"])
    assert logs.redacted_count() == baseline  # one version's forms, not 1,000
    assert logs.scrub("CANARY-v999-aaaa") == logs.MASK
    logs.release_secret("s")
    assert logs.redacted_count() == 0


@pytest.mark.usefixtures("held")
def test_what_is_held_per_secret_is_bounded_raw_values_first() -> None:
    big = "CANARY-big-" + "q\"'\\=:é" * 200_000  # 1.6 M characters, escaped 6 ways
    leaves = [f'CANARY-leaf-{n:05d}-"' for n in range(50_000)]
    logs.hold_secret("s", [big, *leaves])
    assert logs.redacted_chars() <= logs.REDACT_MAX_CHARS_PER_SECRET
    assert logs.redacted_count() <= logs.REDACT_MAX_STRINGS_PER_SECRET
    # the raw forms come first: the beginning of the list is masked as it is
    assert logs.scrub(f"<{leaves[0]}>") == f"<{logs.MASK}>"
    logs.hold_secret("t", ["CANARY-other-secret"])  # another secret has its own budget
    assert logs.scrub("CANARY-other-secret") == logs.MASK
    logs.release_secret("s")
    assert logs.redacted_chars() == len("CANARY-other-secret")


@pytest.mark.usefixtures("held")
def test_many_values_sharing_a_prefix_are_indexed_at_once() -> None:
    # one sorted bucket per prefix per hold (it was re-sorted per value: quadratic)
    values = [f"same-prefix-{n:06d}" for n in range(20_000)]
    logs.hold_secret("s", values)
    assert logs.scrub(f"a {values[12_345]} b") == f"a {logs.MASK} b"
    logs.hold_secret("s", values[:10])
    assert logs.redacted_count() == 10
    assert logs.scrub(values[12_345]) == values[12_345]


def test_error_fields_never_carry_an_exceptions_data() -> None:
    secret = "CANARY-enc-\ud800-x"
    try:
        (secret + "\ud800").encode()
    except UnicodeEncodeError as exc:
        fields = logs.error_fields(exc, with_traceback=True)
    assert fields["error_type"] == "UnicodeEncodeError"
    assert "error" not in fields  # its text and repr hold the whole string
    assert "CANARY" not in json.dumps(fields)
    assert fields["traceback"] and all(":" in frame for frame in fields["traceback"])

    class Safe(Exception):
        safe_message = True

    assert logs.error_fields(Safe("secret 'a/b': key 'k' is missing")) == {
        "error_type": "Safe",
        "error": "secret 'a/b': key 'k' is missing",
    }


values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=4, max_size=30
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(held_values=st.lists(values, min_size=1, max_size=20), filler=st.text(max_size=40))
def test_every_occurrence_of_every_held_value_is_masked(
    held_values: list[str], filler: str
) -> None:
    try:
        for n, value in enumerate(held_values):
            logs.hold_secret(f"secret-{n}", [value])
        text = filler.join(held_values) + filler + held_values[0]
        scrubbed = logs.scrub(text)
        for value in held_values:
            if value not in logs.MASK:
                assert value not in scrubbed.replace(logs.MASK, "\0")
    finally:
        logs.release_secrets_except([])


def _reference_forms(value: str) -> set[str]:
    """Every form the redactor must mask for ``value``, each made on its own."""
    jaas = jaas_quote(value)[1:-1]
    made = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
    made |= {shlex.quote(value), jaas, repr(value)[1:-1]}
    for text in (value, jaas):
        made.add(properties_text({"k": text}, "").splitlines()[1].removeprefix("k="))
        made |= {javaproperties.escape(text, ensure_ascii=a) for a in (True, False)}
    return {form for form in made if len(form) >= 4}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(value=st.one_of(values, st.text(alphabet=" \"'\\=:#!\t\né\U0001f600ab", max_size=12)))
def test_the_forms_held_are_each_form_made_on_its_own(value: str) -> None:
    # the redactor makes the forms together, sharing the escaping they have in common
    forms, cut = logs._forms([value])
    assert not cut
    assert set(forms) == (_reference_forms(value) if len(value) >= 4 else set())
