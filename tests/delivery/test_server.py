"""The LMTP and SMTP listeners over real loopback sockets, driven by smtplib and by a raw
socket where smtplib can't read LMTP's per-recipient replies."""

from __future__ import annotations

import asyncio
import smtplib
import socket

import pytest
from django.test import override_settings

from accounts.models import Account
from accounts.services import user_create
from groupware.mail.delivery.models import OutboundMessage
from groupware.mail.delivery.server import serve_mail
from groupware.mail.models import Email
from groupware.mail.services.mailboxes import mailbox_create
from groupware.mail.tasks import send_outbound
from tests.delivery.helpers import LoopThread, activate_script, emails_in, raw_message, start_sink

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account(user) -> Account:
    return Account.objects.get(owner=user, is_personal=True)


@pytest.fixture
def server():
    runner = LoopThread()
    stop = asyncio.Event()
    ports: dict[str, int] = {}

    async def start() -> None:
        ready = asyncio.Event()

        def started(listeners):
            ports.update({listener.protocol: listener.port for listener in listeners})
            ready.set()

        runner.loop.create_task(
            serve_mail(lmtp=("127.0.0.1", 0), smtp=("127.0.0.1", 0), threads=2, started=started, stop=stop)
        )
        await ready.wait()

    runner.run(start())
    yield ports

    async def finish() -> None:
        stop.set()
        await asyncio.sleep(0)
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            try:
                await asyncio.wait_for(task, 15)
            except (asyncio.CancelledError, TimeoutError):
                pass

    runner.run(finish())
    runner.stop()


class LineClient:
    """A raw LMTP/SMTP conversation: send lines, read replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def test_lmtp_with_smtplib_lands_where_the_script_says(server, account):
    mailbox_create(account=account, name="Invoices")
    activate_script(
        account, 'require "fileinto";\r\nif address :is "from" "billing@shop.example" { fileinto "Invoices"; }\r\n'
    )
    invoice = raw_message(from_="billing@shop.example", message_id="<i1@x>")
    with smtplib.LMTP("127.0.0.1", server["LMTP"]) as client:
        refused = client.sendmail("billing@shop.example", ["alice@example.com"], invoice)
        assert refused == {}
        client.sendmail("joe@example.net", ["alice@example.com"], raw_message(message_id="<i2@x>"))
    assert [e.subject for e in emails_in(account, "Invoices")] == ["Hello"]
    assert len(emails_in(account, "inbox")) == 1


def test_lmtp_answers_each_recipient_after_data(server, account):
    user_create(email="carol@example.com", password="x" * 12)
    client = LineClient(server["LMTP"])
    assert client.command("LHLO client.example").startswith("250")
    assert client.command("MAIL FROM:<joe@example.net>").startswith("250")
    assert client.command("RCPT TO:<alice@example.com>").startswith("250")
    assert client.command("RCPT TO:<nobody@example.com>").startswith("550 5.1.1")
    assert client.command("RCPT TO:<carol@example.com>").startswith("250")
    assert client.command("DATA").startswith("354")
    client.send(raw_message(message_id="<l1@x>", body="..leading dot\r\n") + b".\r\n")
    first, second = client.reply(), client.reply()
    assert first.startswith("250 2.0.0") and second.startswith("250 2.0.0")
    assert client.command("QUIT").startswith("221")
    client.close()
    [email] = emails_in(account, "inbox")
    from groupware.mail.services.emails import email_raw

    assert email_raw(email).endswith(b"\r\n.leading dot\r\n")  # dot-stuffing undone
    assert Email.objects.filter(account__owner__email="carol@example.com").count() == 1


def test_lmtp_data_read_in_blocks_with_commands_pipelined_after_it(server, account):
    """RFC 2920: the end of the data and the next commands in one send. The data is read
    in blocks: the commands after it are answered in turn, after the delivery's reply."""
    client = LineClient(server["LMTP"])
    client.command("LHLO client.example")
    client.send(b"MAIL FROM:<joe@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    assert [client.reply()[:3] for _ in range(3)] == ["250", "250", "354"]
    body = "".join(f".line {index}\r\n" for index in range(2000))  # every line dot-stuffed
    stuffed = raw_message(message_id="<p1@x>", body=body).replace(b"\r\n.", b"\r\n..")
    client.send(stuffed + b".\r\nNOOP\r\nMAIL FROM:<joe@example.net>\r\n")
    assert client.reply().startswith("250 2.0.0")
    assert client.reply().startswith("250")  # NOOP
    assert client.reply().startswith("250")  # MAIL
    assert client.command("QUIT").startswith("221")
    client.close()
    [email] = emails_in(account, "inbox")
    from groupware.mail.services.emails import email_raw

    assert email_raw(email).endswith(raw_message(message_id="<p1@x>", body=body))


def test_lmtp_oversized_message_gets_a_reply_per_recipient(server, account):
    user_create(email="carol@example.com", password="x" * 12)
    with override_settings(MAIL_MAX_MESSAGE_SIZE=20_000):
        client = LineClient(server["LMTP"])
    client.command("LHLO client.example")
    client.command("MAIL FROM:<joe@example.net>")
    client.command("RCPT TO:<alice@example.com>")
    client.command("RCPT TO:<carol@example.com>")
    client.command("DATA")
    chunk = b"x" * 998 + b"\r\n"
    client.send(raw_message() + chunk * 30 + b".\r\n")
    assert client.reply().startswith("552") and client.reply().startswith("552")
    assert client.command("NOOP").startswith("250")  # the session goes on
    client.close()
    assert not Email.objects.exists()


def test_smtp_with_smtplib_refuses_unknown_recipients_and_long_lines(server, account):
    with smtplib.SMTP("127.0.0.1", server["SMTP"]) as client:
        refused = client.sendmail("joe@example.net", ["alice@example.com", "nobody@example.com"], raw_message())
        assert refused == {"nobody@example.com": (550, b"5.1.1 no such recipient here")}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("joe@example.net", ["nobody@example.com"], raw_message())
        long_line = b"a" * (300 * 1024) + b"\r\n"
        with pytest.raises(smtplib.SMTPDataError) as raised:
            client.sendmail("joe@example.net", ["alice@example.com"], raw_message(message_id="<z@x>") + long_line)
        assert raised.value.smtp_code == 500
        # A line over RFC 5321's 1000 octets but under our limit is stored as it is.
        client.sendmail("joe@example.net", ["alice@example.com"], raw_message(message_id="<y@x>", body="b" * 5000))
    assert sorted(len(e.preview) > 0 for e in emails_in(account, "inbox")) == [True, True]


def test_vacation_reply_reaches_the_relay(server, account):
    runner, port, sink = start_sink()
    try:
        activate_script(account, 'require "vacation";\r\nvacation :subject "Away" "Back soon.";\r\n')
        with override_settings(SMTP_RELAY_HOST="127.0.0.1", SMTP_RELAY_PORT=port):
            with smtplib.SMTP("127.0.0.1", server["SMTP"]) as client:
                client.sendmail("joe@example.net", ["alice@example.com"], raw_message())
            [queued] = OutboundMessage.objects.all()
            if queued.sent is None:  # with a broker the task waits for a worker: run it here
                send_outbound.apply(args=[queued.pk])
        assert sink.arrived.wait(10)
        [(mail_from, recipients, data)] = sink.messages
        assert (mail_from, recipients) == ("<>", ["joe@example.net"])  # the null reverse-path
        assert b"Subject: Away" in data and b"Back soon." in data
        assert OutboundMessage.objects.get().sent is not None
    finally:
        runner.stop()


def test_null_sender_reaches_the_script_as_empty(server, account):
    # RFC 5230 §4.5: no vacation reply to the null reverse-path (bounces).
    activate_script(account, 'require "vacation";\r\nvacation "Away.";\r\n')
    with smtplib.LMTP("127.0.0.1", server["LMTP"]) as client:
        client.sendmail("<>", ["alice@example.com"], raw_message())
    assert len(emails_in(account, "inbox")) == 1
    assert not OutboundMessage.objects.exists()
