"""A slow `command` target: ``slow_cmd.py RECORD WATCHED SECONDS``.

Appends one JSON line ``{"content": <WATCHED's text>, "changed": …}`` to RECORD
when it starts, then takes SECONDS to finish (a JVM restart, say).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    record, watched, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    line = {"content": watched.read_text(), "changed": os.environ.get("SECRETSYNC_CHANGED_FILES")}
    with open(record, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    time.sleep(seconds)  # the slow part of the target, not a wait in a test
    return 0


if __name__ == "__main__":
    sys.exit(main())
