"""The client side of ``/healthz`` and ``/status`` (``secretsync health``, ``status``).

Standard library only: the health check runs as a container HEALTHCHECK every
few seconds and must start fast, without the metrics or HTTP libraries.

Against a server with ``metrics.web_config`` (see :class:`ClientOptions`): HTTPS
trusting either a CA bundle (hostname checked) or exactly the server's own
certificate file from the config (the daemon on this host; no hostname
check), an optional client certificate, and basic-auth credentials.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from secretsync.serve.address import split_listen, url_host

DEFAULT_HEALTH_URL = "http://127.0.0.1:9464/healthz"


@dataclass(frozen=True)
class ClientOptions:
    """How to reach a server with TLS or auth. ``cafile``: CA bundle the server's
    certificate must chain to (hostname checked). ``pinned``: a certificate file
    trusted as it is (the server's own ``cert_file``; no hostname check, as the
    URL names 127.0.0.1). ``certfile``/``keyfile``: a client certificate.
    ``user``/``password``: basic auth (sent only over HTTPS or to loopback)."""

    cafile: str | None = None
    pinned: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    user: str | None = None
    password: str | None = None

    def context(self) -> ssl.SSLContext:
        """The client TLS context (raises OSError/ssl.SSLError for unusable files)."""
        if self.cafile is not None or self.pinned is None:
            ctx = ssl.create_default_context(cafile=self.cafile)
        else:
            ctx = ssl.create_default_context(cafile=self.pinned)
            ctx.check_hostname = False  # the pin is the certificate itself, not a name
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf may be the anchor
        if self.certfile is not None:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx


def health_url(listen: str | None, *, https: bool = False) -> str:
    """The /healthz URL for a ``metrics.listen`` value; the default when it is None."""
    if listen is None:
        return DEFAULT_HEALTH_URL
    host, port = split_listen(listen)
    return f"{'https' if https else 'http'}://{url_host(host)}:{port}/healthz"


def _open(url: str, options: ClientOptions, timeout_s: float) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=options.context()))
    request = urllib.request.Request(url)  # noqa: S310 (the scheme is checked above)
    loopback = url.startswith(("http://127.", "http://[::1]", "http://localhost"))
    if options.user is not None and (url.startswith("https:") or loopback):
        pair = f"{options.user}:{options.password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return urllib.request.build_opener(*handlers).open(request, timeout=timeout_s)


def _refused(url: str, code: int) -> str:
    if code == 401:
        return (
            f"{url}: HTTP 401: credentials needed (--user or $SECRETSYNC_USER, "
            "and $SECRETSYNC_PASSWORD)"
        )
    if code == 403:
        return f"{url}: HTTP 403: a client certificate is needed (--cert and --key)"
    return f"{url}: HTTP {code}"


def check_health(
    url: str, timeout_s: float = 3.0, options: ClientOptions | None = None
) -> tuple[bool, str]:
    """GET ``url``: (True, summary) on HTTP 200, else (False, reason). Never raises for I/O.

    Proxies from the environment are ignored: this always talks to a local daemon.
    """
    try:
        with _open(url, options or ClientOptions(), timeout_s) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # refused, timeout, bad URL
        reason = getattr(exc, "reason", None) or exc
        return False, f"{url}: unreachable: {reason}"
    if status == 200:
        return True, f"{url}: healthy (200)"
    if status in (401, 403):
        return False, _refused(url, status)
    return False, f"{url}: unhealthy ({status})"


def status_url(listen: str | None, *, https: bool = False) -> str:
    """The /status URL for a ``metrics.listen`` value; the default port when it is None."""
    return health_url(listen, https=https).removesuffix("/healthz") + "/status"


def fetch_json(
    url: str, timeout_s: float = 5.0, options: ClientOptions | None = None
) -> tuple[dict[str, object] | None, str]:
    """GET ``url`` and parse its JSON body: (document, "") or (None, reason). Never raises for I/O.

    Proxies from the environment are ignored: this always talks to a local daemon.
    """
    try:
        with _open(url, options or ClientOptions(), timeout_s) as resp:
            body = resp.read(4 * 1024 * 1024)
    except urllib.error.HTTPError as exc:
        exc.close()
        return None, _refused(url, exc.code)
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
