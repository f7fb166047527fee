"""TLS and basic auth for the metrics server (``metrics.web_config``), exporter-toolkit style.

:class:`TlsFiles` turns ``tls_server_config`` into an :class:`ssl.SSLContext`
and builds a new one when the certificate, key or client CA file changes
(checked at most once a second, when a connection arrives): a renewed
certificate is served without a restart, and a broken renewal keeps the
last good context (logged once per change as ``tls_reload_failed``).

:class:`BasicAuth` checks ``Authorization: Basic`` against bcrypt hashes off
the event loop, one check at a time (a cost-10 hash is ~0.1 s of CPU), and
remembers the credentials that matched, so a scraper costs one bcrypt per
password, not one per scrape. Unknown users cost a bcrypt too (no timing
difference tells which users exist).

:class:`WebSecurity` decides per request: the ``open_paths`` need nothing;
every other path needs the credentials of a configured user when
``basic_auth_users`` is set, and a verified client certificate (whose SANs
match ``client_allowed_sans`` when given) when ``client_auth_type`` is
``RequireAndVerifyClientCert``. So that the kubelet's probes (which have no
certificate) still reach the open paths, a connection without a certificate
is let through the handshake when some paths are open; with
``open_paths: []`` it is refused in the handshake, as exporter-toolkit does.
Nothing here logs a credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bcrypt

from secretsync import logs
from secretsync.config.sections import MetricsConfig, TlsServerConfig

TLS_CHECK_INTERVAL_S = 1.0  # how often a new connection may stat the certificate files
AUTH_CACHE_SIZE = 64  # credentials that matched, remembered (as digests)
REALM = 'Basic realm="secretsync", charset="UTF-8"'
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


class TlsError(Exception):
    """The TLS files cannot be loaded (``str()`` names the field and the reason, no content)."""


@dataclass(frozen=True)
class Denied:
    """Why a request is refused: the HTTP status, a fixed text and extra headers."""

    status: int
    text: str
    headers: Mapping[str, str]


def _signature(paths: Sequence[str]) -> tuple[tuple[int, int, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((-1, -1, -1, -1))
        else:
            out.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class TlsFiles:
    """The server's TLS context from ``tls_server_config``, rebuilt when its files change.

    ``optional_client_cert``: ask for a client certificate and verify it when
    given, but let a connection without one through the handshake (the
    request is then refused on the paths that need one).
    """

    def __init__(
        self,
        config: TlsServerConfig,
        *,
        optional_client_cert: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._optional = optional_client_cert
        self._clock = clock
        self._files = [str(config.cert_file), str(config.key_file)]
        if config.client_ca_file is not None:
            self._files.append(str(config.client_ca_file))
        self._context: ssl.SSLContext | None = None
        self._loaded: tuple[tuple[int, int, int, int], ...] | None = None
        self._failed: tuple[tuple[int, int, int, int], ...] | None = None
        self._checked_at = -float("inf")
        self.reloads = 0

    def load(self) -> ssl.SSLContext:
        """Build the context now; raises TlsError when a file cannot be used."""
        signature = _signature(self._files)
        self._context = self._build()
        self._loaded, self._checked_at = signature, self._clock()
        return self._context

    def context(self) -> ssl.SSLContext:
        """The current context; rebuilt first when a file changed since it was built.

        A change that cannot be loaded (a certificate without its new key yet,
        a half-written file) keeps the previous context and is logged once;
        the next change is tried again.
        """
        if self._context is None:
            return self.load()
        now = self._clock()
        if now - self._checked_at < TLS_CHECK_INTERVAL_S:
            return self._context
        self._checked_at = now
        signature = _signature(self._files)
        if signature in (self._loaded, self._failed):
            return self._context
        try:
            self._context = self._build()
        except TlsError as exc:
            self._failed = signature
            logs.get_logger().warning("tls_reload_failed", error=str(exc), kept="previous")
            return self._context
        self._loaded, self._failed = signature, None
        self.reloads += 1
        logs.get_logger().info("tls_reloaded", cert_file=self._files[0])
        return self._context

    def _build(self) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _VERSIONS[cfg.min_version]
        ctx.maximum_version = _VERSIONS[cfg.max_version]
        ctx.set_alpn_protocols(["http/1.1"])
        where = "metrics.web_config.tls_server_config"
        try:
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
        except (OSError, ValueError) as exc:
            raise TlsError(
                f"{where}: cannot use cert_file {cfg.cert_file} with key_file {cfg.key_file}: "
                f"{_reason(exc)}"
            ) from None
        if cfg.client_auth_type == "NoClientCert":
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            ctx.load_verify_locations(cafile=str(cfg.client_ca_file))
        except (OSError, ValueError) as exc:
            raise TlsError(
                f"{where}: cannot use client_ca_file {cfg.client_ca_file}: {_reason(exc)}"
            ) from None
        required = cfg.client_auth_type == "RequireAndVerifyClientCert" and not self._optional
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
        return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason) if exc.reason else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class BasicAuth:
    """``Authorization: Basic`` against ``users`` (name → bcrypt hash)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {name: digest.encode() for name, digest in users.items()}
        self._decoy = next(iter(self._users.values()))  # an unknown user costs a bcrypt too
        self._matched: OrderedDict[bytes, None] = OrderedDict()
        self._one_at_a_time = asyncio.Semaphore(1)
        self.checks = 0  # bcrypt computations (not answered from memory)

    async def allows(self, header: str | None) -> bool:
        """True when ``header`` carries the password of a configured user."""
        credentials = _parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        stored = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password, stored or b""))).digest()
        if stored is not None and key in self._matched:
            self._matched.move_to_end(key)
            return True
        async with self._one_at_a_time:
            self.checks += 1
            ok = await asyncio.to_thread(_checkpw, password, stored or self._decoy)
        if not (ok and stored is not None):
            return False
        self._matched[key] = None
        while len(self._matched) > AUTH_CACHE_SIZE:
            self._matched.popitem(last=False)
        return True


def _checkpw(password: bytes, stored: bytes) -> bool:
    try:
        return bool(bcrypt.checkpw(password, stored))
    except ValueError:  # bcrypt refuses passwords over 72 bytes
        return False


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _sans(peercert: Mapping[str, Any]) -> set[str]:
    return {str(value) for _kind, value in peercert.get("subjectAltName", ())}


class WebSecurity:
    """What ``metrics.web_config`` and ``metrics.open_paths`` require of each request."""

    def __init__(self, config: MetricsConfig) -> None:
        web = config.web_config
        self.open_paths = frozenset(config.open_paths)
        tls = web.tls_server_config
        self.client_cert_required = (
            tls is not None and tls.client_auth_type == "RequireAndVerifyClientCert"
        )
        self.allowed_sans = (
            frozenset(tls.client_allowed_sans) if tls and tls.client_allowed_sans else None
        )
        self.tls = (
            None
            if tls is None
            else TlsFiles(
                tls, optional_client_cert=self.client_cert_required and bool(self.open_paths)
            )
        )
        self.auth = BasicAuth(web.basic_auth_users) if web.basic_auth_users else None

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    def tls_context(self) -> ssl.SSLContext | None:
        """The context for a new connection (None: plain HTTP)."""
        return None if self.tls is None else self.tls.context()

    async def check(
        self, path: str, authorization: str | None, peercert: Mapping[str, Any] | None
    ) -> Denied | None:
        """None when the request may be answered, else why not (403 or 401)."""
        if path in self.open_paths:
            return None
        if self.client_cert_required:
            if not peercert:
                return Denied(403, "a client certificate is required", {})
            if self.allowed_sans is not None and not (_sans(peercert) & self.allowed_sans):
                return Denied(403, "the client certificate is not allowed", {})
        if self.auth is not None and not await self.auth.allows(authorization):
            return Denied(401, "unauthorized", {"WWW-Authenticate": REALM})
        return None


def web_security(config: MetricsConfig) -> WebSecurity | None:
    """The :class:`WebSecurity` of ``config``; None when it asks for neither TLS nor auth."""
    return WebSecurity(config) if config.secured else None
