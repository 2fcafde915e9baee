"""MDN/send and MDN/parse (RFC 9007), and MDNs that come back for a submission."""

from __future__ import annotations

import dkim

from accounts.services import domain_create
from groupware.core.blobs import blob_read
from groupware.mail.submission.dkim_keys import dkim_key_generate, dkim_txt_record
from groupware.mail.submission.models import OutboundMessage
from groupware.mail.submission.relay import relay_due

DNT = "header:Disposition-Notification-To:asAddresses"
DISPLAYED = {"actionMode": "manual-action", "sendingMode": "mdn-sent-manually", "type": "displayed"}


def _deliver_to_bob(send, other_send) -> tuple[dict, str]:
    """Alice sends Bob a message asking for an MDN; returns her submission and Bob's Email id."""
    draft = send.draft(to=[{"name": "Bob", "email": "bob@example.org"}], subject="World domination",
                       **{DNT: [{"name": None, "email": "alice@example.com"}]})  # fmt: skip
    submission = send.submit(draft)["created"]["s"]
    relay_due()
    inbox = other_send.ok("Email/query", {"filter": {"inMailbox": other_send.mailbox_id("inbox")}})["ids"]
    return submission, inbox[0]


def _mdn_send(api, email_id: str, update: dict | None = None, **mdn) -> list:
    arguments = {
        "accountId": api.account_id,
        "identityId": api.identity_id(),
        "send": {"k1546": {"forEmailId": email_id, "disposition": DISPLAYED, **mdn}},
        "onSuccessUpdateEmail": {email_id: {"keywords/$mdnsent": True}} if update is None else update,
    }
    return api.request([["MDN/send", arguments, "0"]])


def test_read_receipt_round_trip(send, other_send):
    submission, bob_email = _deliver_to_bob(send, other_send)
    responses = _mdn_send(
        other_send, bob_email, subject="Read receipt for: World domination", textBody="Displayed on my screen.",
        reportingUA="joes-pc.cs.example.com; Foomail 97.1", extensionFields={"X-EXTENSION-EXAMPLE": "example.com"},
    )  # fmt: skip
    assert [name for name, _, _ in responses] == ["MDN/send", "Email/set"]
    sent = responses[0][1]["sent"]["k1546"]
    message_id = OutboundMessage.objects.get(is_report=False).message_id
    assert sent["finalRecipient"] == "rfc822; bob@example.org"
    assert sent["originalMessageId"] == message_id
    assert responses[0][1]["notSent"] is None
    assert responses[1][1]["updated"] == {bob_email: None}
    assert other_send.email(bob_email, properties=["keywords"])["keywords"] == {"$mdnsent": True}

    # The MDN goes back to Alice (a local user) and updates her submission.
    assert relay_due() == {"sent": 1}
    status = send.submission(submission["id"])
    assert status["deliveryStatus"]["bob@example.org"]["displayed"] == "yes"
    assert len(status["mdnBlobIds"]) == 1
    raw = blob_read(send.account, status["mdnBlobIds"][0])
    assert b"Content-Type: multipart/report; report-type=disposition-notification;" in raw
    machine = raw.split(b"Content-Type: message/disposition-notification\r\n\r\n")[1].split(b"\r\n--")[0]
    assert machine == (
        b"Reporting-UA: joes-pc.cs.example.com; Foomail 97.1\r\n"
        b"Final-Recipient: rfc822; bob@example.org\r\n"
        + f"Original-Message-ID: {message_id}\r\n".encode()
        + b"Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"X-EXTENSION-EXAMPLE: example.com\r\n"
    )
    # The MDN's envelope sender is null (RFC 8098 §2.1).
    report = OutboundMessage.objects.get(is_report=True)
    assert report.mail_from == ""

    # Alice parses it (RFC 9007 §2.2); forEmailId is her sent message.
    parsed = send.ok("MDN/parse", {"blobIds": [status["mdnBlobIds"][0], "bnothere", "bnothere2"]})
    mdn = parsed["parsed"][status["mdnBlobIds"][0]]
    assert mdn == {
        "forEmailId": submission_email_id(send, submission),
        "subject": "Read receipt for: World domination",
        "textBody": "Displayed on my screen.",
        "includeOriginalMessage": False,
        "reportingUA": "joes-pc.cs.example.com; Foomail 97.1",
        "disposition": DISPLAYED,
        "mdnGateway": None,
        "originalRecipient": None,
        "finalRecipient": "rfc822; bob@example.org",
        "originalMessageId": message_id,
        "error": None,
        "extensionFields": {"X-EXTENSION-EXAMPLE": "example.com"},
    }
    assert parsed["notFound"] == ["bnothere", "bnothere2"]

    # Sending a second MDN for the same message is refused (RFC 9007 §2.1).
    again = _mdn_send(other_send, bob_email)[0][1]
    assert again["notSent"]["k1546"]["type"] == "mdnAlreadySent"


def submission_email_id(api, submission: dict) -> str:
    return api.submission(submission["id"])["emailId"]


def test_mdn_send_must_set_mdnsent(send, other_send):
    _, bob_email = _deliver_to_bob(send, other_send)
    responses = _mdn_send(other_send, bob_email, update={})
    assert responses[0][1]["notSent"]["k1546"]["type"] == "invalidProperties"
    assert len(responses) == 1
    assert OutboundMessage.objects.filter(is_report=True).count() == 0


def test_mdn_send_errors(send, other_send):
    _, bob_email = _deliver_to_bob(send, other_send)
    # No Disposition-Notification-To: notFound.
    plain = other_send.import_message(b"From: x@remote.test\r\nTo: bob@example.org\r\nSubject: s\r\n\r\nhi\r\n")
    assert _mdn_send(other_send, plain["id"])[0][1]["notSent"]["k1546"]["type"] == "notFound"
    assert _mdn_send(other_send, "e99999")[0][1]["notSent"]["k1546"]["type"] == "notFound"
    bad = _mdn_send(other_send, bob_email, disposition={"actionMode": "x", "sendingMode": "y", "type": "z"})
    assert bad[0][1]["notSent"]["k1546"] == {
        "type": "invalidProperties", "description": "invalid MDN properties", "properties": ["disposition"],
    }  # fmt: skip
    injected = _mdn_send(other_send, bob_email, reportingUA="ua\r\nBcc: x@evil.test")
    assert injected[0][1]["notSent"]["k1546"]["properties"] == ["reportingUA"]
    forged = _mdn_send(other_send, bob_email, finalRecipient="rfc822; ceo@bank.test")
    assert forged[0][1]["notSent"]["k1546"]["type"] == "forbiddenFrom"
    server_set = _mdn_send(other_send, bob_email, originalMessageId="<x@y>")
    assert server_set[0][1]["notSent"]["k1546"]["properties"] == ["originalMessageId"]
    # Unknown identity or account: invalidArguments (RFC 9007 §2.1).
    response = other_send.request(
        [["MDN/send", {"accountId": other_send.account_id, "identityId": "i9999", "send": {}}, "0"]]
    )
    assert response[0][1]["type"] == "invalidArguments"
    response = other_send.request([["MDN/parse", {"accountId": send.account_id, "blobIds": []}, "0"]])
    assert response[0][1]["type"] == "invalidArguments"
    # The mail capability must be used too.
    only_mdn = other_send.client.request(
        [["MDN/send", {"accountId": other_send.account_id, "identityId": other_send.identity_id(), "send": {}}, "0"]],
        using=["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mdn"],
    )["methodResponses"][0]
    assert only_mdn[0] == "error"
    assert OutboundMessage.objects.filter(is_report=True).count() == 0


def test_mdn_to_remote_includes_original(other_send, sink):
    key = dkim_key_generate(domain=domain_create(name="example.org"), selector="mdn")
    raw = (
        b"From: Joe <joe@remote.test>\r\nTo: bob@example.org\r\nSubject: Hi\r\n"
        b"Message-ID: <orig@remote.test>\r\nOriginal-Recipient: rfc822; bob@example.org\r\n"
        b"Disposition-Notification-To: joe@remote.test\r\n\r\nHello Bob\r\n"
    )
    email = other_send.import_message(raw)
    sent = _mdn_send(other_send, email["id"], includeOriginalMessage=True)[0][1]["sent"]["k1546"]
    assert sent["originalRecipient"] == "rfc822; bob@example.org"
    assert sent["subject"] == "Read receipt: Hi"
    assert relay_due() == {"sent": 1}
    received = sink.messages[0]
    assert received.mail_from == "<>" and received.rcpt_tos == ["joe@remote.test"]
    assert b"\r\nTo: <joe@remote.test>\r\n" in received.data
    assert b"\r\nIn-Reply-To: <orig@remote.test>\r\n" in received.data
    assert b"Content-Type: message/rfc822\r\n\r\n" + raw in received.data
    record = dkim_txt_record(key)[1].encode()
    assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)  # MDNs are signed too
    parsed = other_send.ok("MDN/parse", {"blobIds": [other_send.upload(received.data)]})["parsed"]
    mdn = next(iter(parsed.values()))
    assert mdn["includeOriginalMessage"] is True
    assert mdn["forEmailId"] == email["id"]  # Bob holds the original
    assert mdn["originalRecipient"] == "rfc822; bob@example.org"


def test_not_parsable(other_send):
    blob = other_send.upload(b"From: a@b.test\r\nSubject: not a report\r\n\r\nhi\r\n")
    assert other_send.ok("MDN/parse", {"blobIds": [blob]})["notParsable"] == [blob]
