"""Bounded YAML: read at most MAX_CONFIG_BYTES, build at most MAX_CONFIG_NODES.

Pure except :func:`read_config_text`, which reads one file.

A tiny YAML file can describe a huge document through nested aliases (the
"billion laughs": ``b: &b [*a, *a, …]``, ``c: &c [*b, *b, …]``). PyYAML shares
aliased nodes, so loading stays cheap, but anything that walks the result
(validation, an error message, a log line) sees the fully expanded tree. So
the composer counts every node *including each alias dereference* (an alias
counts as the whole subtree it names) and refuses the document as soon as the
expanded size passes the limit, before anything else looks at it. The text of
scalars is counted the same way (MAX_CONFIG_CHARS), so aliasing one long
string many times cannot make a huge document either.

Also refused: nesting deeper than MAX_YAML_DEPTH, an alias inside the node
it names (a recursive document), and a key given twice in one mapping (YAML
would silently keep the last one).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from secretsync.config.errors import ConfigError, brief

# PyYAML's pure-Python reader compiles, when PyYAML is imported, the class of characters
# YAML refuses, written as the complement of five Unicode ranges. `re` takes ≈ 6 ms to
# compile that, a twelfth of `secretsync check`, although libyaml does the reading here.
# The same class written as the characters it holds compiles in < 1 ms, and `re.compile`
# answers from its cache: so the cache gets the second under the first's text before
# PyYAML is imported. Where that cache is not a dict (another Python), PyYAML compiles
# its own as before. tests/config/test_loader.py checks, for every code point, that both
# match alike, and that PyYAML's reader holds this pattern.
PYYAML_NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
NON_PRINTABLE = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"


def _seed_re_cache() -> None:
    cache = getattr(re, "_cache", None)
    if isinstance(cache, dict):
        cache.setdefault((str, PYYAML_NON_PRINTABLE, 0), re.compile(NON_PRINTABLE))


_seed_re_cache()

# after the seed above
import yaml  # noqa: E402
from yaml.composer import Composer  # noqa: E402
from yaml.constructor import SafeConstructor  # noqa: E402
from yaml.nodes import MappingNode, Node, ScalarNode  # noqa: E402
from yaml.resolver import Resolver  # noqa: E402

MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_CHARS = 2 * MAX_CONFIG_BYTES  # scalar text after alias expansion
MAX_YAML_DEPTH = 50  # a real sync.yaml nests about 7 levels deep

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_config_text(path: Path) -> str:
    """The UTF-8 text of ``path``; reads at most MAX_CONFIG_BYTES + 1 bytes.

    Raises OSError when the file cannot be read, ConfigError when it is larger
    than MAX_CONFIG_BYTES or not UTF-8.
    """
    with path.open("rb") as stream:
        data = stream.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config: file is larger than 1 MiB (limit {MAX_CONFIG_BYTES} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("config is not UTF-8 text") from None


def _line(node_or_mark: object) -> str:
    mark = getattr(node_or_mark, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"


# libyaml scans and parses (most of the time a load takes: ≈ 10× faster than PyYAML's
# pure-Python scanner); the composing stays PyYAML's Python code, so every node is counted
# and the depth is checked before it recurses (libyaml's parser keeps its own stack)
_ParserBase: Any
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    _ParserBase = CParser
else:  # pragma: no cover (the wheels of every platform the image runs on have libyaml)
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _PyParser(Reader, Scanner, Parser):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)

    _ParserBase = _PyParser


class _BoundedLoader(Composer, _ParserBase, SafeConstructor, Resolver):  # type: ignore[misc]
    """A safe loader that counts expanded nodes while composing (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        _ParserBase.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._expanded_nodes = 0
        self._expanded_chars = 0
        self._aliases = 0
        self._depth = 0
        # expanded (nodes, scalar characters) of each anchored node, once it is complete
        self._anchored_size: dict[Node, tuple[int, int]] = {}

    def _count(self, nodes: int, chars: int) -> None:
        self._expanded_nodes += nodes
        self._expanded_chars += chars
        hint = "; is an alias (*name) repeated in nested lists?" if self._aliases else ""
        if self._expanded_nodes > MAX_CONFIG_NODES:
            raise ConfigError(
                "config: too many YAML nodes after alias expansion "
                f"(limit {MAX_CONFIG_NODES}){hint}"
            )
        if self._expanded_chars > MAX_CONFIG_CHARS:
            raise ConfigError(
                "config: too much YAML text after alias expansion "
                f"(limit {MAX_CONFIG_CHARS} characters){hint}"
            )

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: yaml.Event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is left to PyYAML's own error
                size = self._anchored_size.get(target)
                if size is None:
                    raise ConfigError(
                        f"config: the alias at {_line(event)} is inside the node it names "
                        "(a recursive document)"
                    )
                self._aliases += 1
                self._count(*size)
            return super().compose_node(parent, index)
        if self._depth >= MAX_YAML_DEPTH:
            raise ConfigError(
                f"config: YAML nested too deeply at {_line(event)} (limit {MAX_YAML_DEPTH} levels)"
            )
        anchor = getattr(event, "anchor", None)
        before = (self._expanded_nodes, self._expanded_chars)
        self._count(1, len(event.value) if isinstance(event, yaml.ScalarEvent) else 0)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if anchor is not None and node is not None:
            self._anchored_size[node] = (
                self._expanded_nodes - before[0],
                self._expanded_chars - before[1],
            )
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[tuple[str, str], Node] = {}
        for key, _value in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                if (key.tag, key.value) in seen:
                    raise ConfigError(
                        f"config: key {brief(key.value)} appears twice in one mapping, at "
                        f"{_line(seen[(key.tag, key.value)])} and {_line(key)}"
                    )
                seen[(key.tag, key.value)] = key
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError):
            # e.g. an integer of more than 4300 digits or a date like 2024-02-30;
            # the exception text may quote the value, so it is not shown
            kind = node.tag.rsplit(":", 1)[-1]
            raise ConfigError(
                f"config: the YAML value at {_line(node)} cannot be read as {kind}"
            ) from None


def load_yaml(text: str) -> object:
    """Parse one YAML document safely (no Python objects) within the limits above.

    Returns None for an empty document. Raises ConfigError for a limit, a
    recursive alias, a duplicate key or a syntax error (with line and column).
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if problem == "exceeded maximum nesting depth":
            # libyaml's own limit (1000 levels), met while it scans ahead of the composer
            raise ConfigError(
                f"config: YAML nested too deeply{where} (limit {MAX_YAML_DEPTH} levels)"
            ) from None
        raise ConfigError(f"YAML syntax error{where}: {problem}") from None
    finally:
        loader.dispose()
