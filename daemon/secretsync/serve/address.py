"""``metrics.listen`` addresses: parsed for the server, written as URLs for local clients. Pure."""

from __future__ import annotations


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
