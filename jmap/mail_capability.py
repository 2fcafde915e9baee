"""The urn:ietf:params:jmap:mail capability (RFC 8621 §1.3.1).

Registered when this module is imported (the Mailbox, Thread, Email and SearchSnippet
method modules import it); the registry advertises it once one of its methods exists.
The limits are read from settings at each use, so tests and deployments can change them:

- ``MAIL_MAX_MAILBOXES_PER_EMAIL`` (default 256; None for no limit)
- ``MAIL_MAX_MAILBOX_DEPTH`` (default 16; None for no limit)
- ``MAIL_MAX_SIZE_MAILBOX_NAME`` (default 255 octets; kept within 100..255)
- ``MAIL_MAX_SIZE_ATTACHMENTS_PER_EMAIL`` (default 50,000,000 octets)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from groupware.mail.services.mailboxes import max_mailbox_depth, max_size_mailbox_name
from jmap.registry import Capability, registry

if TYPE_CHECKING:
    from accounts.models import Account

MAIL = "urn:ietf:params:jmap:mail"

# RFC 8621 §1.3.1 emailQuerySortOptions: the Email/query sort properties (§4.4.2).
EMAIL_QUERY_SORT_OPTIONS: tuple[str, ...] = (
    "receivedAt",
    "sentAt",
    "size",
    "from",
    "to",
    "subject",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
)

DEFAULT_MAX_MAILBOXES_PER_EMAIL = 256
DEFAULT_MAX_SIZE_ATTACHMENTS_PER_EMAIL = 50_000_000

__all__ = [
    "EMAIL_QUERY_SORT_OPTIONS",
    "MAIL",
    "max_mailbox_depth",
    "max_mailboxes_per_email",
    "max_size_attachments_per_email",
    "max_size_mailbox_name",
    "register_mail_capability",
]


def max_mailboxes_per_email() -> int | None:
    """maxMailboxesPerEmail: an integer >= 1, or None for no limit (RFC 8621 §1.3.1)."""
    value = getattr(settings, "MAIL_MAX_MAILBOXES_PER_EMAIL", DEFAULT_MAX_MAILBOXES_PER_EMAIL)
    return None if value is None else max(int(value), 1)


def max_size_attachments_per_email() -> int:
    """maxSizeAttachmentsPerEmail in octets, the sum of the unencoded attachment sizes."""
    return max(int(getattr(settings, "MAIL_MAX_SIZE_ATTACHMENTS_PER_EMAIL", DEFAULT_MAX_SIZE_ATTACHMENTS_PER_EMAIL)), 0)


def _account_value(account: Account) -> dict[str, Any]:
    # RFC 8621 §1.4: every account the user can see holds mail, personal or shared.
    return {
        "maxMailboxesPerEmail": max_mailboxes_per_email(),
        "maxMailboxDepth": max_mailbox_depth(),
        "maxSizeMailboxName": max_size_mailbox_name(),
        "maxSizeAttachmentsPerEmail": max_size_attachments_per_email(),
        "emailQuerySortOptions": list(EMAIL_QUERY_SORT_OPTIONS),
        # Anyone who may write to the account may create top-level mailboxes; read-only
        # access is already visible as the account's isReadOnly (RFC 8620 §2).
        "mayCreateTopLevelMailbox": True,
    }


def register_mail_capability() -> None:
    """Add the capability once (several method modules import this module)."""
    if MAIL not in registry.capabilities:
        # RFC 8621 §1.3.1: the session value is an empty object.
        registry.add_capability(Capability(urn=MAIL, session_value=dict, account_value=_account_value))


register_mail_capability()
