"""The demo's local Secrets Manager: moto's server in a child process, spoken to over HTTP.

The demo only creates and rotates two secrets, so it speaks the Secrets
Manager JSON protocol itself (``X-Amz-Target``, a JSON body, and an
``Authorization`` header whose credential scope names the region and the
service, which is how the emulator routes a request; it does not check the
signature) rather than importing an AWS SDK: ``secretsync demo``
stays light, and only the daemon it starts loads the AWS stack. Loopback only.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 10.0


class EmulatorError(Exception):
    """The emulator refused a call; the message names the action and its error code."""

    safe_message = True


def available() -> bool:
    """True when moto (the ``demo`` extra) is installed."""
    try:
        return importlib.util.find_spec("moto") is not None
    except ValueError:  # sys.modules["moto"] is None: made unimportable on purpose
        return False


def command(port: int) -> list[str]:
    """The ``python`` arguments that run the emulator on 127.0.0.1:``port``."""
    return ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def answers(endpoint: str) -> bool:
    """True once the emulator answers HTTP."""
    try:
        with _opener().open(endpoint + "/moto-api/", timeout=1):
            return True
    except OSError:
        return False


def call(
    endpoint: str, action: str, payload: dict[str, Any], *, region: str = "us-east-1"
) -> dict[str, Any]:
    """One Secrets Manager call (``CreateSecret``, ``PutSecretValue``, …); its JSON answer.

    Raises EmulatorError when the emulator answers with an error.
    """
    scope = f"demo/20260101/{region}/secretsmanager/aws4_request"
    auth = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"
    request = urllib.request.Request(  # noqa: S310 (http, loopback)
        endpoint + "/",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "X-Amz-Target": f"secretsmanager.{action}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": auth,
        },
    )
    try:
        with _opener().open(request, timeout=TIMEOUT_S) as resp:
            answer: dict[str, Any] = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read(2048)
        exc.close()
        try:
            code = str(json.loads(body).get("__type", exc.code))
        except ValueError:
            code = str(exc.code)
        raise EmulatorError(f"{action}: {code}") from None
    return answer
