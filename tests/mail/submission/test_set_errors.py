"""Every EmailSubmission/set SetError (RFC 8621 §7.5), each refused before anything is queued."""

from __future__ import annotations

import pytest

from accounts.services import alias_create, domain_create
from groupware.mail.submission.models import OutboundMessage, SenderPolicy
from groupware.mail.submission.relay import relay_due


@pytest.fixture
def allow_queue():
    """Marks a test that queues mail on purpose."""


@pytest.fixture(autouse=True)
def nothing_queued_on_error(request, db):
    yield
    if "allow_queue" not in request.fixturenames:
        assert OutboundMessage.objects.count() == 0


def test_invalid_email_two_from_addresses(send):
    draft = send.draft(
        **{"from": [{"name": "A", "email": "alice@example.com"}, {"name": "B", "email": "alice@example.com"}]}
    )
    error = send.submit_error(draft)
    assert error["type"] == "invalidEmail"
    assert error["properties"] == ["from"]


def test_invalid_email_bare_cr_in_header(send):
    raw = b"From: alice@example.com\r\nTo: carol@remote.test\r\nSubject: hi\rBcc: x@evil.test\r\n\r\nbody\r\n"
    imported = send.import_message(raw, role="drafts")
    error = send.submit_error(imported["id"])
    assert error["type"] == "invalidEmail"


def test_invalid_email_line_too_long(send):
    raw = b"From: alice@example.com\r\nTo: carol@remote.test\r\nSubject: hi\r\n\r\n" + b"x" * 1200 + b"\r\n"
    imported = send.import_message(raw, role="drafts")
    assert send.submit_error(imported["id"])["type"] == "invalidEmail"


def test_forbidden_from_forged(send):
    draft = send.draft(**{"from": [{"name": "Boss", "email": "ceo@bank.test"}]})
    error = send.submit_error(draft)
    assert error["type"] == "forbiddenFrom"


def test_forbidden_from_other_identity_address(send, db):
    domain_create(name="example.net")
    alias_create(user=send.client.user, address="alice@example.net")
    identity = send.ok("Identity/set", {"create": {"i": {"email": "alice@example.net"}}})["created"]["i"]["id"]
    # The From is the login, but the identity is the alias: the identity doesn't cover it.
    error = send.submit_error(send.draft(), identity=identity)
    assert error["type"] == "forbiddenFrom"


def test_forbidden_mail_from(send):
    envelope = {"mailFrom": {"email": "someone@else.test"}, "rcptTo": [{"email": "carol@remote.test"}]}
    assert send.submit_error(send.draft(), envelope=envelope)["type"] == "forbiddenMailFrom"


def test_no_recipients(send):
    draft = send.draft(to=None)
    assert send.submit_error(draft)["type"] == "noRecipients"
    envelope = {"mailFrom": {"email": "alice@example.com"}, "rcptTo": []}
    assert send.submit_error(draft, envelope=envelope)["type"] == "noRecipients"


def test_too_many_recipients(send, settings):
    settings.SUBMISSION_MAX_RECIPIENTS = 2
    draft = send.draft(to=[{"name": None, "email": f"r{n}@remote.test"} for n in range(3)])
    error = send.submit_error(draft)
    assert error == {"type": "tooManyRecipients", "description": "at most 2 recipients", "maxRecipients": 2}


def test_invalid_recipients(send):
    envelope = {
        "mailFrom": {"email": "alice@example.com", "parameters": None},
        "rcptTo": [{"email": "carol@remote.test"}, {"email": "not an address"}, {"email": "x@-bad-.test"}],
    }
    error = send.submit_error(send.draft(), envelope=envelope)
    assert error["type"] == "invalidRecipients"
    assert error["invalidRecipients"] == ["not an address", "x@-bad-.test"]


@pytest.mark.parametrize(
    "envelope",
    [
        {"mailFrom": {"email": "alice@example.com\r\nRCPT TO:<x@evil.test>"}, "rcptTo": [{"email": "c@remote.test"}]},
        {"mailFrom": {"email": "alice@example.com"}, "rcptTo": [{"email": "c@remote.test>\r\nDATA"}]},
        {"mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "1\r\nX"}}, "rcptTo": []},
        {"mailFrom": {"email": "alice@example.com", "parameters": {"AUTH": "<>"}}, "rcptTo": [{"email": "c@r.test"}]},
        {
            "mailFrom": {"email": "alice@example.com"},
            "rcptTo": [{"email": "c@r.test", "parameters": {"NOTIFY": "NEVER"}}],
        },
        {"mailFrom": "alice@example.com", "rcptTo": []},
    ],
)
def test_envelope_injection_and_unsupported_parameters(send, envelope):
    error = send.submit_error(send.draft(), envelope=envelope)
    assert error["type"] == "invalidProperties"
    assert error["properties"] == ["envelope"]


def test_forbidden_to_send_when_disabled(send):
    SenderPolicy.objects.create(user=send.client.user, may_send=False)
    error = send.submit_error(send.draft())
    assert error["type"] == "forbiddenToSend"
    assert error["description"] == "Sending is disabled for this user."


def test_forbidden_to_send_over_messages_per_hour(send, settings, allow_queue):
    settings.SUBMISSION_MESSAGES_PER_HOUR = 2
    for _ in range(2):
        assert send.submit(send.draft())["created"]
    error = send.submit_error(send.draft())
    assert error["type"] == "forbiddenToSend"
    assert "2 messages per hour" in error["description"]
    # A per-user limit from the admin wins over the setting.
    SenderPolicy.objects.create(user=send.client.user, messages_per_hour=10)
    assert send.submit(send.draft())["created"]


def test_forbidden_to_send_over_recipients_per_day(send, allow_queue):
    SenderPolicy.objects.create(user=send.client.user, recipients_per_day=3)
    two = [{"name": None, "email": f"r{n}@remote.test"} for n in range(2)]
    assert send.submit(send.draft(to=two))["created"]
    error = send.submit_error(send.draft(to=two))
    assert error["type"] == "forbiddenToSend"
    assert "3 recipients per day" in error["description"]


def test_too_large(send, settings):
    settings.SUBMISSION_MAX_MESSAGE_SIZE = 300
    error = send.submit_error(send.draft(body="x" * 400))
    assert error["type"] == "tooLarge"
    assert error["maxSize"] == 300


def test_unknown_email_and_identity(send, other_send):
    draft = send.draft()
    assert send.submit_error("e999999")["properties"] == ["emailId"]
    assert send.submit_error(draft, identity="i999999")["properties"] == ["identityId"]
    # Another user's Identity is as unknown as a missing one.
    assert send.submit_error(draft, identity=other_send.identity_id())["properties"] == ["identityId"]


def test_cannot_unsend_after_sending(send, sink, allow_queue):
    created = send.submit(send.draft())["created"]["s"]
    relay_due()
    result = send.ok("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}})
    assert result["notUpdated"][created["id"]]["type"] == "cannotUnsend"
    assert send.submission(created["id"])["undoStatus"] == "final"


def test_undo_status_must_start_pending(send):
    error = send.submit_error(send.draft(), undoStatus="final")
    assert error["type"] == "invalidProperties"
    assert error["properties"] == ["undoStatus"]


def test_shared_account_cannot_send(send, other_send):
    from accounts.services import account_grant

    account_grant(account=other_send.account, user=send.client.user, may_write=True)
    error = send.error("EmailSubmission/set", {"accountId": other_send.account_id, "create": {}})
    assert error["type"] == "accountNotSupportedByMethod"
