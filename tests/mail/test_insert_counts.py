"""New Emails move the mailbox counts without reading the threads a second time.

``emails_import`` knows the roles of the mailboxes it stores into, so the counts after an
insert are worked out from the snapshot taken before it (new Emails only add
memberships). These tests check that this equals a full recount in every case the trash
rule of RFC 8621 §2 distinguishes, and that the second read is really gone.
"""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.services import primary_account
from groupware.mail.models import Email, Mailbox
from groupware.mail.services.counts import snapshot_adding, thread_snapshot
from groupware.mail.services.emails import EmailImport, email_prepare, emails_import
from tests.mail.factories import counts_are_exact, ingest, mailbox, message

pytestmark = pytest.mark.django_db

MEMBERSHIP_READ = "FROM mail_emailmailbox em JOIN mail_email e"


def _import(account: Account, raw: bytes, boxes: list[Mailbox], keywords: dict[str, bool]) -> Email:
    item = EmailImport(prepared=email_prepare(raw=raw), mailbox_ids=[box.pk for box in boxes], keywords=keywords)
    (result,) = emails_import(account=account, items=[item])
    assert isinstance(result, Email), result
    return result


@pytest.mark.parametrize(("seed", "batch"), [(1, 1), (2, 1), (3, 1), (4, 1), (5, 8), (6, 8)])
def test_counts_after_imports_equal_a_recount(user, seed, batch):
    """Replies join threads whose Emails are in the trash, elsewhere or both, read or not;
    imported one at a time, or in batches whose messages also reply to each other (a
    Thread created and joined in one batch)."""
    rng = random.Random(seed)
    account = primary_account(user)
    boxes = [mailbox(account, role) for role in ("inbox", "trash", "archive", "junk")]
    message_ids: list[str] = []
    for round_number in range(48 // batch):
        items = []
        for _ in range(batch):
            parent = rng.choice(message_ids) if message_ids and rng.random() < 0.6 else None
            own = f"<s{seed}-{len(message_ids)}@example.com>"
            raw = message(
                subject="Re: topic" if parent else f"topic {len(message_ids)}",
                message_id=own,
                in_reply_to=parent,
                references=parent,
            )
            keywords = {"$seen": True} if rng.random() < 0.5 else {}
            chosen = [box.pk for box in rng.sample(boxes, rng.randint(1, 3))]
            items.append(EmailImport(prepared=email_prepare(raw=raw), mailbox_ids=chosen, keywords=keywords))
            message_ids.append(own)
        results = emails_import(account=account, items=items)
        assert all(isinstance(result, Email) for result in results), results
        assert counts_are_exact(account), round_number


def test_an_import_reads_the_memberships_once(user):
    account = primary_account(user)
    first = ingest(account, message(subject="topic", message_id="<a@example.com>"), roles=("inbox", "trash"))
    assert first.thread_id
    reply = message(subject="Re: topic", message_id="<b@example.com>", in_reply_to="<a@example.com>")
    with CaptureQueriesContext(connection) as captured:
        _import(account, reply, [mailbox(account, "inbox")], {})
    reads = [query["sql"] for query in captured.captured_queries if MEMBERSHIP_READ in query["sql"]]
    assert len(reads) == 1, reads  # the snapshot before; the one after is worked out
    assert counts_are_exact(account)


def test_snapshot_adding_equals_a_snapshot_read_after(user):
    account = primary_account(user)
    inbox, trash = mailbox(account, "inbox"), mailbox(account, "trash")
    email = ingest(account, message(message_id="<x@example.com>"), roles=("trash",))
    before = thread_snapshot(account.pk, [email.thread_id])
    reply = ingest(
        account,
        message(subject="Re: Hello", message_id="<y@example.com>", in_reply_to="<x@example.com>"),
        roles=("inbox",),
        keywords={"$seen": True},
    )
    assert reply.thread_id == email.thread_id
    added = snapshot_adding(before, [(reply.thread_id, (inbox.pk, False, False))])
    read = thread_snapshot(account.pk, [email.thread_id])
    assert (added.thread_ids, added.threads, added.emails) == (read.thread_ids, read.threads, read.emails)
    # The unread Email is only in the trash: the inbox's thread is read there.
    assert added.threads[(inbox.pk, email.thread_id)] is False
    assert added.threads[(trash.pk, email.thread_id)] is True
