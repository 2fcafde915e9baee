"""Mailbox services (RFC 8621 §2): create, update, subscribe, destroy, default mailboxes.

Every write runs inside the account's ``account_changes`` (the account row is locked, so
the uniqueness and tree checks below can't race another writer of the account) and
records a Mailbox change. A change to any property but the four counts also moves
``Mailbox.props_modseq`` to the modseq of that change, so Mailbox/changes can tell
count-only changes apart (``updatedProperties``, §2.2).
"""

from __future__ import annotations

import unicodedata
from enum import Enum
from typing import TYPE_CHECKING, Literal

from django.conf import settings

from groupware.core.changes import Change, ChangeSet, account_changes
from groupware.mail.models import EmailMailbox, Mailbox
from groupware.mail.services.counts import (
    EMAIL_TYPE,
    MAILBOX_ID_PREFIX,
    MAILBOX_TYPE,
    TRASH_ROLE,
    email_destroy_orphans,
    email_id,
    in_chunks,
    mailbox_counts_apply,
    mailbox_id,
    mailbox_pk,
    thread_snapshot,
)

if TYPE_CHECKING:
    from accounts.models import Account, User

__all__ = [
    "DEFAULT_MAILBOXES",
    "MAILBOX_ID_PREFIX",
    "MAILBOX_ROLES",
    "TRASH_ROLE",
    "UNSET",
    "MailboxError",
    "MailboxHasChild",
    "MailboxHasEmail",
    "MailboxInvalid",
    "mailbox_create",
    "mailbox_destroy",
    "mailbox_id",
    "mailbox_is_subscribed",
    "mailbox_name_check",
    "mailbox_pk",
    "mailbox_subscribe",
    "mailbox_update",
    "mailboxes_provision_defaults",
    "max_mailbox_depth",
    "max_size_mailbox_name",
]

# RFC 8621 §2 role: the IANA "IMAP Mailbox Name Attributes" registry (RFC 8457, RFC 6154,
# RFC 8621 §10.5 "inbox", plus later additions), lower-cased; only the attributes that
# name a purpose, not the structural ones (\Noselect, \HasChildren...).
MAILBOX_ROLES = frozenset(
    {
        "all",
        "archive",
        "drafts",
        "flagged",
        "important",
        "inbox",
        "junk",
        "sent",
        "subscribed",
        "trash",
        "snoozed",
        "scheduled",
        "memos",
    }
)

# (role, name, sortOrder) of the mailboxes every new account gets; override with the
# MAIL_DEFAULT_MAILBOXES setting (e.g. for localised names).
DEFAULT_MAILBOXES: tuple[tuple[str, str, int], ...] = (
    ("inbox", "Inbox", 10),
    ("drafts", "Drafts", 20),
    ("sent", "Sent", 30),
    ("archive", "Archive", 40),
    ("junk", "Junk", 50),
    ("trash", "Trash", 60),
)

# Mailbox.name is a CharField(max_length=255): a name of at most 255 octets always fits.
_NAME_COLUMN_LIMIT = 255
_SORT_ORDER_LIMIT = 2**31  # RFC 8621 §2: 0 <= sortOrder < 2^31


def max_mailbox_depth() -> int | None:
    """maxMailboxDepth (RFC 8621 §1.3.1): ancestors + 1, or None for no limit."""
    value = getattr(settings, "MAIL_MAX_MAILBOX_DEPTH", 16)
    return None if value is None else max(int(value), 1)


def max_size_mailbox_name() -> int:
    """maxSizeMailboxName (RFC 8621 §1.3.1) in UTF-8 octets: at least 100 (a MUST), and
    at most what the column holds."""
    return min(max(int(getattr(settings, "MAIL_MAX_SIZE_MAILBOX_NAME", 255)), 100), _NAME_COLUMN_LIMIT)


# -- Errors ---------------------------------------------------------------------------------


class MailboxError(Exception):
    """A mailbox write refused by a rule of RFC 8621 §2."""


class MailboxInvalid(MailboxError):
    """Property values that break a rule (JMAP: invalidProperties)."""

    def __init__(self, properties: list[str], description: str) -> None:
        super().__init__(description)
        self.properties = sorted(set(properties))
        self.description = description


class MailboxHasChild(MailboxError):
    """RFC 8621 §2.5 mailboxHasChild: children must be removed first."""


class MailboxHasEmail(MailboxError):
    """RFC 8621 §2.5 mailboxHasEmail: not empty, and the emails were not to be removed."""


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET


# -- Checks -----------------------------------------------------------------------------------


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _name_problem(name: str) -> str | None:
    # RFC 8621 §2 name: a Net-Unicode string (RFC 5198: NFC, no control characters) of at
    # least one character and at most maxSizeMailboxName octets. Unassigned code points
    # are let through: they depend on the Unicode version of this Python, and refusing
    # new emoji would be worse than storing them.
    if not name:
        return "name must not be empty"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or _is_noncharacter(ord(char)):
            return f"name must not contain control or non-characters (U+{ord(char):04X})"
    limit = max_size_mailbox_name()
    if len(name.encode("utf-8")) > limit:
        return f"name is limited to {limit} octets (maxSizeMailboxName)"
    return None


def mailbox_name_check(name: str) -> str:
    """The stored form of a mailbox name (NFC, RFC 5198); MailboxInvalid if it can't be one."""
    normalized = unicodedata.normalize("NFC", name)
    problem = _name_problem(normalized)
    if problem:
        raise MailboxInvalid(["name"], problem)
    return normalized


def _role_problem(account_id: int, role: str | None, exclude_pk: int | None) -> str | None:
    if role is None:
        return None
    if role not in MAILBOX_ROLES:
        return f"role {role!r} is not a known mailbox role (lower-case IANA IMAP mailbox attribute)"
    # RFC 8621 §2: no two mailboxes of an account share a role.
    taken = Mailbox.objects.filter(account_id=account_id, role=role)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        return f"another mailbox already has the role {role!r}"
    return None


def _sort_order_problem(sort_order: int) -> str | None:
    if isinstance(sort_order, bool) or not isinstance(sort_order, int) or not 0 <= sort_order < _SORT_ORDER_LIMIT:
        return "sortOrder must be an integer with 0 <= sortOrder < 2^31"
    return None


def _sibling_taken(account_id: int, parent_id: int | None, name: str, exclude_pk: int | None) -> bool:
    # RFC 8621 §2: no two siblings with the same name. Compared exactly (case-sensitive,
    # both names NFC), as the RFC says "the same name".
    siblings = Mailbox.objects.filter(account_id=account_id, parent_id=parent_id, name=name)
    if exclude_pk is not None:
        siblings = siblings.exclude(pk=exclude_pk)
    return siblings.exists()


def _tree(account_id: int) -> dict[int, int | None]:
    """Every mailbox of the account -> its parent (one query; accounts hold few mailboxes)."""
    return dict(Mailbox.objects.filter(account_id=account_id).values_list("pk", "parent_id"))


def _depth(parents: dict[int, int | None], pk: int) -> int:
    """1 for a top-level mailbox, one more per ancestor."""
    depth, current = 1, parents.get(pk)
    while current is not None and depth <= len(parents):
        depth += 1
        current = parents.get(current)
    return depth


def _height(parents: dict[int, int | None], pk: int) -> int:
    """Levels in the subtree under (and including) a mailbox."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    height, level = 0, [pk]
    while level and height <= len(parents):
        height += 1
        level = [child for node in level for child in children.get(node, [])]
    return height


def _parent_problem(account_id: int, parent_id: int, moving: int | None) -> str | None:
    """A new parent must exist in the account, make no loop and keep within the depth limit."""
    parents = _tree(account_id)
    if parent_id not in parents:
        return "parentId: no such mailbox in this account"
    if moving is not None:
        # RFC 8621 §2 parentId: "There MUST NOT be a loop."
        current: int | None = parent_id
        for _ in range(len(parents) + 1):
            if current is None:
                break
            if current == moving:
                return "parentId: a mailbox cannot be moved under itself or its descendants"
            current = parents.get(current)
    limit = max_mailbox_depth()
    if limit is not None:
        deepest = _depth(parents, parent_id) + (_height(parents, moving) if moving is not None else 1)
        if deepest > limit:
            return f"parentId: mailboxes may nest at most {limit} levels (maxMailboxDepth)"
    return None


def _raise_problems(problems: dict[str, str | None]) -> None:
    found = {prop: problem for prop, problem in problems.items() if problem}
    if found:
        raise MailboxInvalid(list(found), "; ".join(found.values()))


def _props_changed(changes: ChangeSet, mailbox: Mailbox, change: Change) -> int:
    """Record a change to properties other than the counts; return its modseq."""
    modseq = changes.record(MAILBOX_TYPE, mailbox_id(mailbox.pk), change)
    mailbox.props_modseq = modseq
    return modseq


# -- Selectors ------------------------------------------------------------------------------


def mailbox_is_subscribed(mailbox: Mailbox, *, user_id: int, owner_id: int) -> bool:
    """isSubscribed as ``user_id`` sees it (RFC 8621 §2: per user; for other users of a
    shared account it defaults to false)."""
    if user_id == owner_id:
        return mailbox.is_subscribed
    return user_id in (mailbox.shared_subscribers or [])


# -- Services -------------------------------------------------------------------------------


def mailbox_create(
    *,
    account: Account,
    name: str,
    parent_id: int | None = None,
    role: str | None = None,
    sort_order: int = 0,
    is_subscribed: bool = True,
    creator: User | None = None,
) -> Mailbox:
    """Create a mailbox (RFC 8621 §2); MailboxInvalid names the properties that break a rule.

    ``is_subscribed`` is the creator's subscription (default true for mailboxes users
    create themselves, §2). When someone else creates a mailbox in the owner's account,
    the owner is subscribed as for any mailbox of their own account.
    """
    with account_changes(account.pk) as changes:
        normalized = unicodedata.normalize("NFC", name)
        problems = {
            "name": _name_problem(normalized),
            "sortOrder": _sort_order_problem(sort_order),
            "role": _role_problem(account.pk, role, None),
            "parentId": _parent_problem(account.pk, parent_id, None) if parent_id is not None else None,
        }
        if not any(problems.values()) and _sibling_taken(account.pk, parent_id, normalized, None):
            problems["name"] = f"a sibling mailbox is already named {normalized!r}"
        _raise_problems(problems)
        owner_id = changes.account.owner_id
        by_other = creator is not None and creator.pk != owner_id
        mailbox = Mailbox.objects.create(
            account_id=account.pk,
            name=normalized,
            parent_id=parent_id,
            role=role,
            sort_order=sort_order,
            is_subscribed=True if by_other else is_subscribed,
            shared_subscribers=[creator.pk] if by_other and is_subscribed and creator is not None else [],
        )
        modseq = _props_changed(changes, mailbox, Change.CREATED)
        Mailbox.objects.filter(pk=mailbox.pk).update(props_modseq=modseq)
    return mailbox


def mailbox_update(
    *,
    mailbox: Mailbox,
    name: str | Literal[_Unset.UNSET] = UNSET,
    parent_id: int | Literal[_Unset.UNSET] | None = UNSET,
    role: str | Literal[_Unset.UNSET] | None = UNSET,
    sort_order: int | Literal[_Unset.UNSET] = UNSET,
) -> Mailbox:
    """Rename, move, change the role or sortOrder of a mailbox (only what is given).

    Pass a row loaded inside the account's ``account_changes``. Giving or taking away
    the trash role re-evaluates unreadThreads of the threads in this mailbox (§2 trash
    rule), as count-only changes.
    """
    account_id = mailbox.account_id
    with account_changes(account_id) as changes:
        new_name = mailbox.name if name is UNSET else unicodedata.normalize("NFC", name)
        new_parent = mailbox.parent_id if parent_id is UNSET else parent_id
        new_role = mailbox.role if role is UNSET else role
        new_sort_order = mailbox.sort_order if sort_order is UNSET else sort_order
        fields = {
            field: value
            for field, value, old in (
                ("name", new_name, mailbox.name),
                ("parent_id", new_parent, mailbox.parent_id),
                ("role", new_role, mailbox.role),
                ("sort_order", new_sort_order, mailbox.sort_order),
            )
            if value != old
        }
        if not fields:
            return mailbox
        problems = {
            "name": _name_problem(new_name) if "name" in fields else None,
            "sortOrder": _sort_order_problem(new_sort_order) if "sort_order" in fields else None,
            "role": _role_problem(account_id, new_role, mailbox.pk) if "role" in fields else None,
            "parentId": (
                _parent_problem(account_id, new_parent, mailbox.pk)
                if "parent_id" in fields and new_parent is not None
                else None
            ),
        }
        if (
            ("name" in fields or "parent_id" in fields)
            and not any(problems.values())
            and _sibling_taken(account_id, new_parent, new_name, mailbox.pk)
        ):
            prop = "name" if "name" in fields else "parentId"
            problems[prop] = f"a sibling mailbox is already named {new_name!r}"
        _raise_problems(problems)

        trash_moves = "role" in fields and TRASH_ROLE in (mailbox.role, new_role)
        if trash_moves:
            thread_ids = set(EmailMailbox.objects.filter(mailbox_id=mailbox.pk).values_list("thread_id", flat=True))
            before = thread_snapshot(account_id, thread_ids)
        for field, value in fields.items():
            setattr(mailbox, field, value)
        _props_changed(changes, mailbox, Change.UPDATED)
        mailbox.save(update_fields=[*fields, "props_modseq"])
        if trash_moves:
            after = thread_snapshot(account_id, thread_ids)
            mailbox_counts_apply(account=changes.account, before=before, after=after)
            mailbox.refresh_from_db(fields=["total_emails", "unread_emails", "total_threads", "unread_threads"])
    return mailbox


def mailbox_subscribe(*, mailbox: Mailbox, user: User, subscribed: bool) -> Mailbox:
    """Set isSubscribed for one user (RFC 8621 §2: stored separately per user)."""
    with account_changes(mailbox.account_id) as changes:
        if user.pk == changes.account.owner_id:
            if mailbox.is_subscribed == subscribed:
                return mailbox
            mailbox.is_subscribed = subscribed
            fields = ["is_subscribed"]
        else:
            current = [pk for pk in (mailbox.shared_subscribers or []) if pk != user.pk]
            wanted = [*current, user.pk] if subscribed else current
            if sorted(wanted) == sorted(mailbox.shared_subscribers or []):
                return mailbox
            mailbox.shared_subscribers = sorted(wanted)
            fields = ["shared_subscribers"]
        _props_changed(changes, mailbox, Change.UPDATED)
        mailbox.save(update_fields=[*fields, "props_modseq"])
    return mailbox


def mailbox_destroy(*, mailbox: Mailbox, remove_emails: bool = False) -> None:
    """Destroy a mailbox (RFC 8621 §2.5).

    Refused with MailboxHasChild while it has children, and with MailboxHasEmail while
    it holds emails unless ``remove_emails`` (onDestroyRemoveEmails): then its emails
    leave it, and those left in no mailbox are destroyed.
    """
    with account_changes(mailbox.account_id) as changes:
        if Mailbox.objects.filter(parent_id=mailbox.pk).exists():
            raise MailboxHasChild("the mailbox has child mailboxes")
        members = list(EmailMailbox.objects.filter(mailbox_id=mailbox.pk).values_list("email_id", "thread_id"))
        if members:
            if not remove_emails:
                raise MailboxHasEmail("the mailbox has emails")
            _remove_emails(changes, mailbox, members)
        changes.record(MAILBOX_TYPE, mailbox_id(mailbox.pk), Change.DESTROYED)
        Mailbox.objects.filter(pk=mailbox.pk).delete()


def _remove_emails(changes: ChangeSet, mailbox: Mailbox, members: list[tuple[int, int]]) -> None:
    account = changes.account
    email_pks = {email for email, _ in members}
    thread_ids = {thread for _, thread in members}
    before = thread_snapshot(account.pk, thread_ids)
    EmailMailbox.objects.filter(mailbox_id=mailbox.pk).delete()
    mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, thread_ids))
    kept: set[int] = set()
    for chunk in in_chunks(sorted(email_pks)):
        kept.update(EmailMailbox.objects.filter(email_id__in=chunk).values_list("email_id", flat=True))
    for pk in sorted(kept):  # their mailboxIds changed
        changes.record(EMAIL_TYPE, email_id(pk), Change.UPDATED)
    email_destroy_orphans(account, email_pks - kept)


def mailboxes_provision_defaults(account: Account) -> list[Mailbox]:
    """Create the standard mailboxes of a new account (an ACCOUNT_PROVISIONERS hook).

    Roles already present (or a top-level mailbox of the same name) are skipped, so it
    is safe to run again on an existing account.
    """
    wanted = getattr(settings, "MAIL_DEFAULT_MAILBOXES", DEFAULT_MAILBOXES)
    created = []
    with account_changes(account.pk):
        existing = set(Mailbox.objects.filter(account_id=account.pk).values_list("role", "name", "parent_id"))
        roles = {role for role, _, _ in existing}
        top_names = {name for _, name, parent in existing if parent is None}
        for role, name, sort_order in wanted:
            if role in roles or name in top_names:
                continue
            created.append(mailbox_create(account=account, name=name, role=role, sort_order=sort_order))
    return created
