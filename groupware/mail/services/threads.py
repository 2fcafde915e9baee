"""Threading (RFC 8621 §3): which Thread a new Email joins, and merging Threads.

Two messages share a Thread when (RFC 8621 §3, the suggested algorithm) an identical
message id appears in the Message-ID, In-Reply-To or References header fields of both,
and their base subjects (RFC 5256 §2.1, simplified) are equal. Every id a message
mentions is written to ``MessageIdIndex`` under its Thread, so a reply threads with its
siblings even when their common parent never arrived.

A Thread's ``emailIds`` are ordered by receivedAt, then by id. ``threadId`` is
immutable (§3), so when a new message links two Threads, the Emails of the smaller ones
are deleted and re-inserted with new ids into the surviving Thread; clients see them as
destroyed and created in Email/changes.

Every function here runs inside the caller's ``account_changes`` transaction (the
account row is locked, so concurrent ingests of one account never race on threading).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.models import Count

from accounts.models import Account
from groupware.core.changes import Change, ChangeSet
from groupware.mail.models import Email, EmailMailbox, MessageIdIndex, Thread
from groupware.mail.search import search_index_move
from groupware.mail.services.counts import (
    EMAIL_ID_PREFIX,
    EMAIL_TYPE,
    THREAD_ID_PREFIX,
    THREAD_TYPE,
    email_id,
    thread_id,
)

__all__ = [
    "EMAIL_ID_PREFIX",
    "EMAIL_TYPE",
    "THREAD_ID_PREFIX",
    "THREAD_TYPE",
    "base_subject",
    "email_id",
    "thread_for_message",
    "thread_id",
    "threading_ids",
    "threads_candidates",
    "threads_merge",
]
# A message mentioning more ids than this is threaded by its own id, its parents and
# the most recent references only (References of long threads grow without bound).
MAX_THREADING_IDS = 100
_MESSAGE_ID_COLUMN = 998  # MessageIdIndex.message_id max_length

# RFC 5256 §2.1 subj-leader and subj-trailer, simplified: "Re:", "Fw:", "Fwd:" with an
# optional "[n]" counter, "[list-tag]" blobs, and a trailing "(fwd)".
_LEADER = re.compile(r"^(?:(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\])?[ \t]*:|\[[^\[\]]*\])[ \t]*", re.IGNORECASE)
_TRAILER = re.compile(r"[ \t]*\(fwd\)[ \t]*$", re.IGNORECASE)
_FWD_WRAPPER = re.compile(r"^\[fwd:(.*)\]$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def base_subject(subject: str | None, *, lower: bool = True) -> str:
    """The subject without reply/forward markers and list tags, lower-cased (RFC 5256 §2.1).

    Steps: collapse white space; remove trailing "(fwd)"; remove leading "Re:", "Fwd:",
    "Fw:" (with an optional "[n]") and "[tag]" blobs, unless a blob is all that is left;
    unwrap "[Fwd: ...]"; repeat until nothing changes. Lower-cased unless ``lower`` is
    false (the subject sort keeps the case for its collations).
    """
    text = _WHITESPACE.sub(" ", subject or "").strip()
    while True:
        before = text
        while True:
            stripped = _TRAILER.sub("", text)
            if stripped == text:
                break
            text = stripped
        while True:
            match = _LEADER.match(text)
            if match is None:
                break
            rest = text[match.end() :]
            if not rest.strip() and match.group(0).lstrip().startswith("["):
                break  # §2.1 (4): a blob that is the whole subject stays
            text = rest
        wrapped = _FWD_WRAPPER.match(text)
        if wrapped is not None:
            text = wrapped.group(1).strip()
        text = text.strip()
        if text == before:
            break
    return text.lower() if lower else text


def threading_ids(
    message_id: Iterable[str] | None, in_reply_to: Iterable[str] | None, references: Iterable[str] | None
) -> list[str]:
    """The message ids a message mentions, for threading: own ids, parents, references."""
    own = [value for value in (message_id or []) if value]
    parents = [value for value in (in_reply_to or []) if value]
    refs = [value for value in (references or []) if value]
    budget = max(MAX_THREADING_IDS - len(own) - len(parents), 0)
    # The most recent references are the most specific ones (RFC 5322 §3.6.4 order).
    chosen = own + parents + (refs[-budget:] if budget else [])
    return list(dict.fromkeys(value[:_MESSAGE_ID_COLUMN] for value in chosen))


def threads_candidates(*, account: Account, message_ids: list[str], subject_key: str) -> list[int]:
    """Threads (pks) holding a message that mentions one of these ids with this base subject."""
    if not message_ids:
        return []
    rows = MessageIdIndex.objects.filter(account_id=account.pk, message_id__in=message_ids, base_subject=subject_key)
    return sorted(set(rows.values_list("thread_id", flat=True)))


def thread_for_message(*, account: Account, changes: ChangeSet, candidates: list[int]) -> tuple[Thread, list[int]]:
    """The Thread a new message joins, given the ``threads_candidates`` it matches
    (created if there is none), and the pks of the Threads merged into it. The index
    rows of the message are written by the caller (``store.emails_insert``) once it is stored."""
    if not candidates:
        thread = Thread.objects.create(account=account)
        changes.record(THREAD_TYPE, thread_id(thread.pk), Change.CREATED)
        return thread, []
    if len(candidates) == 1:
        thread = Thread.objects.get(pk=candidates[0])
        changes.record(THREAD_TYPE, thread_id(thread.pk), Change.UPDATED)
        return thread, []
    # The message links several Threads: keep the biggest (fewest Emails get new ids),
    # the oldest among equals, and merge the others into it.
    sizes = dict(
        Email.objects.filter(thread_id__in=candidates)
        .values("thread_id")
        .annotate(n=Count("pk"))
        .values_list("thread_id", "n")
    )
    keep = min(candidates, key=lambda pk: (-sizes.get(pk, 0), pk))
    merged = [pk for pk in candidates if pk != keep]
    thread = Thread.objects.get(pk=keep)
    threads_merge(account=account, changes=changes, target=thread, sources=merged)
    return thread, merged


def threads_merge(*, account: Account, changes: ChangeSet, target: Thread, sources: list[int]) -> list[tuple[int, int]]:
    """Move every Email of the ``sources`` Threads into ``target`` (RFC 8621 §3).

    threadId is immutable, so each moved Email is deleted and re-inserted with a new id
    (its memberships, keywords and blob reference move with it); the sources are then
    destroyed. Returns (old pk, new pk) pairs. Mailbox counts are the caller's: it
    snapshots the Threads before and after.
    """
    moved: list[tuple[int, int]] = []
    fields = [field for field in Email._meta.concrete_fields if not field.primary_key]
    old_emails = list(Email.objects.filter(account_id=account.pk, thread_id__in=sources).order_by("received_at", "pk"))
    for old in old_emails:
        values = {field.attname: getattr(old, field.attname) for field in fields}
        values["thread_id"] = target.pk
        new = Email.objects.create(**values)
        EmailMailbox.objects.filter(email_id=old.pk).update(email_id=new.pk, thread_id=target.pk)
        moved.append((old.pk, new.pk))
        changes.record(EMAIL_TYPE, email_id(old.pk), Change.DESTROYED)
        changes.record(EMAIL_TYPE, email_id(new.pk), Change.CREATED)
    if moved:
        # The search index is keyed by Email: its rows move to the new ids.
        search_index_move(moved)
        Email.objects.filter(pk__in=[old for old, _ in moved]).delete()
    # Index rows move too; a (message id, subject) pair the target already has is dropped.
    existing = set(MessageIdIndex.objects.filter(thread_id=target.pk).values_list("message_id", "base_subject"))
    duplicates = [
        row.pk
        for row in MessageIdIndex.objects.filter(thread_id__in=sources).only("pk", "message_id", "base_subject")
        if (row.message_id, row.base_subject) in existing
    ]
    if duplicates:
        MessageIdIndex.objects.filter(pk__in=duplicates).delete()
    MessageIdIndex.objects.filter(thread_id__in=sources).update(thread_id=target.pk)
    Thread.objects.filter(pk__in=sources).delete()
    for pk in sources:
        changes.record(THREAD_TYPE, thread_id(pk), Change.DESTROYED)
    changes.record(THREAD_TYPE, thread_id(target.pk), Change.UPDATED)
    return moved
