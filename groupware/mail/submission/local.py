"""Delivery to this server's own users: the one place the relay hands mail inward.

``local_account``/``is_local`` tell the relay which recipients are ours (a user's login or
an Alias, with ``@domain`` catch-alls); ``deliver_local`` hands them to the delivery
pipeline, the same one LMTP and SMTP use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from accounts.models import Account, Alias, Domain, User
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
    """Hand the message to the delivery pipeline (groupware.mail.delivery: Sieve filtering,
    retransmission dedup, Return-Path and Received, reports linked to submissions), as an
    MTA would over LMTP; one Reply per recipient."""
    from groupware.mail.delivery.services import deliver_message

    results = deliver_message(raw=raw, mail_from=mail_from, recipients=recipients, protocol="ESMTP")
    return {result.recipient: Reply(result.code, f"{result.status} {result.text}") for result in results}
