"""Mailbox counts (RFC 8621 §2): totalEmails, unreadEmails, totalThreads, unreadThreads.

The counts are stored on each Mailbox row and maintained incrementally, never counted per
request. A write that changes which mailboxes an email is in, whether it is unread, or
which emails exist takes a snapshot of the threads it touches before and after the change
and applies the difference (all inside the account lock, so nothing moves in between)::

    with account_changes(account.pk):
        before = thread_snapshot(account.pk, thread_ids)
        ...  # change EmailMailbox rows / Email.is_unread / delete emails
        after = thread_snapshot(account.pk, thread_ids)
        mailbox_counts_apply(account=account, before=before, after=after)

``thread_ids`` must cover every thread an affected email was or is in. Count changes are
recorded as Mailbox changes without moving ``Mailbox.props_modseq``, which is what lets
Mailbox/changes answer ``updatedProperties`` (RFC 8621 §2.2).

unreadThreads follows §2's "quality implementation": a thread counts as unread in a
mailbox if at least one of its emails is in the mailbox and at least one of its emails is
unread (neither $seen nor $draft, ``Email.is_unread``), where emails only in the trash are
ignored for every other mailbox, and emails not in the trash are ignored for the trash.

This module also names the mail store's objects for change tracking (type names and ids),
and destroys emails (``email_destroy_orphans``), which Mailbox/set needs for
onDestroyRemoveEmails (§2.5) and the Email work reuses for Email/set destroy.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from django.db.models import Count, Sum

from accounts.models import Account
from accounts.quotas import quota_charge
from groupware.core import sql
from groupware.core.blobs import blob_id, blob_unpin
from groupware.core.changes import Change, account_changes, account_changes_joined
from groupware.core.ids import decode, encode
from groupware.mail.models import Email, EmailMailbox, Mailbox, Thread
from groupware.mail.search import search_index_remove

# Change-tracking type names and id prefixes of the mail store (RFC 8620 §1.2 ids).
MAILBOX_TYPE = "Mailbox"
EMAIL_TYPE = "Email"
THREAD_TYPE = "Thread"
MAILBOX_ID_PREFIX = "m"
EMAIL_ID_PREFIX = "e"
THREAD_ID_PREFIX = "t"

TRASH_ROLE = "trash"
COUNT_PROPERTIES = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")

# Keeps ``pk__in`` lists well under SQLite's bound-parameter limit.
_CHUNK = 5000

T = TypeVar("T")


def is_unread(keywords: Mapping[str, Any]) -> bool:
    """Whether an Email with these keywords counts as unread (RFC 8621 §2: neither $seen
    nor $draft); stored as ``Email.is_unread``."""
    return "$seen" not in keywords and "$draft" not in keywords


def mailbox_id(pk: int) -> str:
    return encode(MAILBOX_ID_PREFIX, pk)


def mailbox_pk(object_id: object) -> int | None:
    return decode(MAILBOX_ID_PREFIX, object_id)


def email_id(pk: int) -> str:
    return encode(EMAIL_ID_PREFIX, pk)


def thread_id(pk: int) -> str:
    return encode(THREAD_ID_PREFIX, pk)


def in_chunks(items: Iterable[T], size: int = _CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class MailboxCounts(NamedTuple):
    total_emails: int = 0
    unread_emails: int = 0
    total_threads: int = 0
    unread_threads: int = 0


# One membership as the counts see it: (mailbox pk, email unread, mailbox is the trash).
Membership = tuple[int, bool, bool]


@dataclass(frozen=True)
class Snapshot:
    """What the counts of every mailbox owe to a set of threads at one moment."""

    thread_ids: frozenset[int]
    # (mailbox pk, thread pk) -> whether the thread counts as unread in that mailbox; a
    # missing key means the thread has no email in the mailbox.
    threads: dict[tuple[int, int], bool] = field(default_factory=dict)
    # mailbox pk -> (emails, unread emails) of these threads in the mailbox.
    emails: dict[int, tuple[int, int]] = field(default_factory=dict)
    # thread pk -> its memberships (what ``snapshot_adding`` builds on).
    memberships: dict[int, list[Membership]] = field(default_factory=dict)


def _thread_unread_by_mailbox(memberships: Iterable[Membership]) -> dict[int, bool]:
    """One thread's (mailbox, email unread, mailbox is trash) rows -> mailbox: unread there.

    RFC 8621 §2 unreadThreads: an unread email counts for the trash only through a trash
    membership, and for other mailboxes only through a membership outside the trash.
    """
    is_trash: dict[int, bool] = {}
    unread_in_trash = False
    unread_elsewhere = False
    for mailbox, unread, in_trash in memberships:
        is_trash[mailbox] = in_trash
        if unread:
            if in_trash:
                unread_in_trash = True
            else:
                unread_elsewhere = True
    return {mailbox: unread_in_trash if trash else unread_elsewhere for mailbox, trash in is_trash.items()}


def _membership_rows(account_id: int, thread_ids: Sequence[int] | None) -> Iterator[tuple[int, int, bool, str | None]]:
    """(thread, mailbox, email unread, mailbox role) for memberships, one query (per chunk)."""
    if thread_ids is None:
        query = EmailMailbox.objects.filter(account_id=account_id)
        fields = ("thread_id", "mailbox_id", "email__is_unread", "mailbox__role")
        yield from query.order_by("thread_id").values_list(*fields).iterator(chunk_size=2000)
        return
    for chunk in in_chunks(thread_ids):
        # Plain SQL (groupware.core.sql): every write that moves Emails takes two of these.
        for thread, mailbox, unread, role in sql.rows(
            "SELECT em.thread_id, em.mailbox_id, e.is_unread, m.role FROM mail_emailmailbox em"  # noqa: S608
            " JOIN mail_email e ON e.id = em.email_id JOIN mail_mailbox m ON m.id = em.mailbox_id"
            f" WHERE em.account_id = %s AND em.thread_id IN ({sql.placeholders(len(chunk))})",
            [account_id, *chunk],
        ):
            yield thread, mailbox, bool(unread), role


def thread_snapshot(account_id: int, thread_ids: Iterable[int]) -> Snapshot:
    """Which mailboxes each thread is in and whether it counts as unread there (one query).

    Take it inside the account's ``account_changes`` so no other writer moves the data
    between the snapshot before and the one after a change.
    """
    wanted = frozenset(thread_ids)
    if not wanted:
        return Snapshot(thread_ids=wanted)
    by_thread: dict[int, list[Membership]] = defaultdict(list)
    for thread, mailbox, unread, role in _membership_rows(account_id, sorted(wanted)):
        by_thread[thread].append((mailbox, unread, role == TRASH_ROLE))
    return _snapshot(wanted, by_thread)


def snapshot_adding(before: Snapshot, added: Iterable[tuple[int, Membership]]) -> Snapshot:
    """The snapshot after memberships (thread pk, membership) were added to the threads of
    ``before`` and nothing else of theirs changed: worked out without a query (new Emails
    add only memberships). Threads new to ``before`` may be among them."""
    by_thread = {thread: list(rows) for thread, rows in before.memberships.items()}
    threads = set(before.thread_ids)
    for thread, membership in added:
        by_thread.setdefault(thread, []).append(membership)
        threads.add(thread)
    return _snapshot(frozenset(threads), by_thread)


def _snapshot(thread_ids: frozenset[int], by_thread: dict[int, list[Membership]]) -> Snapshot:
    emails: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for rows in by_thread.values():
        for mailbox, unread, _ in rows:
            counted = emails[mailbox]
            counted[0] += 1
            counted[1] += int(unread)
    threads = {
        (mailbox, thread): unread
        for thread, rows in by_thread.items()
        for mailbox, unread in _thread_unread_by_mailbox(rows).items()
    }
    return Snapshot(
        thread_ids=thread_ids,
        threads=threads,
        emails={mailbox: (c[0], c[1]) for mailbox, c in emails.items()},
        memberships=dict(by_thread),
    )


def _email_deltas(before: Snapshot, after: Snapshot) -> dict[int, tuple[int, int]]:
    deltas = {}
    for mailbox in before.emails.keys() | after.emails.keys():
        old_total, old_unread = before.emails.get(mailbox, (0, 0))
        new_total, new_unread = after.emails.get(mailbox, (0, 0))
        deltas[mailbox] = (new_total - old_total, new_unread - old_unread)
    return deltas


def mailbox_counts_apply(
    *,
    account: Account,
    before: Snapshot,
    after: Snapshot,
    email_deltas: dict[int, tuple[int, int]] | None = None,
    batch: sql.Batch | None = None,
) -> list[int]:
    """Move the stored counts by the difference between two snapshots of the same threads.

    A thread in only one of the snapshots counts as in no mailbox in the other (e.g. a
    thread the change created). ``email_deltas`` (mailbox pk -> (totalEmails delta,
    unreadEmails delta)) may be given by a caller that knows them; by default they come
    from the snapshots, which then must cover the same threads. Each changed
    mailbox is recorded as a Mailbox change that leaves ``props_modseq`` alone (counts
    only, RFC 8621 §2.2). Returns the pks of the mailboxes whose counts moved.

    ``batch``: the updates join it (run by the caller); the mailboxes are then taken to
    exist, as the caller read them under the account lock.
    """
    if email_deltas is None:
        email_deltas = _email_deltas(before, after)
    deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for mailbox, (total, unread) in email_deltas.items():
        deltas[mailbox][0] += total
        deltas[mailbox][1] += unread
    for key in before.threads.keys() | after.threads.keys():
        was, now = before.threads.get(key), after.threads.get(key)
        delta = deltas[key[0]]
        delta[2] += (now is not None) - (was is not None)
        delta[3] += bool(now) - bool(was)
    changed = {mailbox: delta for mailbox, delta in deltas.items() if any(delta)}
    if not changed:
        return []
    moved = []
    with account_changes_joined(account.pk) as changes:
        for mailbox in sorted(changed):
            params = [*changed[mailbox], mailbox, account.pk]
            if batch is not None:
                batch.add(_MOVE_COUNTS, params)
            elif not sql.execute(_MOVE_COUNTS, params):
                continue  # gone
            changes.record(MAILBOX_TYPE, mailbox_id(mailbox), Change.UPDATED)
            moved.append(mailbox)
    return moved


_MOVE_COUNTS = (
    "UPDATE mail_mailbox SET total_emails = total_emails + %s, unread_emails = unread_emails + %s,"
    " total_threads = total_threads + %s, unread_threads = unread_threads + %s"
    " WHERE id = %s AND account_id = %s"
)


def mailbox_counts_compute(account_id: int) -> dict[int, MailboxCounts]:
    """The exact counts of every mailbox of the account, counted from the memberships.

    One pass over the account's memberships in thread order (streamed): for checks, the
    repair below and tests; requests never need it.
    """
    totals: dict[int, list[int]] = {
        pk: [0, 0, 0, 0] for pk in Mailbox.objects.filter(account_id=account_id).values_list("pk", flat=True)
    }
    for _, group in itertools.groupby(_membership_rows(account_id, None), key=lambda row: row[0]):
        rows = [(mailbox, unread, role == TRASH_ROLE) for _, mailbox, unread, role in group]
        for mailbox, unread, _ in rows:
            totals[mailbox][0] += 1
            totals[mailbox][1] += int(unread)
        for mailbox, unread in _thread_unread_by_mailbox(rows).items():
            totals[mailbox][2] += 1
            totals[mailbox][3] += int(unread)
    return {pk: MailboxCounts(*values) for pk, values in totals.items()}


def mailbox_counts_recompute(account: Account) -> list[int]:
    """Recount every mailbox of the account exactly and store what differs.

    For a repair command, and for tests comparing the incremental counts against the
    truth: the pks returned are the mailboxes whose stored counts were wrong. Corrections
    are recorded as count-only Mailbox changes (``props_modseq`` unchanged).
    """
    corrected = []
    with account_changes(account.pk) as changes:
        exact = mailbox_counts_compute(account.pk)
        stored = Mailbox.objects.filter(account_id=account.pk).values_list(
            "pk", "total_emails", "unread_emails", "total_threads", "unread_threads"
        )
        for pk, *values in stored:
            counts = exact.get(pk, MailboxCounts())
            if tuple(values) != tuple(counts):
                Mailbox.objects.filter(pk=pk).update(**counts._asdict())
                changes.record(MAILBOX_TYPE, mailbox_id(pk), Change.UPDATED)
                corrected.append(pk)
    return corrected


def email_destroy_orphans(account: Account, email_ids: Iterable[int]) -> list[int]:
    """Destroy emails of the account (by pk) with everything that hangs off them.

    Named for its first use, the emails left in no mailbox by Mailbox/set's
    onDestroyRemoveEmails (RFC 8621 §2.5), but emails still in mailboxes are removed from
    them too, with their counts. Records the Email changes, a Thread change for every
    thread touched (destroyed when it has no email left, RFC 8621 §3), removes the
    emails from the search index and drops their blob references (the blob outlives the
    call, RFC 8620 §6). Returns the pks destroyed, ascending (unknown or foreign ones are
    skipped).
    """
    wanted = sorted(set(email_ids))
    if not wanted:
        return []
    with account_changes(account.pk) as changes:
        rows: list[tuple[int, int, str, int]] = []
        for chunk in in_chunks(wanted):
            rows.extend(
                Email.objects.filter(account_id=account.pk, pk__in=chunk).values_list(
                    "pk", "thread_id", "blob_id", "size"
                )
            )
        if not rows:
            return []
        rows.sort()
        pks = [pk for pk, _, _, _ in rows]
        # Quota usage (accounts.quotas): the destroyed messages stop counting.
        quota_charge(changes=changes, octets=-sum(size for *_, size in rows), count=-len(pks))
        thread_ids = {thread for _, thread, _, _ in rows}
        before = thread_snapshot(account.pk, thread_ids)
        for chunk in in_chunks(pks):
            EmailMailbox.objects.filter(email_id__in=chunk).delete()
            Email.objects.filter(pk__in=chunk).delete()
        search_index_remove(email_ids=pks)
        mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, thread_ids))
        remaining: set[int] = set()
        for chunk in in_chunks(sorted(thread_ids)):
            remaining.update(Email.objects.filter(thread_id__in=chunk).values_list("thread_id", flat=True).distinct())
        empty = thread_ids - remaining
        for chunk in in_chunks(sorted(empty)):
            Thread.objects.filter(pk__in=chunk).delete()  # its MessageIdIndex rows go with it
        for pk in pks:
            changes.record(EMAIL_TYPE, email_id(pk), Change.DESTROYED)
        for thread in sorted(thread_ids):
            changes.record(THREAD_TYPE, thread_id(thread), Change.DESTROYED if thread in empty else Change.UPDATED)
        for _, _, sha256, _ in rows:
            blob_unpin(account, blob_id(sha256))
    return pks


def email_usage(account: Account) -> tuple[int, int]:
    """The size and number of the account's Emails (its quota usage, accounts.quotas)."""
    totals = Email.objects.filter(account_id=account.pk).aggregate(octets=Sum("size"), count=Count("pk"))
    return int(totals["octets"] or 0), int(totals["count"] or 0)
