"""compose_message (RFC 8621 §4.6): creation rules, encodings, and parse round trips."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from groupware.mail.compose import BlobNotFoundError, ComposeError, compose_message
from groupware.mail.headers import header_value
from groupware.mail.mime import ParsedMessage, body_value, parse_message, part_content

DRAFT_TEXT = "I have the most brilliant plan. Let me tell you all about it. What we do is, we"
BLOBS = {
    "pdf": b"%PDF-1.4\n\x00\x01\xff binary",
    "png": b"\x89PNG\r\n\x1a\n....",
    "lf-text": "naïve\nline\n".encode(),
    "crlf-text": b"plain ascii\r\nlines\r\n",
    "message": b"From: a@example.com\r\nSubject: attached\r\n\r\nHello\r\n",
}


def compose(email: dict, **kwargs) -> tuple[bytes, ParsedMessage]:
    raw = compose_message(email, BLOBS.get, **kwargs)
    return raw, parse_message(raw)


def assert_crlf_only(raw: bytes) -> None:
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")


def values(raw: bytes, parsed: ParsedMessage) -> dict[str, str]:
    return {part.type: body_value(raw, part)["value"] for part in parsed.text_body + parsed.html_body}


# -- RFC 8621 §4.10: the drafts of the example --------------------------------------------------------


def test_rfc_example_first_draft():
    email = {
        "mailboxIds": {"Mdrafts": True},
        "keywords": {"$seen": True, "$draft": True},
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "subject": "World domination",
        "receivedAt": "2018-07-10T01:03:11Z",
        "sentAt": "2018-07-10T11:03:11+10:00",
        "bodyStructure": {"type": "text/plain", "partId": "bd48", "header:Content-Language": "en"},
        "bodyValues": {"bd48": {"value": DRAFT_TEXT, "isTruncated": False}},
    }
    raw, parsed = compose(email)
    assert_crlf_only(raw)
    assert b"$seen" not in raw and b"Mdrafts" not in raw  # keywords/mailboxIds aren't headers
    assert parsed.from_ == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert parsed.subject == "World domination"
    assert parsed.sent_at is not None and parsed.sent_at.isoformat() == "2018-07-10T11:03:11+10:00"
    assert header_value(parsed.headers, "Date") == " Tue, 10 Jul 2018 11:03:11 +1000"
    assert parsed.message_id is not None and parsed.message_id[0].endswith("@example.com")  # generated
    assert header_value(parsed.headers, "MIME-Version") == " 1.0"
    [part] = parsed.text_body
    assert part.type == "text/plain" and part.charset == "us-ascii" and part.language == ["en"]
    assert header_value(part.headers, "Content-Language") == "en"  # Raw, as given
    assert body_value(raw, part)["value"] == DRAFT_TEXT


def test_rfc_example_second_draft():
    email = {
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "to": [{"name": "John", "email": "john@example.com"}],
        "subject": "World domination",
        "sentAt": "2018-07-10T11:05:08+10:00",
        "bodyStructure": {
            "type": "multipart/alternative",
            "subParts": [
                {"partId": "a49d", "type": "text/html", "header:Content-Language": "en"},
                {"partId": "bd48", "type": "text/plain", "header:Content-Language": "en"},
            ],
        },
        "bodyValues": {
            "bd48": {"value": DRAFT_TEXT, "isTruncated": False},
            "a49d": {
                "value": f"<!DOCTYPE html><html><body><div>{DRAFT_TEXT}</div></body></html>",
                "isTruncated": False,
            },
        },
    }
    raw, parsed = compose(email)
    assert parsed.body_structure is not None and parsed.body_structure.type == "multipart/alternative"
    assert [part.type for part in parsed.body_structure.sub_parts or []] == ["text/html", "text/plain"]
    assert values(raw, parsed) == {
        "text/plain": DRAFT_TEXT,
        "text/html": f"<!DOCTYPE html><html><body><div>{DRAFT_TEXT}</div></body></html>",
    }
    assert parsed.to == [{"name": "John", "email": "john@example.com"}]
    assert parsed.preview == DRAFT_TEXT


# -- textBody / htmlBody / attachments ---------------------------------------------------------------


def test_text_html_inline_and_attachments():
    email = {
        "from": [{"name": "Jöe", "email": "joe@example.com"}],
        "subject": "Plans",
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "attachments": [
            {"blobId": "png", "type": "image/png", "cid": "logo@example.com", "disposition": "inline"},
            {"blobId": "pdf", "type": "application/pdf", "name": "Plan über alles.pdf", "disposition": "attachment"},
            {"blobId": "message", "type": "message/rfc822", "disposition": "attachment"},
        ],
        "bodyValues": {
            "t": {"value": "Hello café\nsecond line\n"},
            "h": {"value": '<p>Hello café</p><img src="cid:logo@example.com">'},
        },
    }
    raw, parsed = compose(email)
    assert_crlf_only(raw)
    structure = parsed.body_structure
    assert structure is not None and structure.type == "multipart/mixed"
    alternative, pdf, message = structure.sub_parts or []
    assert alternative.type == "multipart/alternative"
    text, related = alternative.sub_parts or []
    assert related.type == "multipart/related"
    html, image = related.sub_parts or []
    assert (text.type, html.type, image.type) == ("text/plain", "text/html", "image/png")
    assert parsed.text_body == [text] and parsed.html_body == [html]
    assert parsed.attachments == [image, pdf, message]
    assert values(raw, parsed) == {
        "text/plain": "Hello café\nsecond line\n",
        "text/html": '<p>Hello café</p><img src="cid:logo@example.com">',
    }
    assert image.cid == "logo@example.com" and part_content(raw, image) == BLOBS["png"]
    assert pdf.name == "Plan über alles.pdf" and pdf.disposition == "attachment"
    assert part_content(raw, pdf) == BLOBS["pdf"]
    assert part_content(raw, message) == BLOBS["message"]
    assert header_value(message.headers, "Content-Transfer-Encoding") is None  # never encoded
    assert parse_message(part_content(raw, message)).subject == "attached"
    assert parsed.has_attachment is True


@pytest.mark.parametrize(
    ("email", "shape"),
    [
        ({"textBody": [{"partId": "t"}]}, "text/plain"),
        ({"htmlBody": [{"partId": "h"}]}, "text/html"),
        ({"textBody": [{"partId": "t"}], "htmlBody": [{"partId": "h"}]}, "multipart/alternative"),
        ({"attachments": [{"blobId": "pdf", "type": "application/pdf"}]}, "application/pdf"),
        ({"textBody": [{"partId": "t"}], "attachments": [{"blobId": "pdf"}]}, "multipart/mixed"),
        ({}, "text/plain"),
    ],
)
def test_body_shapes(email, shape):
    email = {**email, "bodyValues": {"t": {"value": "text"}, "h": {"value": "<p>html</p>"}}}
    _raw, parsed = compose(email)
    assert parsed.body_structure is not None and parsed.body_structure.type == shape


@pytest.mark.parametrize("blob", ["pdf", "png", "lf-text", "crlf-text"])
def test_blobs_round_trip_exactly(blob):
    media = "text/plain" if "text" in blob else "application/octet-stream"
    email = {"bodyStructure": {"blobId": blob, "type": media, "name": "file"}}
    raw, parsed = compose(email)
    assert parsed.body_structure is not None
    assert part_content(raw, parsed.body_structure) == BLOBS[blob]
    assert parsed.body_structure.size == len(BLOBS[blob])


def test_transfer_encodings():
    long_line = "word " * 300
    cases = {
        "ascii": ("Hello\nworld\n", None),
        "latin": ("Grüße aus Köln\n", "quoted-printable"),
        "cjk": ("日本語のテキストです。" * 20, "base64"),
        "long": (long_line, "quoted-printable"),
    }
    for name, (text, encoding) in cases.items():
        email = {"bodyStructure": {"partId": "p", "type": "text/plain"}, "bodyValues": {"p": {"value": text}}}
        raw, parsed = compose(email)
        part = parsed.body_structure
        assert part is not None
        assert header_value(part.headers, "Content-Transfer-Encoding", "Text") == encoding, name
        assert body_value(raw, part)["value"] == text, name
        assert all(len(line) <= 998 for line in raw.split(b"\r\n")), name
        assert part.charset == ("us-ascii" if text.isascii() else "utf-8")


# -- Header fields ---------------------------------------------------------------------------------


def test_addresses_round_trip():
    addresses = [
        {"name": "Joe Bloggs", "email": "joe@example.com"},
        {"name": "Bloggs, Joe", "email": "jb@example.com"},
        {"name": 'Joe "JB" Bloggs', "email": "jb2@example.com"},
        {"name": "Jöran Ærlig", "email": "jöran@exämple.se"},
        {"name": "=?not?q?encoded?=", "email": "tricky@example.com"},
        {"name": None, "email": "plain@example.com"},
        {"name": "", "email": "empty-name@example.com"},
        {"name": "日本語の名前がとても長い場合でもちゃんと動くかどうか試してみる", "email": "long@example.jp"},
    ]
    _raw, parsed = compose({"to": addresses, "cc": [], "bcc": [{"name": None, "email": "hidden@example.com"}]})
    expected = [dict(address, name=address["name"] or None) for address in addresses]
    assert parsed.to == expected
    assert parsed.cc == []
    assert parsed.bcc == [{"name": None, "email": "hidden@example.com"}]  # drafts keep Bcc


def test_subjects_round_trip():
    for subject in [
        "Plain",
        "Café ☕ and a very long subject line that will certainly need folding across lines " * 3,
        "Looks like =?utf-8?q?an_encoded_word?= but isn't",
        "  leading and trailing  ",
        "日本語",
        "tab\tinside",
    ]:
        raw, parsed = compose({"subject": subject})
        assert parsed.subject == subject.strip(), subject
        assert_crlf_only(raw)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    raw, parsed = compose({"subject": "a" + " " * 200 + "b" + " " * 100})
    assert parsed.subject == "a" + " " * 200 + "b"
    assert not re.search(rb"\r\n[ \t]*\r\n(?!\r\n)", raw.split(b"\r\n\r\n", 1)[0] + b"\r\n")  # no blank fold
    _raw, parsed = compose({"subject": "two\nlines"})
    assert parsed.subject == "two lines"  # a header field can't hold a line break


def test_header_properties_in_every_form():
    email = {
        "header:X-Raw": " raw value\r\n\tfolded",
        "header:X-Text:asText": "Ünïcode text",
        "header:X-Addresses:asAddresses": [{"name": "A", "email": "a@example.com"}],
        "header:To:asGroupedAddresses": [
            {"name": None, "addresses": [{"name": None, "email": "solo@example.com"}]},
            {"name": "Friends", "addresses": [{"name": "Jane", "email": "jane@example.com"}]},
            {"name": "Nobody", "addresses": []},
        ],
        "header:References:asMessageIds": ["a@example.com", "b@example.com"],
        "header:In-Reply-To:asMessageIds": ["b@example.com"],
        "header:Resent-Date:asDate": "2020-02-29T23:59:59Z",
        "header:List-Post:asURLs": ["mailto:list@example.com", "https://example.com/post"],
        "header:X-Multi:all": [" one", " two"],
        "header:X-Multi-Text:asText:all": ["first", "second"],
        "messageId": ["given@example.com"],
    }
    _raw, parsed = compose(email)
    headers = parsed.headers
    assert header_value(headers, "X-Raw") == " raw value\r\n\tfolded"
    assert header_value(headers, "X-Text", "Text") == "Ünïcode text"
    assert header_value(headers, "X-Addresses", "Addresses") == [{"name": "A", "email": "a@example.com"}]
    assert header_value(headers, "To", "GroupedAddresses") == email["header:To:asGroupedAddresses"]
    assert parsed.references == ["a@example.com", "b@example.com"]
    assert parsed.in_reply_to == ["b@example.com"]
    assert parsed.message_id == ["given@example.com"]
    assert header_value(headers, "Resent-Date", "Date") == "2020-02-29T23:59:59Z"
    assert header_value(headers, "List-Post", "URLs") == ["mailto:list@example.com", "https://example.com/post"]
    assert header_value(headers, "X-Multi", "Raw", True) == [" one", " two"]
    assert header_value(headers, "X-Multi-Text", "Text", True) == ["first", "second"]


def test_date_defaults_to_now():
    now = datetime(2021, 5, 4, 3, 2, 1, tzinfo=UTC)
    _raw, parsed = compose({}, now=now)
    assert parsed.sent_at == now


def test_rfc2231_file_names():
    for name in ["simple.txt", "with space.txt", "naïve résumé.pdf", "日本語のファイル名" * 5 + ".txt", 'quo"te.txt']:
        email = {
            "attachments": [{"blobId": "pdf", "type": "application/pdf", "name": name, "disposition": "attachment"}]
        }
        raw, parsed = compose(email)
        [attachment] = parsed.attachments
        assert attachment.name == name
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 100 for line in head.split(b"\r\n")), name


def test_part_header_content_type_is_taken_apart():
    email = {"bodyStructure": {"partId": "p", "header:Content-Type": " text/x-custom; format=flowed"}}
    email["bodyValues"] = {"p": {"value": "hi"}}
    _raw, parsed = compose(email)
    part = parsed.body_structure
    assert part is not None and part.type == "text/x-custom"
    assert "format=flowed" in (header_value(part.headers, "Content-Type") or "")


# -- Invalid input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "properties"),
    [
        ({"headers": []}, ["headers"]),
        ({"from": [], "header:From:asAddresses": []}, ["from", "header:From:asAddresses"]),
        ({"header:Subject": " a", "header:subject:asText": "b"}, ["header:Subject", "header:subject:asText"]),
        ({"header:From:asDate": "2020-01-01T00:00:00Z"}, ["header:From:asDate"]),  # forbidden form
        ({"header:X-Foo:asNope": "x"}, ["header:X-Foo:asNope"]),
        ({"header:Content-Type": " text/plain"}, ["header:Content-Type"]),  # Content-* on the Email
        ({"bodyStructure": {"partId": "p"}, "textBody": [{"partId": "p"}]}, ["bodyStructure", "textBody"]),
        ({"textBody": [{"partId": "p"}, {"partId": "p"}]}, ["textBody"]),
        ({"textBody": [{"partId": "p", "type": "text/html"}]}, ["textBody"]),
        ({"htmlBody": [{"partId": "p", "type": "text/plain"}]}, ["htmlBody"]),
        ({"bodyStructure": {"partId": "missing"}}, ["bodyStructure", "bodyValues"]),
        ({"bodyStructure": {"partId": "p", "blobId": "pdf"}}, ["bodyStructure"]),
        ({"bodyStructure": {"type": "text/plain"}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "charset": "utf-8"}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "size": 3}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "headers": []}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "header:Content-Transfer-Encoding": " base64"}}, ["bodyStructure"]),
        (
            {"bodyStructure": {"partId": "p", "type": "text/plain", "header:Content-Type": " text/html"}},
            ["bodyStructure"],
        ),
        ({"bodyStructure": {"partId": "p", "unknown": 1}}, ["bodyStructure"]),
        ({"bodyStructure": {"type": "text/plain", "subParts": []}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "type": "text/plain; charset=utf-8"}}, ["bodyStructure"]),
        ({"bodyStructure": {"type": "multipart/mixed", "blobId": "pdf"}}, ["bodyStructure"]),
        ({"bodyStructure": {"partId": "p", "header:Subject": " x"}, "subject": "y"}, ["bodyStructure"]),
        ({"bodyValues": {"p": {"value": "x", "isTruncated": True}}}, ["bodyValues"]),
        ({"bodyValues": {"p": {"value": "x", "isEncodingProblem": True}}}, ["bodyValues"]),
        ({"bodyValues": {"p": {"value": 3}}}, ["bodyValues"]),
        ({"sentAt": "2018-07-10 11:03:11"}, ["sentAt"]),
        ({"sentAt": "2018-02-30T11:03:11Z"}, ["sentAt"]),
        ({"from": [{"name": "x"}]}, ["from"]),
        ({"from": [{"email": "a@b", "extra": 1}]}, ["from"]),
        ({"to": "joe@example.com"}, ["to"]),
        ({"to": [{"email": "a\r\nBcc: evil@example.com"}]}, ["to"]),
        ({"messageId": ["has space@example.com"]}, ["messageId"]),
        ({"header:X-Raw": " bad\r\nInjected: header"}, ["header:X-Raw"]),
        ({"subject": 42}, ["subject"]),
        ({"id": "e1"}, ["id"]),
        ({"preview": "x"}, ["preview"]),
    ],
)
def test_invalid(email, properties):
    email = {"bodyValues": {"p": {"value": "text"}}, **email}
    with pytest.raises(ComposeError) as caught:
        compose_message(email, BLOBS.get)
    assert not isinstance(caught.value, BlobNotFoundError)
    assert caught.value.properties == properties, str(caught.value)
    assert str(caught.value)


def test_missing_blobs_are_all_named():
    email = {
        "bodyStructure": {
            "type": "multipart/mixed",
            "subParts": [
                {"blobId": "pdf", "type": "application/pdf"},
                {"blobId": "gone-1"},
                {"blobId": "gone-2"},
                {"blobId": "gone-1"},
            ],
        }
    }
    with pytest.raises(BlobNotFoundError) as caught:
        compose_message(email, BLOBS.get)
    assert caught.value.blob_ids == ["gone-1", "gone-2"]
    assert isinstance(caught.value, ComposeError)


def test_header_injection_is_impossible_through_text_and_names():
    raw, parsed = compose(
        {
            "subject": "hi\r\nBcc: evil@example.com",
            "from": [{"name": "Joe\r\nBcc: evil@example.com", "email": "joe@example.com"}],
        }
    )
    assert header_value(parsed.headers, "Bcc") is None
    assert not re.search(rb"^Bcc:", raw, re.M)
