"""Builders for the Email/query, search and snippet tests.

Emails are stored as rows (thread, blob, Email, memberships, counts, change records and
the search index), the way the ingest service stores them, so these tests depend on
neither the MIME parser nor the ingest service. ``corpus`` is the fixed set of messages
the filter and sort expectations below are written against.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from accounts.models import Account
from groupware.core.changes import Change, account_changes
from groupware.core.models import AccountBlob, Blob
from groupware.mail.models import Email, EmailMailbox, Mailbox, Thread
from groupware.mail.search import search_index_add
from groupware.mail.services.counts import (
    EMAIL_TYPE,
    THREAD_TYPE,
    email_id,
    mailbox_counts_apply,
    mailbox_id,
    thread_id,
    thread_snapshot,
)
from groupware.mail.services.emails import sort_columns, utc_offset_minutes
from groupware.mail.services.threads import base_subject
from tests.mail.factories import MailApi

_serial = itertools.count()

Address = tuple[str | None, str]


def when(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def _address_json(addresses: tuple[Address, ...]) -> list[dict[str, Any]] | None:
    return [{"name": name, "email": address} for name, address in addresses] or None


def _address_text(addresses: tuple[Address, ...]) -> str:
    return " ".join(f"{name or ''} <{address}>" for name, address in addresses)


def store_email(
    account: Account,
    *,
    subject: str = "",
    from_: tuple[Address, ...] = (),
    to: tuple[Address, ...] = (),
    cc: tuple[Address, ...] = (),
    bcc: tuple[Address, ...] = (),
    body: str = "",
    attachments: str = "",
    mailboxes: tuple[str, ...] = ("inbox",),
    keywords: tuple[str, ...] = (),
    received_at: datetime,
    sent_at: datetime | None = None,
    size: int = 1000,
    thread: Thread | None = None,
    has_attachment: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
) -> Email:
    """Store one email as the ingest service would (without a MIME message)."""
    all_headers = [("From", _address_text(from_)), ("To", _address_text(to))]
    if subject:
        all_headers.append(("Subject", subject))
    all_headers.extend(headers)
    # What groupware.mail.mime stores as the parse's searchText.
    search_text = {
        "subject": subject,
        "from": _address_text(from_),
        "to": _address_text(to),
        "cc": _address_text(cc),
        "bcc": _address_text(bcc),
        "body": body,
        "attachments": attachments,
    }
    with account_changes(account.pk) as changes:
        if thread is None:
            thread = Thread.objects.create(account=account)
            changes.record(THREAD_TYPE, thread_id(thread.pk), Change.CREATED)
        else:
            changes.record(THREAD_TYPE, thread_id(thread.pk), Change.UPDATED)
        before = thread_snapshot(account.pk, [thread.pk])
        sha256 = hashlib.sha256(f"message {next(_serial)} {subject}".encode()).hexdigest()
        Blob.objects.create(sha256=sha256, size=size)
        AccountBlob.objects.create(account=account, blob_id=sha256, refcount=1, type="message/rfc822")
        email = Email.objects.create(
            account=account,
            thread=thread,
            blob_id=sha256,
            size=size,
            received_at=received_at,
            sent_at=sent_at,
            sent_at_offset=utc_offset_minutes(sent_at),
            subject=subject,
            base_subject=base_subject(subject),
            from_addresses=_address_json(from_),
            to=_address_json(to),
            cc=_address_json(cc),
            bcc=_address_json(bcc),
            **sort_columns(subject=subject, from_addresses=_address_json(from_), to=_address_json(to)),
            preview=body[:256],
            has_attachment=has_attachment,
            keywords=dict.fromkeys(keywords, True),
            is_unread="$seen" not in keywords and "$draft" not in keywords,
            parsed={
                "headers": [{"name": name, "value": " " + value} for name, value in all_headers],
                "searchText": search_text,
            },
        )
        roles = {box.role: box.pk for box in Mailbox.objects.filter(account=account, role__in=mailboxes)}
        EmailMailbox.objects.bulk_create(
            [
                EmailMailbox(
                    account=account, mailbox_id=roles[role], email=email, thread_id=thread.pk, received_at=received_at
                )
                for role in mailboxes
            ]
        )
        changes.record(EMAIL_TYPE, email_id(email.pk), Change.CREATED)
        mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, [thread.pk]))
        search_index_add(email=email, fields=search_text)
    return email


ALICE: Address = ("Alice Smith", "alice@example.com")
BOB: Address = ("Bob", "bob@example.org")
CAROL: Address = ("Carol", "carol@example.net")


def build_corpus(account: Account) -> dict[str, Email]:
    """Eight messages in six threads, across inbox, archive, sent, junk and trash."""
    emails: dict[str, Email] = {}
    quarterly = Thread.objects.create(account=account)
    lunch = Thread.objects.create(account=account)
    with account_changes(account.pk) as changes:
        changes.record(THREAD_TYPE, thread_id(quarterly.pk), Change.CREATED)
        changes.record(THREAD_TYPE, thread_id(lunch.pk), Change.CREATED)
    emails["m1"] = store_email(
        account,
        subject="Quarterly report",
        from_=(ALICE,),
        to=(BOB,),
        body="Please find the quarterly numbers attached. Revenue is up.",
        attachments="report.pdf",
        keywords=("$seen",),
        received_at=when(1),
        sent_at=when(1, 9, 59),
        size=1000,
        thread=quarterly,
        has_attachment=True,
        headers=(("X-Mailer", "Acme Mail 2.0"),),
    )
    emails["m2"] = store_email(
        account,
        subject="Re: Quarterly report",
        from_=(BOB,),
        to=(ALICE,),
        cc=(CAROL,),
        body="Thanks! The numbers look great.",
        keywords=("$seen", "$flagged"),
        received_at=when(2),
        size=2000,
        thread=quarterly,
    )
    emails["m3"] = store_email(
        account,
        subject="Lunch on Friday?",
        from_=(CAROL,),
        to=((None, "alice@example.com"),),
        body="Shall we try the new café near the station?",
        received_at=when(3, 12),
        sent_at=when(3, 11),
        size=1500,
        thread=lunch,
        headers=(("X-Priority", "1 (Highest)"),),
    )
    emails["m4"] = store_email(
        account,
        subject="Invoice #42",
        from_=(("Billing", "billing@shop.example"),),
        to=(("Alice", "alice@example.com"),),
        bcc=(("", "archive@example.com"),),
        body="Your invoice 42 for order 1337 is ready. Amount due: 99 EUR",
        attachments="invoice-42.pdf",
        mailboxes=("archive",),
        keywords=("$seen",),
        received_at=when(4),
        sent_at=when(4),
        size=3000,
        has_attachment=True,
        headers=(("X-Mailer", "Shopware"), ("Subject", "=?utf-8?q?Rechnung_f=C3=BCr_Sie?=")),
    )
    emails["m5"] = store_email(
        account,
        subject="Straße & Ölkännchen",
        from_=(("Jürgen Müller", "juergen@example.de"),),
        to=(ALICE,),
        body="Grüße aus München! 東京タワー is tall.",
        mailboxes=("inbox", "archive"),
        keywords=("$flagged",),
        received_at=when(5),
        sent_at=when(5),
        size=800,
    )
    emails["m6"] = store_email(
        account,
        subject="Re: Lunch on Friday?",
        from_=(ALICE,),
        to=(CAROL,),
        body='Yes, "new café" sounds good. <b>bold</b> & more',
        mailboxes=("sent",),
        keywords=("$seen",),
        received_at=when(6),
        sent_at=when(6),
        size=1200,
        thread=lunch,
    )
    emails["m7"] = store_email(
        account,
        subject="9 lives spam offer",
        from_=(("_spammer", "spam@junk.example"),),
        to=(("Alice", "alice@example.com"),),
        body="Buy now: business bus tickets",
        mailboxes=("junk",),
        received_at=when(7),
        size=500,
    )
    emails["m8"] = store_email(
        account,
        subject="10 reasons",
        body="numbered list with 2 items",
        mailboxes=("trash",),
        keywords=("$seen",),
        received_at=when(8),
        sent_at=when(2),
        size=700,
    )
    return emails


class QueryApi(MailApi):
    """MailApi plus Email/query helpers that speak in corpus keys (m1...)."""

    def __init__(self, client: Any, emails: dict[str, Email]) -> None:
        super().__init__(client)
        self.emails = emails
        self.keys = {email_id(email.pk): key for key, email in emails.items()}

    def refresh(self, emails: dict[str, Email]) -> None:
        self.emails = emails
        self.keys = {email_id(email.pk): key for key, email in emails.items()}

    def jmap_id(self, key: str) -> str:
        return email_id(self.emails[key].pk)

    def mailbox(self, role: str) -> str:
        return mailbox_id(Mailbox.objects.get(account=self.account, role=role).pk)

    def query(self, **arguments: Any) -> dict:
        return self.ok("Email/query", arguments)

    def names(self, **arguments: Any) -> list[str]:
        return [self.keys.get(object_id, object_id) for object_id in self.query(**arguments)["ids"]]


@pytest.fixture(name="corpus")
def corpus_fixture(mail) -> QueryApi:
    return QueryApi(mail.client, build_corpus(mail.account))
