"""Every message of the shared MIME corpus is imported, fetched and parsed without an error
(with CRLF line ends, as on the wire, and LF-only, as many tools write them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mail.factories import counts_are_exact, mail_fixture  # noqa: F401 (fixtures)

CORPUS = Path(os.environ.get("MIME_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "corpus" / "mime"))
FILES = sorted(CORPUS.glob("*/*.eml")) if CORPUS.is_dir() else []

ALL_PROPERTIES = [
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview", "headers", "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments",
    "header:Subject:asText", "header:From:asAddresses:all", "header:To:asGroupedAddresses",
    "header:Date:asDate", "header:References:asMessageIds", "header:List-Unsubscribe:asURLs",
    "header:Received:all", "header:Content-Type",
]  # fmt: skip
ALL_BODY_PROPERTIES = [
    "partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid", "language",
    "location", "subParts", "header:Content-Type:asRaw", "header:Content-Disposition",
]  # fmt: skip


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _message_parts(part: dict | None) -> list[dict]:
    if part is None:
        return []
    found = [part] if part.get("type", "").lower() in ("message/rfc822", "message/global") else []
    for sub in part.get("subParts") or []:
        found.extend(_message_parts(sub))
    return found


@pytest.mark.skipif(not FILES, reason="the shared MIME corpus is not available")
@pytest.mark.parametrize("line_ends", ["crlf", "lf"])
def test_corpus_imports_and_fetches(mail, line_ends):
    convert = _crlf if line_ends == "crlf" else _lf
    blobs = {}
    for path in FILES:
        raw = convert(path.read_bytes())
        blobs[path] = (mail.upload(raw), len(raw))
    failures = []
    for path, (blob, size) in blobs.items():
        name = str(path.relative_to(CORPUS))
        result = mail.ok(
            "Email/import", {"emails": {"m": {"blobId": blob, "mailboxIds": {mail.mailbox_id("inbox"): True}}}}
        )
        if result["created"] is None:
            # Every message is stored, however broken (degraded output is fine).
            failures.append((name, "import", result["notCreated"]))
            continue
        email_id = result["created"]["m"]["id"]
        response = mail.call(
            "Email/get",
            {
                "ids": [email_id],
                "properties": ALL_PROPERTIES,
                "bodyProperties": ALL_BODY_PROPERTIES,
                "fetchAllBodyValues": True,
                "maxBodyValueBytes": 0,
            },
        )
        if response[0] != "Email/get":
            failures.append((name, "get", response[1]))
            continue
        [item] = response[1]["list"]
        if item["size"] != size or item["blobId"] != blob:
            failures.append((name, "size/blobId", item["size"], size))
        if len(item["preview"]) > 256:
            failures.append((name, "preview", len(item["preview"])))
        truncated = mail.call(
            "Email/get",
            {
                "ids": [email_id],
                "properties": ["bodyValues"],
                "fetchTextBodyValues": True,
                "fetchHTMLBodyValues": True,
                "maxBodyValueBytes": 7,
            },
        )
        if truncated[0] != "Email/get" or any(
            len(value["value"].encode()) > 7 for value in truncated[1]["list"][0]["bodyValues"].values()
        ):
            failures.append((name, "truncated", truncated[1]))
        parse_ids = [blob] + [part["blobId"] for part in _message_parts(item["bodyStructure"]) if part["blobId"]]
        parsed = mail.call(
            "Email/parse",
            {
                "blobIds": parse_ids,
                "properties": [prop for prop in ALL_PROPERTIES if prop not in ("headers",)],
                "bodyProperties": ALL_BODY_PROPERTIES,
                "fetchAllBodyValues": True,
            },
        )
        if parsed[0] != "Email/parse" or parsed[1]["notFound"]:
            failures.append((name, "parse", parsed[1]))
    assert failures == []
    assert counts_are_exact(mail.account)
