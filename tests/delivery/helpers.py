"""Helpers for the delivery tests: messages, scripts, a loopback SMTP sink."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP

from accounts.models import Account
from groupware.core.blobs import blob_id, blob_store
from groupware.mail.delivery.models import SieveScript
from groupware.mail.models import Email, Mailbox
from groupware.mail.services.sieve_scripts import sieve_script_activate, sieve_script_create


def raw_message(
    *,
    subject: str = "Hello",
    message_id: str = "<m1@example.net>",
    from_: str = "Joe <joe@example.net>",
    to: str = "alice@example.com",
    body: str = "Hello there.\r\n",
    extra: str = "",
) -> bytes:
    head = f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
    head += "Date: Sun, 13 Oct 2013 14:12:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return (head + extra + "\r\n" + body).encode()


def activate_script(account: Account, text: str, name: str = "main") -> SieveScript:
    stored = blob_store(account=account, stream_or_bytes=text.encode(), type="application/sieve")
    script = sieve_script_create(account=account, name=name, blob=blob_id(stored.blob_id))
    sieve_script_activate(account=account, script=script)
    return script


def emails_in(account: Account, role_or_name: str) -> list[Email]:
    box = Mailbox.objects.filter(account=account, role=role_or_name).first() or Mailbox.objects.get(
        account=account, name=role_or_name
    )
    return list(Email.objects.filter(account=account, memberships__mailbox=box).order_by("pk"))


@dataclass
class Sink:
    """Messages an SMTP server on loopback received (for vacation replies and redirects)."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        self.arrived.set()
        return "250 OK"


class LoopThread:
    """An asyncio loop in a daemon thread, for servers the tests talk to over sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_sink() -> tuple[LoopThread, int, Sink]:
    """An SMTP sink on a free loopback port: (its loop, the port, what it received)."""
    sink = Sink()
    runner = LoopThread()

    async def start():
        server = await runner.loop.create_server(lambda: SMTP(sink, hostname="sink"), "127.0.0.1", 0)
        return server.sockets[0].getsockname()[1]

    return runner, runner.run(start()), sink
