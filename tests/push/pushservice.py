"""A test push service (RFC 8030's role) on loopback, and a browser-side subscription.

``PushService`` is a real HTTP server in a thread that records every POST and answers with
the statuses queued in ``answers`` (201 once they run out). ``ClientKeys`` is what a user
agent holds: the P-256 key pair and auth secret whose public half goes in ``keys``; it
decrypts RFC 8291 aes128gcm bodies with http_ece.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


class PushService:
    def __init__(self) -> None:
        self.received: queue.Queue[Push] = queue.Queue()
        self.answers: list[int] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                service.received.put(Push(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = service.answers.pop(0) if service.answers else 201
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def next(self, timeout: float = 15) -> Push:
        return self.received.get(timeout=timeout)

    def nothing(self, timeout: float) -> bool:
        try:
            self.received.get(timeout=timeout)
        except queue.Empty:
            return True
        return False

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ClientKeys:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def as_jmap(self) -> dict[str, str]:
        public = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.private, auth_secret=self.auth, version="aes128gcm")
