"""Quoting shared by what renders values and what masks them in logs (a leaf: no imports).

The renderer quotes a password into ``sasl.jaas.config``; the log redactor must
recognise the value in that form too. One definition keeps the two in step.
"""

from __future__ import annotations


def jaas_quote(text: str) -> str:
    """``text`` as a double-quoted JAAS option value: ``\\`` and ``"`` get a backslash.

    The caller refuses control characters first (see :func:`credential`): a line
    break inside the quotes would end the value, and there is no escape for it
    that every JAAS reader agrees on.
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
