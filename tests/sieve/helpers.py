"""Helpers for the Sieve tests: run a script against a message built from header lines."""

from __future__ import annotations

import pytest

from groupware.mail.sieve import Envelope, Environment, MessageView, Outcome, SieveParseError, evaluate, parse

DEFAULT_HEADERS = (
    "From: Coyote <coyote@desert.example.org>\r\n"
    "To: roadrunner@acme.example.com\r\n"
    "Subject: I have a present for you\r\n"
    "Date: Mon, 20 Nov 2023 10:11:12 +0100\r\n"
    "Message-ID: <present@desert.example.org>\r\n"
)


def message(headers: str = DEFAULT_HEADERS, body: str = "Look, I'm sorry about the whole anvil thing.\r\n") -> bytes:
    return (headers + "\r\n" + body).encode()


def run(
    script: str,
    raw: bytes | None = None,
    *,
    mail_from: str = "coyote@desert.example.org",
    rcpt_to: str = "roadrunner@acme.example.com",
    environment: Environment | None = None,
) -> Outcome:
    view = MessageView.from_bytes(raw if raw is not None else message())
    return evaluate(
        parse(script),
        message=view,
        envelope=Envelope(mail_from=mail_from, rcpt_to=rcpt_to),
        environment=environment or Environment(user_addresses=(rcpt_to,)),
    )


def actions(script: str, raw: bytes | None = None, **kwargs) -> list:
    outcome = run(script, raw, **kwargs)
    assert outcome.errors == [], outcome.errors
    return outcome.actions


def parse_error(script: str) -> SieveParseError:
    with pytest.raises(SieveParseError) as info:
        parse(script)
    return info.value
