"""The relay: retries with backoff, permanent failures and their DSNs (RFC 3464),
delayed sends and cancelling them, and the in-process sender of the embedded default."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from accounts.services import domain_create
from groupware.core.blobs import blob_read
from groupware.mail.submission.config import Smarthost
from groupware.mail.submission.models import OutboundMessage, OutboundRecipient
from groupware.mail.submission.relay import _backoff, format_reply, relay_due
from groupware.mail.submission.reports import parse_report
from tests.mail.submission.smtp import SmtpServer, free_port


def _make_due() -> None:
    OutboundRecipient.objects.filter(state="queued").update(next_attempt=timezone.now())


def test_temporary_failure_is_retried_with_backoff(send, flaky, settings):
    settings.SUBMISSION_RETRY_BASE = 60
    created = send.submit(send.draft())["created"]["s"]
    before = timezone.now()
    assert relay_due() == {"queued": 1}
    recipient = OutboundRecipient.objects.get()
    assert recipient.attempts == 1
    assert before + timedelta(seconds=59) < recipient.next_attempt < timezone.now() + timedelta(seconds=61)
    status = send.submission(created["id"])
    assert status["undoStatus"] == "pending"
    assert status["deliveryStatus"]["carol@remote.test"]["delivered"] == "queued"
    assert status["deliveryStatus"]["carol@remote.test"]["smtpReply"] == "451 4.3.0 Try again later"
    assert relay_due() == {}  # not due yet
    assert flaky.messages == []
    _make_due()
    assert relay_due() == {"sent": 1}
    assert len(flaky.messages) == 1
    status = send.submission(created["id"])
    assert status["undoStatus"] == "final"
    assert status["deliveryStatus"]["carol@remote.test"]["delivered"] == "unknown"


def test_backoff_is_exponential_and_capped(settings):
    settings.SUBMISSION_RETRY_BASE = 60
    settings.SUBMISSION_RETRY_MAX_INTERVAL = 600
    assert [_backoff(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]


def test_connection_refused_is_temporary(send, settings):
    settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=free_port())
    created = send.submit(send.draft())["created"]["s"]
    assert relay_due() == {"queued": 1}
    reply = send.submission(created["id"])["deliveryStatus"]["carol@remote.test"]["smtpReply"]
    assert reply.startswith("451 4.4.1 Connection to 127.0.0.1 failed")


def _inbox_dsns(send) -> list[dict]:
    ids = send.ok("Email/query", {"filter": {"inMailbox": send.mailbox_id("inbox")}})["ids"]
    return send.get(ids, properties=["subject", "from", "blobId"])


def test_permanent_failure_produces_dsn(send, rejecting):
    draft = send.draft(to=[{"name": None, "email": "carol@remote.test"}, {"name": None, "email": "nobody@remote.test"}])
    created = send.submit(draft)["created"]["s"]
    assert relay_due() == {"sent": 1, "failed": 1}
    assert [m.rcpt_tos for m in rejecting.messages] == [["carol@remote.test"]]
    status = send.submission(created["id"])
    assert status["deliveryStatus"]["nobody@remote.test"] == {
        "smtpReply": "550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown",
        "delivered": "no",
        "displayed": "unknown",
    }
    assert status["deliveryStatus"]["carol@remote.test"]["delivered"] == "unknown"
    assert len(status["dsnBlobIds"]) == 1
    dsns = _inbox_dsns(send)
    assert [item["subject"] for item in dsns] == ["Undelivered Mail Returned to Sender"]
    assert dsns[0]["blobId"] == status["dsnBlobIds"][0]
    raw = blob_read(send.account, status["dsnBlobIds"][0])
    assert b"Content-Type: multipart/report; report-type=delivery-status;" in raw
    report = parse_report(raw)
    assert report.report_type == "delivery-status"
    assert report.recipient_groups == [
        [
            ("Final-Recipient", "rfc822; nobody@remote.test"),
            ("Action", "failed"),
            ("Status", "5.1.1"),
            ("Remote-MTA", "dns; 127.0.0.1"),
            ("Diagnostic-Code", "smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown"),
            ("Last-Attempt-Date", report.recipient_groups[0][5][1]),
        ]
    ]
    # The third part holds the original header section, Message-ID included.
    message_id = OutboundMessage.objects.get(is_report=False).message_id
    assert ("Message-ID", message_id) in report.original_headers
    # The queue is done with the message: its blob reference is dropped.
    assert OutboundMessage.objects.get(is_report=False).finished is not None


def test_unknown_user_in_local_domain_fails_without_smtp(send):
    domain_create(name="example.com")
    draft = send.draft(to=[{"name": None, "email": "ghost@example.com"}])
    created = send.submit(draft)["created"]["s"]
    assert relay_due() == {"failed": 1}
    status = send.submission(created["id"])
    assert status["deliveryStatus"]["ghost@example.com"]["smtpReply"] == "550 5.1.1 no such recipient here"
    assert len(status["dsnBlobIds"]) == 1


def test_retries_give_up_after_retry_for(send, settings):
    settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=free_port())
    settings.SUBMISSION_RETRY_FOR = 60
    created = send.submit(send.draft())["created"]["s"]
    assert relay_due() == {"queued": 1}
    OutboundMessage.objects.update(created=timezone.now() - timedelta(seconds=120))
    _make_due()
    assert relay_due() == {"failed": 1}
    status = send.submission(created["id"])
    assert status["deliveryStatus"]["carol@remote.test"]["delivered"] == "no"
    assert len(status["dsnBlobIds"]) == 1


def test_multiline_reply_is_one_line():
    reply = format_reply(550, b"5.7.1 Our system has detected that this message is\n5.7.1 likely spam.")
    assert str(reply) == "550 5.7.1 Our system has detected that this message is likely spam."


# -- Delayed send (FUTURERELEASE) -------------------------------------------------------------


def test_delayed_send_waits_and_can_be_canceled(send, sink):
    envelope = {
        "mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "600"}},
        "rcptTo": [{"email": "carol@remote.test", "parameters": None}],
    }
    created = send.submit(send.draft(), envelope=envelope)["created"]["s"]
    send_at = created["sendAt"]
    expected = timezone.now() + timedelta(seconds=600)
    assert abs((timezone.datetime.fromisoformat(send_at.replace("Z", "+00:00")) - expected).total_seconds()) < 5
    assert relay_due() == {}
    assert sink.messages == []
    result = send.ok("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}})
    assert result["updated"] == {created["id"]: None}
    status = send.submission(created["id"])
    assert status["undoStatus"] == "canceled"
    assert status["deliveryStatus"]["carol@remote.test"]["delivered"] == "no"
    # Even once the time has come, nothing is sent.
    OutboundRecipient.objects.update(next_attempt=timezone.now())
    assert relay_due() == {}
    assert sink.messages == []
    filtered = send.ok("EmailSubmission/query", {"filter": {"undoStatus": "canceled"}})["ids"]
    assert filtered == [created["id"]]


def test_delayed_send_holduntil_and_limit(send, settings):
    settings.SUBMISSION_MAX_DELAYED_SEND = 3600
    later = (timezone.now() + timedelta(minutes=30)).replace(microsecond=0)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope = {
        "mailFrom": {"email": "alice@example.com", "parameters": {"HOLDUNTIL": stamp}},
        "rcptTo": [{"email": "carol@remote.test", "parameters": None}],
    }
    created = send.submit(send.draft(), envelope=envelope)["created"]["s"]
    assert created["sendAt"] == stamp
    envelope["mailFrom"]["parameters"] = {"HOLDFOR": "7200"}
    error = send.submit_error(send.draft(), envelope=envelope)
    assert error["type"] == "invalidProperties"
    capability = send.client.session()["accounts"][send.account_id]["accountCapabilities"][
        "urn:ietf:params:jmap:submission"
    ]
    assert capability["maxDelayedSend"] == 3600
    assert capability["submissionExtensions"]["FUTURERELEASE"][0] == "3600"


@pytest.mark.django_db(transaction=True)
def test_embedded_default_sends_in_process_and_on_time(settings, user):
    """Without a broker the server process itself sends: at once, and delayed sends when due."""
    from tests.conftest import JmapClient
    from tests.mail.submission.conftest import SendApi

    settings.SUBMISSION_DISPATCH = "auto"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    api = SendApi(JmapClient(user))
    later, now = api.draft(subject="later"), api.draft(subject="now")
    identity = api.identity_id()
    envelope = {
        "mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "2"}},
        "rcptTo": [{"email": "carol@remote.test", "parameters": None}],
    }
    with SmtpServer() as server:
        settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=server.port)
        submitted = time.monotonic()
        api.submit(later, identity=identity, envelope=envelope)
        api.submit(now, identity=identity)
        # Only the sink is watched while the relay threads work (no database access here).
        deadline = time.monotonic() + 10
        while len(server.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        arrived = time.monotonic() - submitted
        subjects = [
            next(line for line in m.data.split(b"\r\n") if line.startswith(b"Subject:")) for m in server.messages
        ]
        assert subjects == [b"Subject: now", b"Subject: later"]
        assert arrived >= 1.9
    deadline = time.monotonic() + 10
    states: list[str] = []
    while time.monotonic() < deadline:
        try:
            states = sorted(OutboundRecipient.objects.values_list("state", flat=True))
        except OperationalError:  # in-memory SQLite: "table is locked" while the relay writes
            states = []
        if states == ["sent", "sent"]:
            break
        time.sleep(0.1)
    assert states == ["sent", "sent"]
