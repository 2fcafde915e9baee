"""Sieve engine benchmark: ``.venv/bin/python -m bench.sieve [rounds]``.

Parses a 53-rule script and runs it against a 56 KB message; prints CPU milliseconds per parse
and per delivery (MessageView.from_bytes + evaluate).
"""

from __future__ import annotations

import sys
import time

from groupware.mail.sieve import Envelope, Environment, MessageView, evaluate, parse

RULES = "\n".join(
    f'if anyof (header :contains "subject" "topic{index}", address :domain :is "from" "domain{index}.example") {{\n'
    f'    fileinto "Folder{index}"; stop;\n}}'
    for index in range(50)
)
SCRIPT = (
    'require ["fileinto", "variables", "imap4flags", "regex", "body", "vacation", "relational"];\n'
    + RULES
    + """
if header :matches "List-Id" "*<*.*>" { fileinto "lists/${2}"; stop; }
if header :regex "subject" "^\\\\[(.*)\\\\]" { addflag "\\\\Flagged"; }
if body :contains "unsubscribe" { fileinto "Bulk"; }
vacation :days 7 "I am away";
"""
)
MESSAGE = (
    b"From: Someone <someone@other.example>\r\nTo: me@example.com\r\nSubject: [news] weekly digest\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <x@y>\r\nContent-Type: text/plain\r\n\r\n"
    + b"Lorem ipsum dolor sit amet. " * 2000
    + b"\r\nunsubscribe here\r\n"
)


def main(rounds: int = 200) -> None:
    started = time.process_time()
    for _ in range(rounds):
        script = parse(SCRIPT)
    parse_ms = (time.process_time() - started) / rounds * 1000
    envelope = Envelope("someone@other.example", "me@example.com")
    environment = Environment(user_addresses=("me@example.com",))
    started = time.process_time()
    for _ in range(rounds):
        outcome = evaluate(script, message=MessageView.from_bytes(MESSAGE), envelope=envelope, environment=environment)
    run_ms = (time.process_time() - started) / rounds * 1000
    assert not outcome.errors, outcome.errors
    print(f"script: {len(SCRIPT)} bytes, 53 rules; message: {len(MESSAGE)} bytes; {rounds} rounds")
    print(f"parse: {parse_ms:.2f} ms per script")
    print(f"deliver (MessageView.from_bytes + evaluate): {run_ms:.2f} ms per message")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
