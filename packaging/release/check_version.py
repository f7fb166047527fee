"""Check that a release tag, the package version and the CHANGELOG agree; print the notes.

Usage: ``check_version.py vX.Y.Z [--notes]``. Exits 1 naming what disagrees:
the tag must be ``v`` + ``secretsync.__version__``, and CHANGELOG.md must hold a
dated ``## [X.Y.Z] - YYYY-MM-DD`` entry as its newest release. With
``--notes`` the body of that entry is printed (the GitHub release's notes).
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$")


def package_version() -> str:
    text = (REPO / "daemon" / "secretsync" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise SystemExit("daemon/secretsync/__init__.py: no __version__ line")
    return found.group(1)


def changelog_entries() -> list[tuple[str, str | None, list[str]]]:
    """(version, date, body lines) of every ``## [...]`` entry, newest first."""
    entries: list[tuple[str, str | None, list[str]]] = []
    for line in (REPO / "CHANGELOG.md").read_text(encoding="utf-8").splitlines():
        found = ENTRY.match(line)
        if found:
            entries.append((found.group("version"), found.group("date"), []))
        elif entries:
            if line.startswith("[") and "]: " in line:  # link references at the end
                continue
            entries[-1][2].append(line)
    return entries


def check(tag: str) -> list[str]:
    """Every disagreement between ``tag``, the package and the CHANGELOG (empty: none)."""
    problems = []
    if not re.fullmatch(r"v\d+\.\d+\.\d+", tag):
        problems.append(f"tag {tag!r}: expected vX.Y.Z")
    version = package_version()
    if tag != f"v{version}":
        problems.append(f"tag {tag} but the package is version {version}")
    released = [(v, d) for v, d, _ in changelog_entries() if v != "Unreleased"]
    if not released:
        problems.append("CHANGELOG.md has no released entry")
    else:
        newest, date = released[0]
        if newest != version:
            problems.append(f"CHANGELOG.md's newest entry is {newest}, the package is {version}")
        if date is None:
            problems.append(f"CHANGELOG.md: the {newest} entry has no date")
    return problems


def notes(version: str) -> str:
    for entry, _date, body in changelog_entries():
        if entry == version:
            return "\n".join(body).strip() + "\n"
    raise SystemExit(f"CHANGELOG.md has no entry {version}")


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[0])
    for problem in problems:
        print(f"release: {problem}", file=sys.stderr)
    if problems:
        return 1
    if "--notes" in argv[1:]:
        sys.stdout.write(notes(argv[0][1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
