"""Sending through EmailSubmission/set to a real SMTP sink and to a local user (RFC 8621 §7)."""

from __future__ import annotations

import dkim
import pytest

from groupware.mail.models import Email
from groupware.mail.submission.dkim_keys import dkim_txt_record
from groupware.mail.submission.models import OutboundRecipient
from groupware.mail.submission.relay import relay_due


def without_first_field(data: bytes) -> bytes:
    """The message without its first header field (the DKIM-Signature, with its folds)."""
    lines = data.split(b"\r\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\r\n".join(lines[end:])


def _verify(data: bytes, key) -> bool:
    _name, record = dkim_txt_record(key)
    return dkim.verify(data, dnsfunc=lambda name, timeout=5: record.encode())


def test_send_to_remote_sink_byte_for_byte(send, sink, dkim_domain):
    body = "Hello.\n.\n.leading dot line\n..two dots\nEnd.\n"
    draft = send.draft(
        to=[{"name": "Carol", "email": "carol@remote.test"}],
        cc=[{"name": None, "email": "dave@remote.test"}],
        bcc=[{"name": "Hidden", "email": "erin@remote.test"}],
        body=body,
    )
    result = send.request(
        [
            [
                "EmailSubmission/set",
                {
                    "accountId": send.account_id,
                    "create": {"k1": {"identityId": send.identity_id(), "emailId": draft}},
                    "onSuccessUpdateEmail": {
                        "#k1": {
                            f"mailboxIds/{send.mailbox_id('drafts')}": None,
                            f"mailboxIds/{send.mailbox_id('sent')}": True,
                            "keywords/$draft": None,
                        }
                    },
                },
                "0",
            ]
        ]
    )
    assert [name for name, _, _ in result] == ["EmailSubmission/set", "Email/set"]
    created = result[0][1]["created"]["k1"]
    assert created["undoStatus"] == "pending"
    assert created["envelope"] == {
        "mailFrom": {"email": "alice@example.com", "parameters": None},
        "rcptTo": [
            {"email": "carol@remote.test", "parameters": None},
            {"email": "dave@remote.test", "parameters": None},
            {"email": "erin@remote.test", "parameters": None},
        ],
    }
    assert result[1][1]["updated"] == {draft: None}
    # The Email is now in Sent, no longer a draft.
    item = send.email(draft, properties=["mailboxIds", "keywords"])
    assert item["mailboxIds"] == {send.mailbox_id("sent"): True}
    assert item["keywords"] == {"$seen": True}

    assert relay_due() == {"sent": 3}
    assert len(sink.messages) == 1
    received = sink.messages[0]
    assert received.mail_from == "alice@example.com"
    assert received.rcpt_tos == ["carol@remote.test", "dave@remote.test", "erin@remote.test"]
    data = received.data
    header, _, sent_body = data.partition(b"\r\n\r\n")
    assert b"\nBcc:" not in b"\n" + header and b"erin@remote.test" not in header  # Bcc removed (§7.5)
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;")
    assert b" s=test;" in header.split(b"\r\nFrom:")[0]
    assert b"\r\nFrom: Alice <alice@example.com>\r\n" in header
    assert b"\r\nTo: Carol <carol@remote.test>\r\n" in header
    assert b"\r\nCc: dave@remote.test\r\n" in header
    assert _verify(data, dkim_domain)
    # Dot-stuffing happened on the wire and was undone by the receiver: lines are intact.
    assert sent_body == body.replace("\n", "\r\n").encode()
    # What arrived is exactly the stored message minus Bcc, plus the signature.
    stored = Email.objects.get(pk=Email.objects.latest("pk").pk)
    from groupware.mail.services.emails import email_raw

    original = email_raw(stored)
    assert without_first_field(data) == original.replace(b"Bcc: Hidden <erin@remote.test>\r\n", b"")
    assert b"Bcc: Hidden <erin@remote.test>\r\n" in original

    status = send.submission(created["id"])
    assert status["undoStatus"] == "final"
    assert status["deliveryStatus"]["carol@remote.test"] == {
        "smtpReply": "250 2.0.0 Ok: queued",
        "delivered": "unknown",
        "displayed": "unknown",
    }


def test_send_to_local_user(send, other_send):
    draft = send.draft(to=[{"name": "Bob", "email": "bob@example.org"}], subject="Local hello")
    created = send.submit(draft)["created"]["s"]
    assert relay_due() == {"sent": 1}
    inbox = other_send.ok("Email/query", {"filter": {"inMailbox": other_send.mailbox_id("inbox")}})["ids"]
    assert len(inbox) == 1
    got = other_send.email(inbox[0], properties=["subject", "from", "header:Return-Path"])
    assert got["subject"] == "Local hello"
    assert got["from"] == [{"name": "Alice", "email": "alice@example.com"}]
    assert got["header:Return-Path"] == " <alice@example.com>"
    status = send.submission(created["id"])["deliveryStatus"]["bob@example.org"]
    assert status == {"smtpReply": "250 2.0.0 delivered", "delivered": "yes", "displayed": "unknown"}


def test_relay_is_idempotent(send, sink):
    send.submit(send.draft())
    assert relay_due() == {"sent": 1}
    assert relay_due() == {}
    assert len(sink.messages) == 1
    assert OutboundRecipient.objects.get().attempts == 1


@pytest.mark.parametrize("lf_only", [True, False])
def test_sent_message_has_crlf_line_ends(send, sink, lf_only):
    send.submit(send.draft(body="one\ntwo\n" if lf_only else "one\r\ntwo\r\n"))
    relay_due()
    assert sink.messages[0].data.endswith(b"\r\n\r\none\r\ntwo\r\n")
