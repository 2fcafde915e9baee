"""Delivery to this server's own users: the one place the relay hands mail inward.

``is_local`` tells the relay which recipients are ours (whatever the delivery pipeline's
recipient_resolve accepts, or a local domain); ``deliver_local`` hands them to the delivery
pipeline, the same one LMTP and SMTP use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from accounts.models import Domain
from groupware.mail.delivery.recipients import recipient_resolve
from groupware.mail.submission.addresses import address_domain

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


def is_local_domain(address: str) -> bool:
    return Domain.objects.filter(name=address_domain(address), is_active=True).exists()


def is_local(address: str) -> bool:
    """Whether the relay hands this recipient to deliver_local (a user, alias or local domain)."""
    return recipient_resolve(address) is not None or is_local_domain(address)


def deliver_local(*, raw: bytes, mail_from: str, recipients: list[str]) -> dict[str, Reply]:
    """Hand the message to the delivery pipeline (groupware.mail.delivery: Sieve filtering,
    retransmission dedup, Return-Path and Received, reports linked to submissions), as an
    MTA would over LMTP; one Reply per recipient."""
    from groupware.mail.delivery.services import deliver_message

    results = deliver_message(raw=raw, mail_from=mail_from, recipients=recipients, protocol="ESMTP")
    return {result.recipient: Reply(result.code, f"{result.status} {result.text}") for result in results}
