"""Email/get (RFC 8621 §4.2): properties, header forms, body parts and values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groupware.core.blobs import blob_id
from groupware.mail.services.counts import email_id, thread_id
from tests.mail.factories import ingest, mail_fixture, message, other_mail_fixture  # noqa: F401 (fixtures)

RECEIVED = datetime(2013, 10, 13, 14, 12, tzinfo=UTC)

# The message behind the RFC 8621 §4.2 example: a list mail with an HTML body and a
# plain-text footer.
LIST_MESSAGE = (
    b"From: Joe Bloggs <joe@example.com>\r\n"
    b"To: partytime@lists.example.com\r\n"
    b"Subject: Dinner on Thursday?\r\n"
    b"Date: Sun, 13 Oct 2013 14:12:00 +0000\r\n"
    b"Message-ID: <dinner@example.com>\r\n"
    b"List-Post: <mailto:partytime@lists.example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><body><p>Hello " + b"all " * 100 + b"</p></body></html>\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"-- Sent by your friendly mailing list\r\n"
    b"--outer--\r\n"
)

HEADERS_MESSAGE = (
    b'From: "  James Smythe" <james@example.com>\r\n'
    b"To: Friends: jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?= <john@example.com>;\r\n"
    b"Cc: one@example.com\r\n"
    b"Cc: two@example.com\r\n"
    b"Subject: =?UTF-8?Q?Caf=C3=A9?= talk\r\n"
    b"Date: Tue, 10 Jul 2018 11:03:11 +1000\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"References: <r1@example.com> <r2@example.com>\r\n"
    b"X-Custom: first\r\n"
    b"X-Custom:  second value\r\n"
    b"List-Unsubscribe: <mailto:leave@example.com>, <https://example.com/leave>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Body.\r\n"
)


def test_rfc_example(mail):
    email = ingest(mail.account, LIST_MESSAGE, received_at=RECEIVED)
    result = mail.ok(
        "Email/get",
        {
            "ids": ["eunknown", email_id(email.pk)],
            "properties": [
                "threadId",
                "mailboxIds",
                "from",
                "subject",
                "receivedAt",
                "header:List-POST:asURLs",
                "htmlBody",
                "bodyValues",
            ],
            "bodyProperties": ["partId", "blobId", "size", "type"],
            "fetchHTMLBodyValues": True,
            "maxBodyValueBytes": 256,
        },
    )
    assert result["notFound"] == ["eunknown"]
    [item] = result["list"]
    assert item["id"] == email_id(email.pk)
    assert item["threadId"] == thread_id(email.thread_id)
    assert item["mailboxIds"] == {mail.mailbox_id("inbox"): True}
    assert item["from"] == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert item["subject"] == "Dinner on Thursday?"
    assert item["receivedAt"] == "2013-10-13T14:12:00Z"
    # The capitalisation of the request is kept (§4.2).
    assert item["header:List-POST:asURLs"] == ["mailto:partytime@lists.example.com"]
    html, text = item["htmlBody"]
    assert set(html) == {"partId", "blobId", "size", "type"}
    assert html["type"] == "text/html" and text["type"] == "text/plain"
    assert html["blobId"] and html["blobId"] != text["blobId"]
    values = item["bodyValues"]
    assert set(values) == {html["partId"], text["partId"]}
    assert values[html["partId"]]["isTruncated"] is True
    assert len(values[html["partId"]]["value"].encode()) <= 256
    assert values[html["partId"]]["value"].startswith("<html><body><p>Hello all")
    assert values[text["partId"]] == {
        # The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
        "value": "-- Sent by your friendly mailing list",
        "isEncodingProblem": False,
        "isTruncated": False,
    }
    assert set(item) == {
        "id",
        "threadId",
        "mailboxIds",
        "from",
        "subject",
        "receivedAt",
        "header:List-POST:asURLs",
        "htmlBody",
        "bodyValues",
    }


def test_default_properties(mail):
    email = ingest(mail.account, LIST_MESSAGE, received_at=RECEIVED, keywords={"$seen": True})
    item = mail.email(email_id(email.pk))
    assert list(item) == [
        "id",
        "blobId",
        "threadId",
        "mailboxIds",
        "keywords",
        "size",
        "receivedAt",
        "messageId",
        "inReplyTo",
        "references",
        "sender",
        "from",
        "to",
        "cc",
        "bcc",
        "replyTo",
        "subject",
        "sentAt",
        "hasAttachment",
        "preview",
        "bodyValues",
        "textBody",
        "htmlBody",
        "attachments",
    ]
    assert item["blobId"] == blob_id(email.blob_id)
    assert item["size"] == len(LIST_MESSAGE)
    assert item["keywords"] == {"$seen": True}
    assert item["messageId"] == ["dinner@example.com"]
    assert item["inReplyTo"] is None and item["references"] is None
    assert item["to"] == [{"name": None, "email": "partytime@lists.example.com"}]
    assert item["sender"] is None and item["cc"] is None
    assert item["sentAt"] == "2013-10-13T14:12:00Z"
    assert item["bodyValues"] == {}  # no fetch*BodyValues
    assert item["hasAttachment"] is False
    assert isinstance(item["preview"], str) and len(item["preview"]) <= 256
    # Default bodyProperties (§4.2).
    assert set(item["textBody"][0]) == {
        "partId",
        "blobId",
        "size",
        "name",
        "type",
        "charset",
        "disposition",
        "cid",
        "language",
        "location",
    }


def test_header_forms(mail):
    email = ingest(mail.account, HEADERS_MESSAGE)
    props = [
        "header:From",
        "header:from:asAddresses",
        "header:To:asGroupedAddresses",
        "header:Cc:asAddresses:all",
        "header:Cc:all",
        "header:Subject:asText",
        "header:Date:asDate",
        "header:Message-ID:asMessageIds",
        "header:References:asMessageIds",
        "header:X-Custom",
        "header:X-Custom:all",
        "header:x-custom:asText",
        "header:List-Unsubscribe:asURLs",
        "header:X-Missing",
        "header:X-Missing:all",
        "headers",
        "subject",
        "sentAt",
    ]
    item = mail.email(email_id(email.pk), properties=props)
    assert item["header:From"] == ' "  James Smythe" <james@example.com>'
    assert item["header:from:asAddresses"] == [{"name": "James Smythe", "email": "james@example.com"}]
    assert item["header:To:asGroupedAddresses"] == [
        {
            "name": "Friends",
            "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"},
            ],
        }
    ]
    assert item["header:Cc:asAddresses:all"] == [
        [{"name": None, "email": "one@example.com"}],
        [{"name": None, "email": "two@example.com"}],
    ]
    assert item["header:Cc:all"] == [" one@example.com", " two@example.com"]
    assert item["header:Subject:asText"] == "Café talk"
    assert item["subject"] == "Café talk"
    # sentAt is header:Date:asDate (RFC 8621 §4.1.3): the field's own offset is kept.
    assert item["header:Date:asDate"] == "2018-07-10T11:03:11+10:00"
    assert item["sentAt"] == "2018-07-10T11:03:11+10:00"
    assert item["header:Message-ID:asMessageIds"] == ["m1@example.com"]
    assert item["header:References:asMessageIds"] == ["r1@example.com", "r2@example.com"]
    assert item["header:X-Custom"] == "  second value"  # the last instance, raw
    assert item["header:X-Custom:all"] == [" first", "  second value"]
    assert item["header:x-custom:asText"] == "second value"
    assert item["header:List-Unsubscribe:asURLs"] == ["mailto:leave@example.com", "https://example.com/leave"]
    assert item["header:X-Missing"] is None
    assert item["header:X-Missing:all"] == []
    assert [header["name"] for header in item["headers"]][:3] == ["From", "To", "Cc"]
    assert item["headers"][0]["value"] == ' "  James Smythe" <james@example.com>'


@pytest.mark.parametrize(
    "prop",
    [
        "header:From:asDate",  # forbidden form for the field (§4.1.2)
        "header:Subject:asAddresses",
        "header:Date:asURLs",
        "header:To:asMessageIds",
        "header:From:asText",
        "header:Subject:asNoSuchForm",
        "header:X-Foo:all:asText",  # suffixes in the wrong order
        "header:",
        "header:Bad Name",
        "notAProperty",
    ],
)
def test_invalid_properties_are_invalid_arguments(mail, prop):
    email = ingest(mail.account, HEADERS_MESSAGE)
    error = mail.error("Email/get", {"ids": [email_id(email.pk)], "properties": [prop]})
    assert error["type"] == "invalidArguments"


def test_invalid_body_properties(mail):
    email = ingest(mail.account, HEADERS_MESSAGE)
    for body_props in (["nope"], ["header:From:asDate"]):
        error = mail.error(
            "Email/get", {"ids": [email_id(email.pk)], "properties": ["textBody"], "bodyProperties": body_props}
        )
        assert error["type"] == "invalidArguments"


MULTIPART = (
    b"From: a@example.com\r\n"
    b"Subject: parts\r\n"
    b"Message-ID: <parts@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b'Content-Type: multipart/alternative; boundary="b2"\r\n'
    b"\r\n"
    b"--b2\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Language: en\r\n"
    b"\r\n"
    b"Plain caf\xc3\xa9\r\n"
    b"--b2\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"\r\n"
    b"<p>HTML caf\xe9</p>\r\n"
    b"--b2--\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf; name=doc.pdf\r\n"
    b"Content-Disposition: attachment; filename=doc.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Disposition: attachment; filename=notes.txt\r\n"
    b"\r\n"
    b"attached notes\r\n"
    b"--b1--\r\n"
)


def test_body_structure_and_lists(mail):
    email = ingest(mail.account, MULTIPART)
    item = mail.email(
        email_id(email.pk),
        properties=["bodyStructure", "textBody", "htmlBody", "attachments", "hasAttachment", "bodyValues"],
        bodyProperties=["partId", "blobId", "type", "name", "charset", "disposition", "size", "subParts", "headers"],
        fetchTextBodyValues=True,
        fetchHTMLBodyValues=True,
    )
    structure = item["bodyStructure"]
    assert structure["type"] == "multipart/mixed"
    assert structure["partId"] is None and structure["blobId"] is None
    alternative, pdf, notes = structure["subParts"]
    assert alternative["type"] == "multipart/alternative"
    assert [part["type"] for part in alternative["subParts"]] == ["text/plain", "text/html"]
    assert pdf["name"] == "doc.pdf" and pdf["disposition"] == "attachment" and pdf["size"] == 9
    assert [part["type"] for part in item["textBody"]] == ["text/plain"]
    assert [part["type"] for part in item["htmlBody"]] == ["text/html"]
    assert [part["name"] for part in item["attachments"]] == ["doc.pdf", "notes.txt"]
    assert all(part.get("subParts") is None for part in item["attachments"])
    assert item["hasAttachment"] is True
    plain, html = item["textBody"][0], item["htmlBody"][0]
    assert item["bodyValues"][plain["partId"]]["value"] == "Plain café"
    assert item["bodyValues"][html["partId"]]["value"] == "<p>HTML café</p>"
    # Attachments' text is not a body value unless fetchAllBodyValues.
    assert set(item["bodyValues"]) == {plain["partId"], html["partId"]}
    every = mail.email(email_id(email.pk), properties=["bodyValues"], fetchAllBodyValues=True)
    assert set(every["bodyValues"]) == {plain["partId"], html["partId"], notes["partId"]}
    # Part headers in raw form, and header properties on parts.
    part = mail.email(
        email_id(email.pk),
        properties=["textBody"],
        bodyProperties=["partId", "header:Content-Language", "header:Content-Type:asRaw"],
    )["textBody"][0]
    assert part["header:Content-Language"] == " en"
    assert part["header:Content-Type:asRaw"] == " text/plain; charset=utf-8"


def test_default_body_structure_keeps_the_tree(mail):
    email = ingest(mail.account, MULTIPART)
    item = mail.email(email_id(email.pk), properties=["bodyStructure"])
    assert len(item["bodyStructure"]["subParts"]) == 3


def test_truncation_is_utf8_safe(mail):
    raw = message(body="é" * 50 + "\n")
    email = ingest(mail.account, raw)
    for limit in range(1, 12):
        values = mail.email(
            email_id(email.pk), properties=["bodyValues"], fetchTextBodyValues=True, maxBodyValueBytes=limit
        )["bodyValues"]
        [value] = values.values()
        assert value["isTruncated"] is True
        assert len(value["value"].encode()) <= limit
        assert set(value["value"]) <= {"é"}


def test_foreign_and_bad_ids_are_not_found(mail, other_mail):
    theirs = ingest(other_mail.account, message())
    mine = ingest(mail.account, message(message_id="<mine@x>"))
    result = mail.ok("Email/get", {"ids": [email_id(theirs.pk), "nonsense", email_id(mine.pk)], "properties": ["id"]})
    assert result["list"] == [{"id": email_id(mine.pk)}]
    assert sorted(result["notFound"]) == sorted([email_id(theirs.pk), "nonsense"])
    # Their Thread is as invisible.
    threads = mail.ok("Thread/get", {"ids": [thread_id(theirs.thread_id)]})
    assert threads["notFound"] == [thread_id(theirs.thread_id)]


def test_ids_null(mail, settings):
    emails = [ingest(mail.account, message(message_id=f"<n{i}@x>")) for i in range(3)]
    result = mail.ok("Email/get", {"ids": None, "properties": ["id"]})
    assert result["list"] == [{"id": email_id(email.pk)} for email in emails]
    settings.JMAP = {**settings.JMAP, "maxObjectsInGet": 2}
    assert mail.error("Email/get", {"ids": None})["type"] == "requestTooLarge"


def test_back_references(mail):
    email = ingest(mail.account, message())
    responses = mail.request(
        [
            ["Email/get", {"accountId": mail.account_id, "ids": [email_id(email.pk)], "properties": ["threadId"]}, "1"],
            [
                "Thread/get",
                {
                    "accountId": mail.account_id,
                    "#ids": {"resultOf": "1", "name": "Email/get", "path": "/list/*/threadId"},
                },
                "2",
            ],
            [
                "Email/get",
                {
                    "accountId": mail.account_id,
                    "#ids": {"resultOf": "2", "name": "Thread/get", "path": "/list/*/emailIds"},
                    "properties": ["subject", "keywords"],
                },
                "3",
            ],
        ]
    )
    assert responses[2][1]["list"] == [{"id": email_id(email.pk), "subject": "Hello", "keywords": {}}]


def _get_queries(mail, count: int, tag: str, **arguments) -> int:
    ids = [
        email_id(ingest(mail.account, MULTIPART.replace(b"<parts@", f"<{tag}{i}@".encode())).pk) for i in range(count)
    ]
    mail.ok("Email/get", {"ids": []})  # warms the credentials cache
    with CaptureQueriesContext(connection) as queries:
        result = mail.ok("Email/get", {"ids": ids, **arguments})
    assert len(result["list"]) == count
    return len(queries)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        # The session's user and accounts (2), the state, the Emails, their memberships.
        ({}, 5),
        ({"properties": ["id", "threadId", "subject", "from", "preview", "keywords"]}, 4),
        (
            {
                "properties": ["bodyStructure", "bodyValues", "header:Subject:asText", "mailboxIds"],
                "fetchAllBodyValues": True,
            },
            5,
        ),
    ],
)
def test_email_get_query_count_is_constant(mail, arguments, expected):
    small = _get_queries(mail, 1, "s", **arguments)
    large = _get_queries(mail, 20, "l", **arguments)
    assert small == large == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Tue, 10 Jul 2018 11:03:11 +1000", "2018-07-10T11:03:11+10:00"),
        ("Tue, 10 Jul 2018 11:03:11 -0330", "2018-07-10T11:03:11-03:30"),
        ("Tue, 10 Jul 2018 11:03:11 +0000", "2018-07-10T11:03:11Z"),
        ("Tue, 10 Jul 2018 11:03:11 -0000", "2018-07-10T11:03:11Z"),
        ("10 Jul 2018 11:03 EDT", "2018-07-10T11:03:00-04:00"),
        (None, None),
        ("not a date", None),
    ],
)
def test_sent_at_is_the_date_header_as_date(mail, date, expected):
    email = ingest(mail.account, message(date=date))
    for item in (
        mail.email(email_id(email.pk), properties=["sentAt", "header:Date:asDate"]),
        mail.email(email_id(email.pk), properties=["sentAt", "subject"]),  # the list columns only
    ):
        assert item["sentAt"] == expected
        if "header:Date:asDate" in item:
            assert item["header:Date:asDate"] == expected


@pytest.mark.parametrize(("header", "expected"), [(None, None), ("", ""), (" Hi ", "Hi")])
def test_subject_null_only_without_the_header(mail, header, expected):
    raw = message(subject=header)
    email = ingest(mail.account, raw)
    item = mail.email(email_id(email.pk), properties=["subject", "header:Subject:asText"])
    assert item["subject"] == expected
    assert item["header:Subject:asText"] == expected
