"""Which mail objects reference a blob (RFC 9404 Blob/lookup): selectors, no writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from accounts.models import Account
from groupware.mail.models import Email, EmailMailbox
from groupware.mail.services.counts import email_id, mailbox_id, thread_id

MAIL_LOOKUP_TYPES = ("Mailbox", "Thread", "Email")


def mail_blob_references(account: Account, digests: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """For each message digest (sha256): the ids of the Emails stored from it, their
    Threads and their Mailboxes, by type name. Two queries, whatever the number."""
    wanted = sorted(set(digests))
    found: dict[str, dict[str, set[str]]] = {sha: {name: set() for name in MAIL_LOOKUP_TYPES} for sha in wanted}
    if not wanted:
        return {}
    emails = list(
        Email.objects.filter(account_id=account.pk, blob_id__in=wanted).values_list("pk", "thread_id", "blob_id")
    )
    digest_of: dict[int, str] = {}
    for pk, thread, sha in emails:
        digest_of[pk] = sha
        found[sha]["Email"].add(email_id(pk))
        found[sha]["Thread"].add(thread_id(thread))
    memberships: dict[int, list[int]] = defaultdict(list)
    if digest_of:
        rows = EmailMailbox.objects.filter(account_id=account.pk, email_id__in=list(digest_of))
        for email_pk, mailbox_pk in rows.values_list("email_id", "mailbox_id"):
            memberships[email_pk].append(mailbox_pk)
    for email_pk, mailboxes in memberships.items():
        found[digest_of[email_pk]]["Mailbox"].update(mailbox_id(pk) for pk in mailboxes)
    return {sha: {name: sorted(ids) for name, ids in types.items()} for sha, types in found.items()}
