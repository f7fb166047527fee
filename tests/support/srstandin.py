"""A Schema Registry stand-in on 127.0.0.1: basic auth checked against a set the test changes.

``GET /subjects`` answers 200 ``[]`` to a request whose ``Authorization: Basic`` header is
one of the valid ``user:password`` pairs now, and 401 (with Schema Registry's error body)
to any other. It counts the requests each user made with a valid password, and the 401s.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SchemaRegistryStandIn:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._valid: set[str] = set()
        self.ok_by_user: Counter[str] = Counter()
        self.unauthorized = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                user = standin._check(self.headers.get("Authorization", ""))
                if user is None:
                    body = b'{"error_code":401,"message":"Unauthorized"}'
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="SchemaRegistry"')
                else:
                    body = b"[]"
                    self.send_response(200)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads the counters

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _check(self, header: str) -> str | None:
        scheme, _, token = header.partition(" ")
        try:
            user_info = base64.b64decode(token, validate=True).decode() if scheme == "Basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            user_info = ""
        with self._lock:
            if user_info in self._valid:
                user = user_info.partition(":")[0]
                self.ok_by_user[user] += 1
                return user
            self.unauthorized += 1
            return None

    def set_valid(self, *user_infos: str) -> None:
        """Exactly these ``user:password`` pairs are valid from now on."""
        with self._lock:
            self._valid = set(user_infos)

    def ok(self, user: str) -> int:
        with self._lock:
            return self.ok_by_user[user]

    def start(self) -> SchemaRegistryStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
