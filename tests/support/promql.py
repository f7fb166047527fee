"""Series names in PromQL expressions, for checking alert rules and dashboards.

Not a parser: it strips what cannot hold a series name (strings, label
matchers, ranges, grouping and matching label lists) and keeps the identifiers
that are not calls, keywords or numbers. Good enough for the expressions we
write; promtool checks that they parse.
"""

from __future__ import annotations

import re

from tests.support.contract import STANDARD, exposed_names

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
    }
)
_STANDARD_SUFFIXES = {"counter": ("_total",), "gauge": ("",)}


def series_names(expr: str) -> set[str]:
    """The series (metric) names an expression selects; ``{__name__=…}`` selectors are not seen.

    ``sum by (job) (rate(x_total{a="b"}[5m])) / on (job) y`` gives ``{"x_total", "y"}``.
    """
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {
        match.group(1)
        for match in _IDENTIFIER.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }


def standard_names() -> set[str]:
    """The series names of the standard collectors the dashboards may use (``process_*`` …)."""
    return {
        family + suffix for family, kind in STANDARD.items() for suffix in _STANDARD_SUFFIXES[kind]
    }


def allowed_names() -> set[str]:
    """Every series a secretsync target exposes, plus ``up`` (set by Prometheus per target)."""
    return set(exposed_names()) | standard_names() | {"up"}
