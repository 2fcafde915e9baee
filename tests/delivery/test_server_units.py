"""The listeners' small decisions: one SMTP reply for many results, listen addresses."""

from __future__ import annotations

import pytest

from groupware.mail.delivery.server import null_sender, parse_listen, smtp_reply
from groupware.mail.delivery.services import DeliveryResult


def result(code: int, status: str = "2.0.0") -> DeliveryResult:
    return DeliveryResult(recipient="r@example.com", code=code, status=status, text="t")


def test_smtp_reply_prefers_a_retry_over_partial_success():
    assert smtp_reply([result(250), result(451, "4.3.0")]).startswith("451 4.3.0")
    assert smtp_reply([result(250), result(550, "5.7.1")]) == "250 2.0.0 delivered"
    assert smtp_reply([result(552, "5.3.4"), result(552, "5.3.4")]).startswith("552 5.3.4")


def test_null_sender_and_listen_addresses():
    assert null_sender("<>") == "" and null_sender(None) == "" and null_sender("a@b.c") == "a@b.c"
    assert parse_listen("127.0.0.1:8024") == ("127.0.0.1", 8024)
    assert parse_listen("[::1]:2525") == ("::1", 2525)
    assert parse_listen("off") is None and parse_listen("") is None
    with pytest.raises(ValueError):
        parse_listen("127.0.0.1:port")


@pytest.mark.parametrize(
    "arg",
    [
        "<a@b.com>",
        "<a@b.com> SIZE=100",
        "<a@b.com>  BODY=8BITMIME SIZE=5",
        " <a@b.com>",
        "<a@b.com>\tSIZE=1",
        "<a.b+c_d=e@x-y.example.org>",
        "<alice+tag@example.com> SMTPUTF8",
        "<a@b.com>SIZE=1",
        "<>",
        '<"q x"@b.com>',
        "a@b.com",
        "<a@b.com> (comment) SIZE=1",
        "<@route:a@b.com>",
        "<a@[192.0.2.1]>",
        "<a..b@c.com>",
        "<.a@c.com>",
        "<a@b.com",
        "<émile@exemple.fr>",
        "",
    ],
)
def test_paths_are_read_as_aiosmtpd_reads_them(arg):
    """The listeners read a plain <local@domain> path themselves (fast) and hand anything
    else to aiosmtpd: the answer is the same either way."""
    from aiosmtpd.smtp import SMTP

    from groupware.mail.delivery.server import LmtpServer, SmtpServer

    for ours in (LmtpServer, SmtpServer):
        for limit in (0, 3):
            server, reference = ours.__new__(ours), SMTP.__new__(SMTP)
            server.local_part_limit = reference.local_part_limit = limit
            assert server._getaddr(arg) == reference._getaddr(arg)
