"""Source env files the way a consumer does (``set -a; . FILE``) and read the result.

All files are read by ONE shell process: each is sourced in its own subshell,
which then prints its environment with ``env -0`` (NUL-separated, so values
with newlines survive). The shell starts with an empty environment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

_MARK = b"\x1e"  # a record without "=": never an environment entry
_SCRIPT = r"""
for f; do
    printf '\036\0'
    ( set -a; . "$f" && /usr/bin/env -0 )
done
"""


def _parse(records: list[bytes]) -> dict[str, str]:
    env: dict[str, str] = {}
    for record in records:
        name, sep, value = record.partition(b"=")
        assert sep, f"not an environment entry: {record[:80]!r}"
        env[name.decode()] = value.decode()
    return env


def source_env_files(shell: str, paths: Sequence[Path], workdir: Path) -> list[dict[str, str]]:
    """The environment after sourcing each file in ``shell``, minus what the shell adds itself.

    Variables the shell sets on its own (``PWD``, ``SHLVL``, ``_``…) are learned
    from an empty file and dropped unless a file changed them. Fails if the
    shell writes anything on stderr (a syntax error, a refused assignment).
    """
    empty = workdir / "empty.env"
    empty.write_bytes(b"")
    result = subprocess.run(
        [shell, "-c", _SCRIPT, shell, str(empty), *map(str, paths)],
        capture_output=True,
        env={},
        cwd=workdir,
        timeout=120,
        check=True,
    )
    assert result.stderr == b"", result.stderr.decode(errors="replace")[:2000]
    chunks: list[list[bytes]] = []
    for record in result.stdout.split(b"\0")[:-1]:
        if record == _MARK:
            chunks.append([])
        else:
            chunks[-1].append(record)
    assert len(chunks) == len(paths) + 1, f"{shell} read {len(chunks) - 1} of {len(paths)} files"
    baseline = _parse(chunks[0])
    out = []
    for chunk in chunks[1:]:
        env = _parse(chunk)
        out.append({k: v for k, v in env.items() if baseline.get(k) != v})
    return out
