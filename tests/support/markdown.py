"""Reading the project's Markdown: fenced blocks, links and heading anchors."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)\s*$")
HTML_ANCHOR = re.compile(r'<a (?:id|name)="([^"]+)"')


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language word, its text, and where it starts."""

    lang: str
    text: str
    line: int

    @property
    def file_name(self) -> str | None:
        """``name.yaml`` when the block's first line is ``# name.yaml``: a file the reader
        is told to write."""
        first = self.text.partition("\n")[0].strip()
        match = re.fullmatch(r"# ([\w.-]+\.ya?ml)", first)
        return match.group(1) if match else None


def blocks(markdown: str, lang: str | None = None) -> list[Block]:
    """The fenced blocks of ``markdown`` (only those of ``lang`` when given)."""
    found = []
    for match in FENCE.finditer(markdown):
        if lang is None or match.group(1) == lang:
            line = markdown.count("\n", 0, match.start()) + 1
            found.append(Block(match.group(1), textwrap.dedent(match.group(2)), line))
    return found


def prose(markdown: str) -> str:
    """``markdown`` without its fenced blocks and inline code (where links are not links)."""
    text = FENCE.sub("", markdown)
    return re.sub(r"`[^`\n]*`", "", text)


def links(markdown: str) -> list[str]:
    """The targets of the Markdown links in the prose."""
    return LINK.findall(prose(markdown))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as ``-``."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link into ``path`` may name: its headings' slugs (a repeated heading
    gets ``-1``, ``-2``, …) and explicit ``<a id="…">`` anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = FENCE.sub("", path.read_text())
    for line in text.splitlines():
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            name = slug(heading.group(1))
            count = seen.get(name, 0)
            seen[name] = count + 1
            found.add(name if count == 0 else f"{name}-{count}")
    return found
