"""The process environment every test (and every daemon it starts) runs in.

Dummy AWS credentials and region, no profile, no proxy, no instance metadata: nothing
reads a real AWS account, and every AWS call goes to the loopback endpoint a test names.
"""

from __future__ import annotations

import os

from tests.support.seeds import REGION

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

REMOVED = (
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "SECRETSYNC_LOG_LEVEL",
    "SECRETSYNC_LOG_FORMAT",
)


def isolate() -> None:
    """Set :data:`TEST_ENV` in ``os.environ`` and remove :data:`REMOVED` (idempotent)."""
    os.environ.update(TEST_ENV)
    for name in REMOVED:
        os.environ.pop(name, None)
