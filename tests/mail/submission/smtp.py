"""Real SMTP servers on loopback (aiosmtpd) for the relay tests: a sink that keeps what
arrives, one that answers 4xx before 2xx, one that answers 5xx."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.interop.server import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as received, after the server undid the dot-stuffing


@dataclass
class Behaviour:
    """How the server answers RCPT TO: a number of 451s first, or always 550."""

    temporary_failures: int = 0
    reject: set[str] = field(default_factory=set)
    data_reply: str | None = None


class RecordingHandler:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.messages: list[Received] = []
        self.rcpt_attempts = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_attempts += 1
            attempt = self.rcpt_attempts
        if address.lower() in self.behaviour.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if attempt <= self.behaviour.temporary_failures:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.behaviour.data_reply:
            return self.behaviour.data_reply
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"


class SmtpServer:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.handler = RecordingHandler(behaviour or Behaviour())
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
