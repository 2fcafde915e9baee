"""Writing new Emails (RFC 8621 §3, §4): threading, rows, memberships, counts, search index
and change records for many messages in one round of queries.

``emails_insert`` is what every way in (import, create, copy, delivery) ends in, with the
account locked (``account_changes``) and the message blobs already stored and pinned.
Threading is worked out in memory from one read of the Message-ID index, message after
message, so a reply threads with a message earlier in the same batch. A message that
links two existing Threads needs a merge (Emails re-inserted with new ids): the batch is
written up to it, the merge runs on its own, and the rest follows as a new batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import connection

from accounts.models import Account
from groupware.core import sql
from groupware.core.changes import Change, ChangeSet
from groupware.mail.models import Email, EmailMailbox, MessageIdIndex, Thread
from groupware.mail.search import SearchDocument, search_index_write
from groupware.mail.services import threads
from groupware.mail.services.counts import (
    EMAIL_TYPE,
    THREAD_TYPE,
    TRASH_ROLE,
    Snapshot,
    email_id,
    in_chunks,
    is_unread,
    mailbox_counts_apply,
    snapshot_adding,
    thread_id,
    thread_snapshot,
)


@dataclass(frozen=True)
class NewEmail:
    """One message to store: its Email columns (from the single parse), search document,
    message blob (stored and pinned in the account), mailboxes (pks) and keywords."""

    columns: dict[str, Any]
    search: SearchDocument
    sha256: str
    size: int
    received_at: datetime
    mailbox_pks: list[int]
    keywords: dict[str, bool]

    @property
    def threading_ids(self) -> list[str]:
        columns = self.columns
        return threads.threading_ids(columns["message_id"], columns["in_reply_to"], columns["references"])


def emails_insert(
    *,
    account: Account,
    changes: ChangeSet,
    items: Sequence[NewEmail],
    mailbox_roles: Mapping[int, str | None],
) -> list[Email]:
    """Store these messages as new Emails, in order; call inside ``account_changes``.

    ``mailbox_roles``: the role of every mailbox the items go to (pk -> role), read under
    the account lock: the mailbox counts after the insert are worked out from the counts
    before it (new Emails only add memberships), without reading the threads again."""
    stored: list[Email] = []
    rest = list(items)
    while rest:
        plan, index_rows = _thread_plan(account, rest)
        if plan:
            stored.extend(_write(account, changes, rest[: len(plan)], plan, index_rows, mailbox_roles))
        rest = rest[len(plan) :]
        if rest:  # the next message links several Threads: merge them, then go on
            stored.append(_insert_merging(account, changes, rest.pop(0), mailbox_roles))
    return stored


# A planned Thread: the pk of an existing one, or -n for the n-th new one of the batch.
ThreadKey = int


def _thread_plan(account: Account, items: Sequence[NewEmail]) -> tuple[list[ThreadKey], set[tuple[str, str, int]]]:
    """The Thread of each message, up to (not including) the first one that links two
    Threads; and the (message id, base subject, thread) index rows that exist already."""
    wanted = sorted({value for item in items for value in item.threading_ids})
    known: dict[tuple[str, str], set[ThreadKey]] = {}
    existing: set[tuple[str, str, int]] = set()
    for chunk in in_chunks(wanted, 500):
        rows = sql.rows(
            "SELECT message_id, base_subject, thread_id FROM mail_messageidindex"  # noqa: S608
            f" WHERE account_id = %s AND message_id IN ({sql.placeholders(len(chunk))})",
            [account.pk, *chunk],
        )
        for message_id, subject_key, thread_pk in rows:
            known.setdefault((message_id, subject_key), set()).add(thread_pk)
            existing.add((message_id, subject_key, thread_pk))
    plan: list[ThreadKey] = []
    new_threads = 0
    for item in items:
        subject_key = item.columns["base_subject"]
        ids = item.threading_ids
        candidates: set[ThreadKey] = set()
        for value in ids:
            candidates |= known.get((value, subject_key), set())
        if len(candidates) > 1:
            break
        if candidates:
            key = next(iter(candidates))
        else:
            new_threads += 1
            key = -new_threads
        for value in ids:
            known.setdefault((value, subject_key), set()).add(key)
        plan.append(key)
    return plan, existing


def _write(
    account: Account,
    changes: ChangeSet,
    items: Sequence[NewEmail],
    plan: Sequence[ThreadKey],
    existing_index: set[tuple[str, str, int]],
    mailbox_roles: Mapping[int, str | None],
    before: Snapshot | None = None,
) -> list[Email]:
    """Rows, memberships, index, counts, search and changes of messages whose Threads are
    planned (existing pks, or -n: created here). ``before``: the snapshot of a merge (the
    snapshot after is read then, as a merge moves Emails)."""
    old_threads = sorted({key for key in plan if key > 0})
    merging = before is not None
    if before is None:
        before = thread_snapshot(account.pk, old_threads)
    new_keys = sorted({key for key in plan if key < 0}, reverse=True)  # -1, -2, ... in order
    new_threads = [Thread(account=account) for _ in new_keys]
    emails = [
        Email(
            account=account,
            blob_id=item.sha256,
            size=item.size,
            received_at=item.received_at,
            keywords=item.keywords,
            is_unread=is_unread(item.keywords),
            **item.columns,
        )
        for item in items
    ]
    # The rows go in one statement on PostgreSQL (sql.Batch), their keys taken from the
    # sequences first; elsewhere the Threads and Emails are inserted for their keys.
    batch = sql.Batch()
    pooled = connection.vendor == "postgresql"
    if pooled:
        thread_pks, email_pks = sql.next_ids((Thread, len(new_threads)), (Email, len(emails)))
        for obj, pk in zip([*new_threads, *emails], [*thread_pks, *email_pks], strict=True):
            obj.pk = pk
    else:
        sql.insert(Thread, new_threads)
    thread_of = {key: thread.pk for key, thread in zip(new_keys, new_threads, strict=True)}
    for key in old_threads:
        thread_of[key] = key
    for thread in new_threads:
        changes.record(THREAD_TYPE, thread_id(thread.pk), Change.CREATED)
    for pk in old_threads:
        changes.record(THREAD_TYPE, thread_id(pk), Change.UPDATED)
    before = replace(before, thread_ids=before.thread_ids | {thread.pk for thread in new_threads})

    for email, key in zip(emails, plan, strict=True):
        email.thread_id = thread_of[key]
    if pooled:
        batch.insert(Thread, new_threads, with_pks=True)
        batch.insert(Email, emails, with_pks=True)
    else:
        sql.insert(Email, emails)
    memberships: list[EmailMailbox] = []
    index_rows: list[MessageIdIndex] = []
    indexed = set(existing_index)
    for item, email in zip(items, emails, strict=True):
        memberships.extend(
            EmailMailbox(
                account=account, mailbox_id=pk, email=email, thread_id=email.thread_id, received_at=item.received_at
            )
            for pk in item.mailbox_pks
        )
        subject_key = item.columns["base_subject"]
        for value in item.threading_ids:
            row_key = (value, subject_key, email.thread_id)
            if row_key not in indexed:
                indexed.add(row_key)
                index_rows.append(
                    MessageIdIndex(
                        account=account, message_id=value, thread_id=email.thread_id, base_subject=subject_key
                    )
                )
        changes.record(EMAIL_TYPE, email_id(email.pk), Change.CREATED)
    batch.insert(EmailMailbox, memberships)
    batch.insert(MessageIdIndex, index_rows)
    if merging:
        batch.run()  # the snapshot after a merge is read from the rows
        after = thread_snapshot(account.pk, before.thread_ids)
    else:
        unread_of = {email.pk: email.is_unread for email in emails}
        after = snapshot_adding(
            before,
            (
                (row.thread_id, (row.mailbox_id, unread_of[row.email_id], mailbox_roles[row.mailbox_id] == TRASH_ROLE))
                for row in memberships
            ),
        )
    # The target mailboxes were read under the account lock: the counts join the batch.
    mailbox_counts_apply(account=account, before=before, after=after, batch=batch)
    search_index_write([(email.pk, item.search) for item, email in zip(items, emails, strict=True)], batch=batch)
    batch.run()
    return emails


def _insert_merging(
    account: Account, changes: ChangeSet, item: NewEmail, mailbox_roles: Mapping[int, str | None]
) -> Email:
    """A message whose ids link several Threads: they merge into one (threads_merge)."""
    subject_key = item.columns["base_subject"]
    candidates = threads.threads_candidates(account=account, message_ids=item.threading_ids, subject_key=subject_key)
    # Mailbox counts: every Thread it links, before the merge and after the insert.
    before = thread_snapshot(account.pk, candidates)
    thread, _merged = threads.thread_for_message(account=account, changes=changes, candidates=candidates)
    existing = set(
        MessageIdIndex.objects.filter(
            account_id=account.pk, thread_id=thread.pk, message_id__in=item.threading_ids
        ).values_list("message_id", "base_subject", "thread_id")
    )
    return _write(account, changes, [item], [thread.pk], existing, mailbox_roles, before)[0]
