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
