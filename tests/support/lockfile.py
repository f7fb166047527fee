"""Read requirements.lock and walk pyproject's runtime dependencies through it.

The lock is the output of ``make lock`` (``uv pip compile --generate-hashes``):
one ``name==version`` requirement per entry, its ``--hash=sha256:…`` options
on continuation lines, then ``# via …`` comments naming what needs it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")

# The image: CPython 3.11 on Debian bookworm, x86_64 and aarch64.
IMAGE_ENVIRONMENTS: tuple[dict[str, str], ...] = tuple(
    {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": "3.11.11",
        "implementation_version": "3.11.11",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "extra": "",
    }
    for machine in ("x86_64", "aarch64")
)


@dataclass(frozen=True)
class Pin:
    """One locked requirement: canonical name, exact version, hashes, who needs it."""

    name: str
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]
    text: str


def parse_lock(text: str) -> tuple[list[Pin], list[str]]:
    """Split a lock into its pins and any other non-comment lines (options such as
    ``--index-url``, unpinned requirements); the caller decides what is allowed.

    A requirement line without ``==`` is returned among the other lines, never as a
    pin. ``# via`` comments (one line, or a ``# via`` line followed by ``#   name``
    lines) are attached to the requirement above them.
    """
    entries: list[list[str]] = []  # [requirement text, comment lines...]
    other: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if line.startswith((" ", "\t")) and entries and not pending:
                entries[-1].append(line.strip())
            continue
        pending = f"{pending} {line.rstrip(chr(92)).strip()}" if pending else line.rstrip("\\")
        if line.endswith("\\"):
            continue
        entries.append([pending.strip()])
        pending = ""
    pins: list[Pin] = []
    for requirement, *comments in entries:
        match = _PIN.match(requirement)
        if match is None:
            other.append(requirement)
            continue
        via: list[str] = []
        for comment in comments:
            body = comment.lstrip("#").strip()
            if body.startswith("via"):
                body = body.removeprefix("via").strip()
            if body:
                via.append(body)
        pins.append(
            Pin(
                name=canonicalize_name(match["name"]),
                version=match["version"],
                hashes=tuple(m["digest"] for m in _HASH.finditer(requirement)),
                via=tuple(via),
                text=requirement,
            )
        )
    return pins, other


def project_dependencies(pyproject: Path) -> list[Requirement]:
    """pyproject's ``[project] dependencies`` (the runtime ones, no extras)."""
    data = tomllib.loads(pyproject.read_text())
    return [Requirement(spec) for spec in data["project"]["dependencies"]]


def applies(
    requirement: Requirement, environments: Iterable[dict[str, str]], extras: Iterable[str] = ()
) -> bool:
    """True if the requirement's marker (if any) holds in at least one environment,
    with no extra or with one of ``extras`` (those requested of the package that
    declares the requirement)."""
    if requirement.marker is None:
        return True
    wanted = ["", *extras]
    return any(
        requirement.marker.evaluate({**env, "extra": extra})
        for env in environments
        for extra in wanted
    )


def installed_requirements(name: str, version: str) -> list[Requirement] | None:
    """Requires-Dist of the installed distribution ``name`` if it is exactly
    ``version``; None when it is not installed or installed at another version
    (its metadata then says nothing certain about the locked one)."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    return [Requirement(spec) for spec in dist.requires or []]


def runtime_closure(direct: list[Requirement], pins: dict[str, Pin]) -> tuple[set[str], set[str]]:
    """Walk from ``direct`` through each locked package's installed metadata, with
    the image's markers and the extras each package is asked for (``aioboto3``
    needs ``aiobotocore[boto3]``). Returns (names reached, names whose edges could
    not be followed because this venv has another version or none)."""
    reached: set[str] = set()
    unexpanded: set[str] = set()
    seen: set[tuple[str, str]] = set()  # (package, extra or "")
    todo = [req for req in direct if applies(req, IMAGE_ENVIRONMENTS)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        new_extras = {e for e in ("", *req.extras) if (name, e) not in seen}
        if not new_extras:
            continue
        seen.update((name, e) for e in new_extras)
        reached.add(name)
        pin = pins.get(name)
        if pin is None:
            continue
        children = installed_requirements(name, pin.version)
        if children is None:
            unexpanded.add(name)
            continue
        extras = sorted(e for e in new_extras if e)
        todo.extend(c for c in children if applies(c, IMAGE_ENVIRONMENTS, extras))
    return reached, unexpanded
