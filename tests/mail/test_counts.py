"""Mailbox counts (RFC 8621 §2): incremental maintenance == exact recount, trash rule.

Emails are made directly as model rows (Thread, Email, EmailMailbox, a pinned Blob), the
way the Email services will, around ``thread_snapshot``/``mailbox_counts_apply``.
"""

from __future__ import annotations

import itertools
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from accounts.services import primary_account
from groupware.core.blobs import blob_id, blob_pin, blob_store
from groupware.core.changes import account_changes, type_state
from groupware.core.models import AccountBlob, ObjectChange
from groupware.mail.models import Email, EmailMailbox, Mailbox, Thread
from groupware.mail.services.counts import (
    MailboxCounts,
    email_destroy_orphans,
    email_id,
    mailbox_counts_apply,
    mailbox_counts_compute,
    mailbox_counts_recompute,
    mailbox_id,
    thread_id,
    thread_snapshot,
)

_serial = itertools.count()


# -- helpers shared with the Mailbox tests ---------------------------------------------------


def account_of(user) -> Account:
    return primary_account(user)


def mailbox(account: Account, role: str) -> Mailbox:
    return Mailbox.objects.get(account=account, role=role)


def add_email(
    account: Account, mailboxes: list[Mailbox], *, thread: Thread | None = None, unread: bool = True
) -> Email:
    """An email as the Email services store one: rows, memberships, blob reference, counts."""
    raw = f"Subject: test {next(_serial)}\r\n\r\nbody\r\n".encode()
    stored = blob_store(account=account, stream_or_bytes=raw, type="message/rfc822")
    with account_changes(account.pk):
        blob_pin(account, blob_id(stored.blob_id))
        if thread is None:
            thread = Thread.objects.create(account=account)
        before = thread_snapshot(account.pk, [thread.pk])
        email = Email.objects.create(
            account=account,
            thread=thread,
            blob_id=stored.blob_id,
            size=len(raw),
            received_at=timezone.now(),
            is_unread=unread,
            keywords={} if unread else {"$seen": True},
        )
        EmailMailbox.objects.bulk_create(
            EmailMailbox(account=account, mailbox=box, email=email, thread_id=thread.pk, received_at=email.received_at)
            for box in mailboxes
        )
        after = thread_snapshot(account.pk, [thread.pk])
        # The caller-known deltas, as the Email services pass them.
        deltas = {box.pk: (1, int(unread)) for box in mailboxes}
        mailbox_counts_apply(account=account, before=before, after=after, email_deltas=deltas)
    return email


def set_unread(email: Email, unread: bool) -> None:
    account = email.account
    with account_changes(account.pk):
        before = thread_snapshot(account.pk, [email.thread_id])
        Email.objects.filter(pk=email.pk).update(is_unread=unread)
        email.is_unread = unread
        mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, [email.thread_id]))


def move(email: Email, *, add: list[Mailbox] = (), remove: list[Mailbox] = ()) -> None:
    account = email.account
    with account_changes(account.pk):
        before = thread_snapshot(account.pk, [email.thread_id])
        EmailMailbox.objects.filter(email=email, mailbox__in=list(remove)).delete()
        for box in add:
            EmailMailbox.objects.get_or_create(
                account=account,
                mailbox=box,
                email=email,
                defaults={"thread_id": email.thread_id, "received_at": email.received_at},
            )
        mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, [email.thread_id]))


def stored_counts(account: Account) -> dict[int, MailboxCounts]:
    rows = Mailbox.objects.filter(account=account).values_list(
        "pk", "total_emails", "unread_emails", "total_threads", "unread_threads"
    )
    return {pk: MailboxCounts(*values) for pk, *values in rows}


def assert_counts_exact(account: Account) -> None:
    assert stored_counts(account) == mailbox_counts_compute(account.pk)


def counts(box: Mailbox) -> MailboxCounts:
    box.refresh_from_db()
    return MailboxCounts(box.total_emails, box.unread_emails, box.total_threads, box.unread_threads)


# -- the counts -------------------------------------------------------------------------------


def test_simple_counts(user):
    account = account_of(user)
    inbox, archive = mailbox(account, "inbox"), mailbox(account, "archive")
    first = add_email(account, [inbox])
    add_email(account, [inbox], thread=first.thread, unread=False)
    add_email(account, [inbox, archive], unread=False)
    assert counts(inbox) == MailboxCounts(total_emails=3, unread_emails=1, total_threads=2, unread_threads=1)
    assert counts(archive) == MailboxCounts(1, 0, 1, 0)
    assert_counts_exact(account)
    set_unread(first, False)
    assert counts(inbox) == MailboxCounts(3, 0, 2, 0)
    assert_counts_exact(account)


def test_unread_thread_counts_where_any_email_of_it_is(user):
    # §2: "the unread Email does not need to be the one in this Mailbox".
    account = account_of(user)
    inbox, sent = mailbox(account, "inbox"), mailbox(account, "sent")
    reply = add_email(account, [sent], unread=False)
    add_email(account, [inbox], thread=reply.thread, unread=True)
    assert counts(sent) == MailboxCounts(1, 0, 1, 1)
    assert counts(inbox) == MailboxCounts(1, 1, 1, 1)
    assert_counts_exact(account)


def test_rfc_trash_example(user):
    # RFC 8621 §2: one thread, an unread email in the trash and a read one in the inbox:
    # unreadThreads is 1 for the trash and 0 for the inbox.
    account = account_of(user)
    inbox, trash = mailbox(account, "inbox"), mailbox(account, "trash")
    read = add_email(account, [inbox], unread=False)
    add_email(account, [trash], thread=read.thread, unread=True)
    assert counts(trash).unread_threads == 1
    assert counts(inbox).unread_threads == 0
    assert counts(inbox).total_threads == counts(trash).total_threads == 1
    assert_counts_exact(account)


def test_trash_ignores_unread_emails_outside_it(user):
    account = account_of(user)
    inbox, trash = mailbox(account, "inbox"), mailbox(account, "trash")
    unread = add_email(account, [inbox], unread=True)
    deleted = add_email(account, [trash], thread=unread.thread, unread=False)
    assert counts(inbox).unread_threads == 1
    assert counts(trash).unread_threads == 0  # the unread email is not in the trash
    # An email in both the trash and the inbox counts for both.
    move(deleted, add=[inbox])
    set_unread(deleted, True)
    set_unread(unread, False)
    assert counts(trash).unread_threads == 1 and counts(inbox).unread_threads == 1
    assert_counts_exact(account)
    # Out of the inbox again, it is only in the trash: ignored for the inbox.
    move(deleted, remove=[inbox])
    assert counts(inbox).unread_threads == 0 and counts(trash).unread_threads == 1
    assert_counts_exact(account)


def test_drafts_role_has_no_special_rule(user):
    account = account_of(user)
    drafts = mailbox(account, "drafts")
    add_email(account, [drafts], unread=False)  # a draft: $draft makes it "not unread"
    assert counts(drafts) == MailboxCounts(1, 0, 1, 0)


def test_count_changes_are_mailbox_changes_without_props_modseq(user):
    account = account_of(user)
    inbox = mailbox(account, "inbox")
    props_before = inbox.props_modseq
    state = type_state(account, "Mailbox")
    add_email(account, [inbox])
    inbox.refresh_from_db()
    assert inbox.props_modseq == props_before
    row = ObjectChange.objects.get(account=account, type_name="Mailbox", object_id=mailbox_id(inbox.pk))
    assert str(row.modseq) == type_state(account, "Mailbox") != state
    assert row.modseq > inbox.props_modseq


def test_apply_records_only_mailboxes_whose_counts_moved(user):
    account = account_of(user)
    inbox, archive = mailbox(account, "inbox"), mailbox(account, "archive")
    email = add_email(account, [inbox], unread=False)
    add_email(account, [archive], unread=False)
    state = type_state(account, "Mailbox")
    with account_changes(account.pk):
        before = thread_snapshot(account.pk, [email.thread_id])
        after = thread_snapshot(account.pk, [email.thread_id])
        assert mailbox_counts_apply(account=account, before=before, after=after) == []
    assert type_state(account, "Mailbox") == state
    set_unread(email, True)
    changed = ObjectChange.objects.filter(account=account, type_name="Mailbox", modseq__gt=int(state))
    assert [row.object_id for row in changed] == [mailbox_id(inbox.pk)]


def test_snapshot_is_one_query(user, django_assert_num_queries):
    account = account_of(user)
    inbox, trash = mailbox(account, "inbox"), mailbox(account, "trash")
    threads = [add_email(account, [inbox, trash]).thread_id for _ in range(5)]
    with django_assert_num_queries(1):
        snapshot = thread_snapshot(account.pk, threads)
    assert len(snapshot.threads) == 10
    assert snapshot.emails == {inbox.pk: (5, 5), trash.pk: (5, 5)}
    with django_assert_num_queries(0):
        thread_snapshot(account.pk, [])


def test_recompute_repairs_drift(user):
    account = account_of(user)
    inbox = mailbox(account, "inbox")
    add_email(account, [inbox])
    Mailbox.objects.filter(pk=inbox.pk).update(total_emails=7, unread_threads=0)
    props_before = Mailbox.objects.get(pk=inbox.pk).props_modseq
    state = type_state(account, "Mailbox")
    assert mailbox_counts_recompute(account) == [inbox.pk]
    assert counts(inbox) == MailboxCounts(1, 1, 1, 1)
    assert type_state(account, "Mailbox") != state
    assert Mailbox.objects.get(pk=inbox.pk).props_modseq == props_before
    assert mailbox_counts_recompute(account) == []


def test_destroy_orphans(user):
    account = account_of(user)
    inbox, archive = mailbox(account, "inbox"), mailbox(account, "archive")
    lone = add_email(account, [inbox])
    pair = add_email(account, [inbox], unread=False)
    sibling = add_email(account, [archive], thread=pair.thread, unread=True)
    state = type_state(account, "Email")
    assert email_destroy_orphans(account, [lone.pk, pair.pk, 999_999]) == sorted([lone.pk, pair.pk])
    assert not Email.objects.filter(pk__in=[lone.pk, pair.pk]).exists()
    assert not EmailMailbox.objects.filter(email_id__in=[lone.pk, pair.pk]).exists()
    # The thread left empty is gone; the other keeps its remaining email.
    assert not Thread.objects.filter(pk=lone.thread_id).exists()
    assert Thread.objects.filter(pk=sibling.thread_id).exists()
    changes = {
        row.object_id: row.destroyed
        for row in ObjectChange.objects.filter(
            account=account, modseq__gt=int(state), type_name__in=["Email", "Thread"]
        )
    }
    assert changes == {
        email_id(lone.pk): True,
        email_id(pair.pk): True,
        thread_id(lone.thread_id): True,
        thread_id(pair.thread_id): False,
    }
    # Blob references dropped (the blobs themselves outlive the call, RFC 8620 §6).
    assert AccountBlob.objects.get(account=account, blob_id=lone.blob_id).refcount == 0
    assert counts(inbox) == MailboxCounts(0, 0, 0, 0)
    assert counts(archive) == MailboxCounts(1, 1, 1, 1)
    assert_counts_exact(account)
    assert email_destroy_orphans(account, []) == []


def test_trash_role_change_moves_unread_threads(user):
    from groupware.mail.services.mailboxes import mailbox_update

    account = account_of(user)
    inbox, trash, junk = mailbox(account, "inbox"), mailbox(account, "trash"), mailbox(account, "junk")
    read = add_email(account, [inbox], unread=False)
    add_email(account, [junk], thread=read.thread, unread=True)
    assert counts(inbox).unread_threads == 1
    with account_changes(account.pk):
        mailbox_update(mailbox=trash, role=None)
        mailbox_update(mailbox=Mailbox.objects.get(pk=junk.pk), role="trash")
    # The unread email is now only in the trash: ignored for the inbox.
    assert counts(inbox).unread_threads == 0 and counts(junk).unread_threads == 1
    assert_counts_exact(account)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_recount(user, seed):
    rng = random.Random(seed)
    account = account_of(user)
    boxes = list(Mailbox.objects.filter(account=account).order_by("pk"))
    emails: list[Email] = []
    for _ in range(60):
        action = rng.random()
        if action < 0.35 or not emails:
            thread = rng.choice(emails).thread if emails and rng.random() < 0.5 else None
            chosen = rng.sample(boxes, rng.randint(1, 2))
            emails.append(add_email(account, chosen, thread=thread, unread=rng.random() < 0.5))
        elif action < 0.6:
            email = rng.choice(emails)
            set_unread(email, not email.is_unread)
        elif action < 0.85:
            email = rng.choice(emails)
            current = set(EmailMailbox.objects.filter(email=email).values_list("mailbox_id", flat=True))
            target = rng.choice(boxes)
            if target.pk in current and len(current) > 1:
                move(email, remove=[target])
            else:
                move(email, add=[target])
        else:
            email = emails.pop(rng.randrange(len(emails)))
            email_destroy_orphans(account, [email.pk])
        assert_counts_exact(account)
    assert mailbox_counts_recompute(account) == []


def test_recount_query_count_does_not_grow(user):
    account = account_of(user)
    inbox = mailbox(account, "inbox")
    for _ in range(3):
        add_email(account, [inbox])
    with CaptureQueriesContext(connection) as few:
        mailbox_counts_compute(account.pk)
    for _ in range(20):
        add_email(account, [inbox])
    with CaptureQueriesContext(connection) as many:
        mailbox_counts_compute(account.pk)
    assert len(many) == len(few)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks between threads need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_counts_exact():
    import threading

    from django.db import connections

    from accounts.services import user_create

    account = account_of(user_create(email="busy@example.com", password="x" * 12))
    inbox, trash = mailbox(account, "inbox"), mailbox(account, "trash")
    shared = add_email(account, [inbox])
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for step in range(5):
                email = add_email(account, [inbox, trash][index % 2 :], thread=shared.thread if step % 2 else None)
                set_unread(email, bool(step % 3))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert counts(inbox).total_emails == 1 + 2 * 5
    assert_counts_exact(account)
