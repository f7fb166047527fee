"""Quoting shared by what renders values and what masks them in logs (a leaf: no
imports of secretsync).

The renderer quotes a password into ``sasl.jaas.config``; the log redactor must
recognise the value in that form too. One definition keeps the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


def jaas_quote(text: str) -> str:
    """``text`` as a double-quoted JAAS option value: ``\\`` and ``"`` get a backslash.

    The caller refuses control characters first (see :func:`credential`): a line
    break inside the quotes would end the value, and there is no escape for it
    that every JAAS reader agrees on.
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- Java .properties (java.util.Properties.store, ISO-8859-1) ------------------------------
# Written here rather than imported from javaproperties: its package imports its XML
# reader and writer (xml.sax, xml.dom) with it, which `once` and `run` never use. The
# output is the same, character for character, as javaproperties.dumps(..., timestamp=False,
# sort_keys=True, ensure_ascii=True, ensure_ascii_comments=True) and javaproperties.escape
# (tests/test_escapes.py compares them over generated text).

# the controls with an escape of their own; every other control (and, with ensure_ascii,
# every character above U+007E) is \uXXXX
_PROPS_SINGLE = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_PROPS_BACKSLASHED = "#!=:"  # a backslash before each (and before a backslash)
_PROPS_NOT_ASCII_PRINTABLE = re.compile(r"[^\x20-\x7E]")
_PROPS_CONTROL = re.compile(r"[\x00-\x1F\x7F]")
_NON_ASCII = re.compile(r"[^\x00-\x7F]")
_CR_EOL = re.compile(r"\r\n?")
_BARE_COMMENT_LINE = re.compile(r"\n(?![#!])")


def _props_char(match: re.Match[str]) -> str:
    char = match.group()
    single = _PROPS_SINGLE.get(char)
    if single is not None:
        return single
    code = ord(char)
    if code > 0xFFFF:  # beyond the BMP: a UTF-16 surrogate pair, as Java holds it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _props_base(text: str, ensure_ascii: bool) -> str:
    # str.replace for the few ASCII characters that take a backslash, a regex (with a call
    # per match) only for what needs \uXXXX: 2-3× faster than one regex for everything,
    # and the redactor escapes every value held several ways
    text = text.replace("\\", "\\\\")  # first: the backslashes added next stay single
    for char in _PROPS_BACKSLASHED:
        if char in text:
            text = text.replace(char, "\\" + char)
    if ensure_ascii:
        if not (text.isascii() and text.isprintable()):
            text = _PROPS_NOT_ASCII_PRINTABLE.sub(_props_char, text)
    elif not text.isprintable():  # Unicode's non-printables include more than controls
        text = _PROPS_CONTROL.sub(_props_char, text)
    return text


def properties_escape(text: str, *, ensure_ascii: bool = True) -> str:
    """``text`` escaped to be a key (or a value) of a ``.properties`` file.

    Controls, spaces and ``\\ # ! = :`` are escaped (``\\t``, ``\\n``, ``\\f``,
    ``\\r``, ``\\ ``, a backslash before the others, ``\\uXXXX`` otherwise); with
    ``ensure_ascii`` everything above U+007E is ``\\uXXXX`` too (a character
    beyond the BMP as its two surrogates), else it is left as it is.
    """
    return _props_base(text, ensure_ascii).replace(" ", "\\ ")


def properties_value(text: str, *, ensure_ascii: bool = True) -> str:
    """``text`` escaped as the value of a ``.properties`` line: like
    :func:`properties_escape` but inner spaces stay as they are (``load`` keeps them);
    only a leading space is escaped, or ``load`` would drop it."""
    value = _props_base(text, ensure_ascii)
    return "\\" + value if value.startswith(" ") else value


def properties_forms(text: str) -> tuple[str, str, str]:
    """``properties_value(text)``, ``properties_escape(text)`` and
    ``properties_escape(text, ensure_ascii=False)``, computed together (the escaping
    they share is done once; for ASCII text the last two are the same)."""
    base = _props_base(text, True)
    escaped = base.replace(" ", "\\ ")
    unicode = escaped if text.isascii() else properties_escape(text, ensure_ascii=False)
    return "\\" + base if base.startswith(" ") else base, escaped, unicode


def properties_text(props: Mapping[str, str], comments: str) -> str:
    """``props`` as ``.properties`` text, ASCII only: ``comments`` as ``#`` lines first,
    then one ``key=value`` line per key in code-point order, each ending in ``\\n``.

    A value's spaces are kept except a leading one (escaped, or ``load`` would drop
    it); line breaks inside ``comments`` (LF, CR or CRLF) each start a new ``#``
    line unless the next line already starts with ``#`` or ``!``. No timestamp.
    """
    comment = _BARE_COMMENT_LINE.sub("\n#", _CR_EOL.sub("\n", comments))
    lines = ["#" + _NON_ASCII.sub(_props_char, comment)]
    for key in sorted(props):
        lines.append(properties_escape(key) + "=" + properties_value(props[key]))
    return "\n".join(lines) + "\n"
