"""Run a command in a private mount namespace (util-linux `unshare`).

Skipped locally when unavailable (not root, no util-linux, a sandbox that
forbids namespaces); a failure when CI is set, so CI cannot silently lose the
read-only filesystem tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn

from tests.support.require import unavailable

# tempfile tries $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp, then the cwd:
# make every one of them read-only (or unset it)
READ_ONLY_TEMP_DIRS = ("/tmp", "/var/tmp", "/usr/tmp")
TEMP_VARIABLES = ("TMPDIR", "TEMP", "TMP")


def _unavailable(why: str) -> NoReturn:
    unavailable(why, "run the tests as root with util-linux installed")


def require_unshare() -> str:
    """Path of `unshare` once it has proven it can make a private mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        _unavailable("`unshare` (util-linux) is not installed")
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        _unavailable(f"`unshare --mount` failed: {probe.stderr.strip() or probe.returncode}")
    return unshare


def without_temp_dirs(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run ``argv`` where no temp directory is writable.

    In a private mount namespace every directory of READ_ONLY_TEMP_DIRS that
    exists is bind-mounted read-only onto itself, the working directory is /tmp
    (now read-only) and TMPDIR, TEMP and TMP are unset. The host is not affected.
    Read-only rather than hidden: what already lives there (a checkout and its
    venv cloned under /tmp, as CI may do) stays readable, as on a read-only root.
    """
    unshare = require_unshare()
    script = (
        "set -e\n"
        f"for d in {' '.join(READ_ONLY_TEMP_DIRS)}; do\n"
        '  if [ -d "$d" ]; then mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; fi\n'
        "done\n"
        "cd /tmp\n"
        'exec "$@"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in TEMP_VARIABLES}
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv], env
