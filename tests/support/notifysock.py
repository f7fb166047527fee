"""A real sd_notify receiver: a bound SOCK_DGRAM unix socket, like systemd's."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Message:
    fields: dict[str, str]
    received_at: float  # monotonic
    extra: object = None  # whatever the on_receive callback returned at arrival


class NotifySocket:
    """Bind a datagram socket at a short filesystem path or an abstract ``@name``.

    ``address`` is what goes into ``NOTIFY_SOCKET``. :meth:`poll` drains what has
    arrived; ``on_receive`` is called for each message as it is drained (e.g. to
    record whether the output files existed at that moment).
    """

    def __init__(self, *, abstract: bool = False) -> None:
        self.messages: list[Message] = []
        self.on_receive: Callable[[dict[str, str]], object] | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: Path | None = None
        if abstract:
            name = f"secretsync-test-{uuid.uuid4().hex}"
            self._sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # sun_path is 108 bytes at most: pytest's tmp_path can be longer
            self._dir = Path(tempfile.mkdtemp(prefix="ssn-", dir="/tmp"))
            path = self._dir / "notify.sock"
            self._sock.bind(str(path))
            self.address = str(path)
        self._sock.setblocking(False)

    def poll(self) -> list[Message]:
        """Receive everything queued now; return every message so far."""
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            extra = self.on_receive(fields) if self.on_receive else None
            self.messages.append(Message(fields, time.monotonic(), extra))

    def with_field(self, key: str, value: str | None = None) -> list[Message]:
        return [
            m for m in self.poll() if key in m.fields and (value is None or m.fields[key] == value)
        ]

    def recv_within(self, timeout_s: float) -> dict[str, str] | None:
        """Block up to ``timeout_s`` for one new message; None if none came."""
        self._sock.settimeout(timeout_s)
        try:
            data = self._sock.recv(4096)
        except TimeoutError:
            return None
        finally:
            self._sock.setblocking(False)
        return dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)

    def close(self) -> None:
        self._sock.close()
        if self._dir is not None:
            for child in self._dir.iterdir():
                child.unlink()
            os.rmdir(self._dir)
