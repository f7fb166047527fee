"""The client side of ``/healthz`` (``secretsync health``) and the address helpers it needs.

Standard library only: the health check runs as a container HEALTHCHECK every
few seconds and must start fast, without the metrics or HTTP libraries.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

DEFAULT_HEALTH_URL = "http://127.0.0.1:9464/healthz"


def split_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` → (host, port); ``"[::1]:9464"`` → ("::1", 9464); empty host = all."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def url_host(host: str) -> str:
    """A host as written in a URL for a local client: wildcards become loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def health_url(listen: str | None) -> str:
    """The /healthz URL for a ``metrics.listen`` value; the default when it is None."""
    if listen is None:
        return DEFAULT_HEALTH_URL
    host, port = split_listen(listen)
    return f"http://{url_host(host)}:{port}/healthz"


def check_health(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """GET ``url``: (True, summary) on HTTP 200, else (False, reason). Never raises for I/O.

    Proxies from the environment are ignored: this always talks to a local daemon.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # refused, timeout, bad URL
        reason = getattr(exc, "reason", None) or exc
        return False, f"{url}: unreachable: {reason}"
    if status == 200:
        return True, f"{url}: healthy (200)"
    return False, f"{url}: unhealthy ({status})"


def status_url(listen: str | None) -> str:
    """The /status URL for a ``metrics.listen`` value; the default port when it is None."""
    return health_url(listen).removesuffix("/healthz") + "/status"


def fetch_json(url: str, timeout_s: float = 5.0) -> tuple[dict[str, object] | None, str]:
    """GET ``url`` and parse its JSON body: (document, "") or (None, reason). Never raises for I/O.

    Proxies from the environment are ignored: this always talks to a local daemon.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            body = resp.read(4 * 1024 * 1024)
    except urllib.error.HTTPError as exc:
        exc.close()
        return None, f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, f"{url}: unreachable: {reason}"
    try:
        document = json.loads(body)
    except ValueError:
        return None, f"{url}: the answer is not JSON"
    if not isinstance(document, dict):
        return None, f"{url}: the answer is not a JSON object"
    return document, ""
