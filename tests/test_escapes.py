"""The .properties writer of secretsync.escapes against javaproperties, the oracle.

secretsync writes .properties text itself (importing javaproperties costs `once` its XML
modules); its output must stay the same as javaproperties', character for character.
The JDK round trip of what it writes is tested in tests/output/test_render.py.
"""

from __future__ import annotations

import javaproperties
from hypothesis import given
from hypothesis import strategies as st

from secretsync.escapes import (
    properties_escape,
    properties_forms,
    properties_text,
    properties_value,
)

# every code point but lone surrogates (not valid text; render refuses them first),
# weighted towards what the escaping treats specially
SPECIAL = st.sampled_from(list("\t\n\f\r !#:=\\ \x00\x1f\x7f\x80\xff\u0100\uffff\U0001f600 "))
TEXT = st.lists(st.one_of(SPECIAL, st.characters(exclude_categories=["Cs"])), max_size=40).map(
    "".join
)


@given(text=TEXT)
def test_escape_is_javaproperties_escape(text: str) -> None:
    for ensure_ascii in (True, False):
        assert properties_escape(text, ensure_ascii=ensure_ascii) == javaproperties.escape(
            text, ensure_ascii=ensure_ascii
        )


@given(props=st.dictionaries(TEXT, TEXT, max_size=8), comments=TEXT)
def test_text_is_javaproperties_dumps(props: dict[str, str], comments: str) -> None:
    expected = javaproperties.dumps(
        props,
        comments=comments,
        timestamp=False,
        sort_keys=True,
        ensure_ascii=True,
        ensure_ascii_comments=True,
    )
    assert properties_text(props, comments) == expected


def test_known_lines() -> None:
    text = properties_text({" k=y": " a:b\n", "é": "\U0001f600"}, "one\r\ntwo\r#three")
    assert text == (
        "#one\n#two\n#three\n"
        "\\ k\\=y=\\ a\\:b\\n\n"
        "\\u00e9=\\ud83d\\ude00\n"
    )  # fmt: skip


@given(text=TEXT)
def test_the_forms_made_together_are_each_made_alone(text: str) -> None:
    assert properties_forms(text) == (
        properties_value(text),
        properties_escape(text),
        properties_escape(text, ensure_ascii=False),
    )
