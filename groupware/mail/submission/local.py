"""Delivery to this server's own users: the one place the relay hands mail inward.

``deliver_local`` resolves each recipient (a user's login or an Alias, with ``@domain``
catch-alls) to their personal account and stores the message in its Inbox. It is the
seam to the delivery pipeline (LMTP, Sieve), which takes over the storing at merge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from accounts.models import Account, Alias, Domain, User
from groupware.mail.models import Mailbox
from groupware.mail.services.emails import EmailError, MessageTooLarge, email_ingest
from groupware.mail.submission.addresses import address_domain, address_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """An SMTP-style outcome for one recipient (RFC 5321 §4.2 code, then text)."""

    code: int
    text: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


def local_account(address: str) -> Account | None:
    """The personal account an address delivers to, or None if it isn't one of ours."""
    key = address_key(address)
    user = User.objects.filter(email__iexact=key, is_active=True).first()
    if user is None:
        alias = Alias.objects.filter(address=key).select_related("user").first()
        if alias is None:
            alias = Alias.objects.filter(address="@" + address_domain(key)).select_related("user").first()
        user = alias.user if alias is not None and alias.user.is_active else None
    if user is None:
        return None
    return Account.objects.filter(owner=user, is_personal=True).order_by("pk").first()


def is_local_domain(address: str) -> bool:
    return Domain.objects.filter(name=address_domain(address), is_active=True).exists()


def is_local(address: str) -> bool:
    """Whether the relay hands this recipient to deliver_local (a user, alias or local domain)."""
    return local_account(address) is not None or is_local_domain(address)


def deliver_local(*, raw: bytes, mail_from: str, recipients: list[str]) -> dict[str, Reply]:
    """Store the message for each local recipient; one Reply per recipient.

    Several recipients reaching one account (a login and its alias) store one copy.
    A Return-Path field records the envelope sender (RFC 5321 §4.4).
    """
    from groupware.mail.submission.reports import submission_report_received

    message = f"Return-Path: <{mail_from}>\r\n".encode() + raw
    results: dict[str, Reply] = {}
    delivered: dict[int, Reply] = {}
    for address in recipients:
        account = local_account(address)
        if account is None:
            results[address] = Reply(550, "5.1.1 No such user here")
            continue
        if account.pk in delivered:
            results[address] = delivered[account.pk]
            continue
        inbox = Mailbox.objects.filter(account_id=account.pk, role="inbox").values_list("pk", flat=True).first()
        if inbox is None:
            results[address] = Reply(450, "4.2.0 The recipient has no Inbox")
            continue
        try:
            email_ingest(account=account, raw=message, mailbox_ids=[inbox], keywords={})
        except MessageTooLarge as error:
            reply = Reply(552, f"5.3.4 {error}")
        except EmailError as error:
            reply = Reply(554, f"5.6.0 {error}")
        except Exception:
            logger.exception("local delivery to %s failed", address)
            reply = Reply(451, "4.3.0 Local delivery failed; will retry")
        else:
            reply = Reply(250, "2.1.5 Delivered")
            # A DSN or MDN about a message this account sent updates that submission.
            submission_report_received(account=account, raw=message)
        results[address] = delivered[account.pk] = reply
    return results
