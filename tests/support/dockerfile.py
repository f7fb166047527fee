"""Read what a Dockerfile's shell-form RUN instructions do to directories."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class MadeDir:
    """A directory made by ``install -d``: owner, group and mode as written (None if
    not given, which means root and 0755)."""

    path: str
    owner: str | None
    group: str | None
    mode: str | None


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN's shell line, split at ``&&``, ``||`` and ``;``."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [cmd for cmd in commands if cmd]


def install_dirs(run: str) -> list[MadeDir]:
    """Every directory ``install -d`` makes in a RUN, with its -o/-g/-m (also in
    the ``--owner=``/``--group=``/``--mode=`` forms)."""
    made: list[MadeDir] = []
    for cmd in shell_commands(run):
        if cmd[0] != "install" or not ({"-d", "--directory"} & set(cmd)):
            continue
        opts: dict[str, str] = {}
        paths: list[str] = []
        args = iter(cmd[1:])
        for arg in args:
            if arg in {"-o", "-g", "-m"}:
                opts[arg[1]] = next(args)
            elif arg.startswith(("--owner=", "--group=", "--mode=")):
                key, _, value = arg.partition("=")
                opts[key[2]] = value
            elif not arg.startswith("-"):
                paths.append(arg)
        made.extend(MadeDir(p, opts.get("o"), opts.get("g"), opts.get("m")) for p in paths)
    return made
