"""Helpers for the Email and Thread tests: build messages, ingest them, call the API."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from accounts.models import Account
from groupware.mail.models import Email, Mailbox
from groupware.mail.services.counts import mailbox_counts_recompute, mailbox_id
from groupware.mail.services.emails import email_ingest
from tests.conftest import CallAssertions, JmapClient

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]


def message(
    *,
    subject: str | None = "Hello",
    message_id: str | None = "<m1@example.com>",
    in_reply_to: str | None = None,
    references: str | None = None,
    from_: str = "Joe Bloggs <joe@example.com>",
    to: str = "Alice <alice@example.com>",
    date: datetime | str | None = "Sun, 13 Oct 2013 14:12:00 +0000",
    body: str = "Hello there.\n",
    extra_headers: str = "",
    crlf: bool = True,
) -> bytes:
    """A small text/plain message."""
    lines = [f"From: {from_}", f"To: {to}"]
    if subject is not None:
        lines.append(f"Subject: {subject}")
    if date is not None:
        lines.append(f"Date: {format_datetime(date) if isinstance(date, datetime) else date}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to is not None:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references is not None:
        lines.append(f"References: {references}")
    lines.append("MIME-Version: 1.0")
    lines.append("Content-Type: text/plain; charset=utf-8")
    if extra_headers:
        lines.extend(extra_headers.strip("\n").split("\n"))
    text = "\n".join(lines) + "\n\n" + body
    return text.replace("\n", "\r\n").encode() if crlf else text.encode()


def mailbox(account: Account, role: str = "inbox") -> Mailbox:
    return Mailbox.objects.get(account=account, role=role)


def ingest(
    account: Account,
    raw: bytes,
    *,
    roles: tuple[str, ...] = ("inbox",),
    keywords: dict[str, bool] | None = None,
    received_at: datetime | None = None,
) -> Email:
    """Store a test message through the ingest service (as delivery would)."""
    return email_ingest(
        account=account,
        raw=raw,
        mailbox_ids=[mailbox(account, role).pk for role in roles],
        keywords=keywords or {},
        received_at=received_at,
    )


def counts_are_exact(account: Account) -> bool:
    """The incrementally kept Mailbox counts equal a full recount."""
    return mailbox_counts_recompute(account) == []


class MailApi(CallAssertions):
    """The JMAP API with the mail capability, on one user's personal account."""

    # The capabilities every request uses (subclasses for other specs add theirs).
    using: list[str] = USING

    def __init__(self, client: JmapClient) -> None:
        self.client = client
        self.account_id = client.account_id
        self.account = Account.objects.get(owner=client.user, is_personal=True)

    def call(self, name: str, arguments: dict, account_id: str | None = None) -> list:
        if "accountId" not in arguments and "fromAccountId" not in arguments:
            arguments = {"accountId": account_id or self.account_id, **arguments}
        return self.client.call(name, arguments, using=self.using)

    def request(self, calls: list) -> list:
        return self.client.request(calls, using=self.using)["methodResponses"]

    def mailbox_id(self, role: str = "inbox") -> str:
        return mailbox_id(mailbox(self.account, role).pk)

    def upload(self, data: bytes, content_type: str = "message/rfc822") -> str:
        response = self.client.http.post(
            f"/jmap/upload/{self.account_id}/", data, content_type=content_type, HTTP_AUTHORIZATION=self.client.auth
        )
        assert response.status_code == 201, response.content
        return orjson.loads(response.content)["blobId"]

    def import_message(self, raw: bytes, *, role: str = "inbox", keywords: dict | None = None, **extra: Any) -> dict:
        blob = self.upload(raw)
        item = {"blobId": blob, "mailboxIds": {self.mailbox_id(role): True}, "keywords": keywords or {}, **extra}
        result = self.ok("Email/import", {"emails": {"i": item}})
        assert result["notCreated"] is None, result["notCreated"]
        return result["created"]["i"]

    def get(self, ids: list[str], **arguments: Any) -> list[dict]:
        return self.ok("Email/get", {"ids": ids, **arguments})["list"]

    def email(self, email_id: str, **arguments: Any) -> dict:
        found = self.get([email_id], **arguments)
        assert len(found) == 1, found
        return found[0]

    def state(self, type_name: str = "Email") -> str:
        return self.ok(f"{type_name}/get", {"ids": []})["state"]


@pytest.fixture(name="mail")
def mail_fixture(jmap) -> MailApi:
    return MailApi(jmap)


@pytest.fixture(name="other_mail")
def other_mail_fixture(other_jmap) -> MailApi:
    return MailApi(other_jmap)
