"""deliver_message: store an incoming message for each of its envelope recipients.

The contract with the listeners (and any other caller, e.g. local submission):

- One ``DeliveryResult`` per recipient, in order. A 2xx result means the message is stored
  and committed (blob first, then the Email row) or was deliberately not stored (the
  script discarded it, or it is a retransmission already stored); 4xx means nothing was
  kept for that recipient and the sender should retry; 5xx is a permanent refusal.
- Each account's delivery is one transaction: the Email, the delivery record (dedup), the
  reply tracking and the queued follow-up messages commit together or not at all. Follow-up
  work (vacation replies, redirects) is queued after the commit (groupware.mail.delivery.outbound).
- A retransmission (same Message-ID and content digest, to the same account, within
  MAIL_DEDUP_WINDOW) is answered 250 without storing it twice: the DeliveryRecord is
  upserted on its unique (account, key) under the account lock, and a record within the
  window rolls the delivery back.
- Database trouble answers 451 (4.3.0): the sender keeps the message and retries.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from accounts.models import Account
from accounts.quotas import OverQuota
from groupware.core import sql
from groupware.core.blobs import blob_write
from groupware.core.changes import account_changes
from groupware.mail.delivery.filtering import DeliveryPlan, MailboxRef, plan_delivery, sieve_duplicate_key
from groupware.mail.delivery.models import SieveDuplicate, VacationReply
from groupware.mail.delivery.outbound import queue_outbound
from groupware.mail.delivery.recipients import Recipient, recipient_resolve, recipient_resolve_cached
from groupware.mail.models import Email
from groupware.mail.services.counts import email_id as jmap_email_id
from groupware.mail.services.emails import (
    EmailImport,
    InvalidKeywords,
    InvalidMessage,
    MessageTooLarge,
    PreparedEmail,
    email_prepare,
    emails_import,
    max_message_size,
)
from groupware.mail.services.mailboxes import MailboxInvalid, mailbox_create
from groupware.mail.submission.reports import submission_report_received

logger = logging.getLogger(__name__)

# RFC 5321 §6.3: a message that went through this many hops is looping.
MAX_RECEIVED_HEADERS = 50


@dataclass(frozen=True)
class DeliveryResult:
    """What happened for one envelope recipient, as an SMTP/LMTP reply."""

    recipient: str
    code: int
    status: str  # RFC 3463 enhanced status code
    text: str
    email_id: str | None = None  # the JMAP id of the stored Email
    duplicate: bool = False

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


def _result(recipient: str, code: int, status: str, text: str, **extra: object) -> DeliveryResult:
    return DeliveryResult(recipient=recipient, code=code, status=status, text=text, **extra)  # type: ignore[arg-type]


LOCAL_ERROR = "local error in processing"  # 451 text when a bug, not the sender, is the cause


def temporary_failure(recipient: str, text: str = "temporary failure, try again later") -> DeliveryResult:
    return _result(recipient, 451, "4.3.0", text)


def unknown_recipient(recipient: str) -> DeliveryResult:
    return _result(recipient, 550, "5.1.1", "no such recipient here")


_hostname: str | None = None


def mail_hostname() -> str:
    """MAIL_HOSTNAME, else this machine's name: the "by" of our Received field."""
    global _hostname
    if settings.MAIL_HOSTNAME:
        return settings.MAIL_HOSTNAME
    if _hostname is None:
        _hostname = socket.gethostname() or "localhost"
    return _hostname


def _header_value(value: str) -> str:
    # Nothing from the client may end or fold our header fields.
    return "".join(char if char.isprintable() else " " for char in value)[:200]


def trace_fields(*, mail_from: str, helo: str | None, peer: str | None, protocol: str, now: datetime) -> bytes:
    """Return-Path and Received (RFC 5321 §4.4) that delivery prepends to the message."""
    origin = _header_value(helo or "unknown")
    if peer:
        origin += f" ({_header_value(peer)})"
    return (
        f"Return-Path: <{_header_value(mail_from)}>\r\n"
        f"Received: from {origin}\r\n\tby {mail_hostname()} with {protocol}; {format_datetime(now)}\r\n"
    ).encode()


@dataclass(frozen=True)
class _Facts:
    """What delivery reads of the header section (parsed once, shared with Sieve)."""

    message_id: str
    hops: int  # Received fields
    is_report: bool  # multipart/report: maybe a DSN or MDN about one of our submissions
    view: Any  # the Sieve engine's MessageView, or None if the header can't be read


def _message_facts(raw: bytes) -> _Facts:
    from groupware.mail import sieve

    try:
        view = sieve.MessageView.from_bytes(raw)
    except Exception:  # the header parser is lenient; be safe anyway
        return _Facts("", 0, False, None)
    ids = view.raw_header_values("Message-ID")
    content_types = view.raw_header_values("Content-Type")
    is_report = bool(content_types) and content_types[0].split(";", 1)[0].strip().lower() == "multipart/report"
    return _Facts(ids[0].strip() if ids else "", len(view.raw_header_values("Received")), is_report, view)


def dedup_key(raw: bytes, message_id: str) -> str:
    """Message-ID plus the digest of the octets as received (before our trace fields)."""
    content = hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(f"{message_id.lower()}\n{content}".encode("utf-8", "surrogateescape")).hexdigest()


def deliver_message(
    *,
    raw: bytes,
    mail_from: str,
    recipients: list[str],
    helo: str | None = None,
    peer: str | None = None,
    protocol: str = "LMTP",
    received_at: datetime | None = None,
    cached_recipients: bool = False,
) -> list[DeliveryResult]:
    """Deliver ``raw`` to each local recipient (see the module doc); one result per recipient.

    ``cached_recipients``: reuse recipient lookups of the last seconds (the listeners pass
    it: they resolved the same addresses at RCPT)."""
    _refresh_connection()  # a connection broken while the database was away is replaced
    try:
        return _deliver(
            raw=raw,
            mail_from=mail_from,
            recipients=recipients,
            helo=helo,
            peer=peer,
            protocol=protocol,
            received_at=received_at,
            resolve=recipient_resolve_cached if cached_recipients else recipient_resolve,
        )
    finally:
        _refresh_connection()


def _refresh_connection() -> None:
    # Not inside a caller's transaction (a test, or a caller delivering within its own):
    # closing there would break it.
    if not connection.in_atomic_block:
        close_old_connections()


def _deliver(
    *,
    raw: bytes,
    mail_from: str,
    recipients: list[str],
    helo: str | None,
    peer: str | None,
    protocol: str,
    received_at: datetime | None,
    resolve: Callable[[str], Recipient | None],
) -> list[DeliveryResult]:
    now = received_at or timezone.now()
    limit = max_message_size()
    if len(raw) > limit:
        return [_result(rcpt, 552, "5.3.4", f"message larger than {limit} octets") for rcpt in recipients]
    facts = _message_facts(raw)
    if facts.hops > MAX_RECEIVED_HEADERS:
        return [_result(rcpt, 554, "5.4.6", "mail loop: too many Received fields") for rcpt in recipients]
    key = dedup_key(raw, facts.message_id)
    stored_raw = trace_fields(mail_from=mail_from, helo=helo, peer=peer, protocol=protocol, now=now) + raw

    results: dict[int, DeliveryResult] = {}
    # Recipients of one account are delivered once (one Email), answered alike.
    by_account: dict[int, tuple[Recipient, list[int]]] = {}
    for index, address in enumerate(recipients):
        try:
            recipient = resolve(address)
        except DatabaseError:
            logger.warning("database unavailable resolving %s", address, exc_info=True)
            results[index] = temporary_failure(address)
            continue
        if recipient is None:
            results[index] = unknown_recipient(address)
            continue
        by_account.setdefault(recipient.account.pk, (recipient, []))[1].append(index)

    if not by_account:
        return [results[index] for index in range(len(recipients))]
    prepared = _prepare(stored_raw, facts)
    for recipient, indexes in by_account.values():
        outcome = _deliver_to_account(
            recipient=recipient,
            raw=raw,
            stored_raw=stored_raw,
            mail_from=mail_from,
            key=key,
            now=now,
            facts=facts,
            prepared=prepared,
        )
        for index in indexes:
            results[index] = DeliveryResult(
                recipient=recipients[index],
                code=outcome.code,
                status=outcome.status,
                text=outcome.text,
                email_id=outcome.email_id,
                duplicate=outcome.duplicate,
            )
    return [results[index] for index in range(len(recipients))]


def _prepare(stored_raw: bytes, facts: _Facts) -> PreparedEmail | Exception:
    """The store's parse of the message, once for every account (Sieve's body test reads
    it too); an error is answered per recipient, as if it had happened there."""
    try:
        prepared = email_prepare(raw=stored_raw)
    except Exception as error:
        return error
    if facts.view is not None:
        facts.view.use_structure(prepared.columns.get("parsed"), stored_raw, prepared.texts)
    return prepared


def _deliver_to_account(
    *,
    recipient: Recipient,
    raw: bytes,
    stored_raw: bytes,
    mail_from: str,
    key: str,
    now: datetime,
    facts: _Facts,
    prepared: PreparedEmail | Exception,
) -> DeliveryResult:
    address = recipient.address
    try:
        if isinstance(prepared, Exception):
            raise prepared
        plan = plan_delivery(
            account=recipient.account,
            raw=raw,
            mail_from=mail_from,
            rcpt_to=address,
            user_addresses=recipient.addresses,
            detail=recipient.detail,
            now=now,
            message=facts.view,
        )
        if plan.errors:
            logger.info("Sieve errors for %s: %s", address, "; ".join(plan.errors))
        if plan.reject is not None:
            # RFC 5429 §2.1: refuse at the protocol level; the sending MTA tells the sender.
            return _result(address, 550, "5.7.1", _header_value(plan.reject) or "rejected")
        stored = _commit(
            account=recipient.account,
            plan=plan,
            prepared=prepared,
            stored_raw=stored_raw,
            mail_from=mail_from,
            key=key,
            now=now,
            is_report=facts.is_report,
        )
    except _Duplicate:
        return _result(address, 250, "2.0.0", "already delivered", duplicate=True)
    except MessageTooLarge as error:
        return _result(address, 552, "5.3.4", str(error))
    except OverQuota as error:
        # 452: the sender retries (room may be made); 552: it can never fit, it bounces.
        code, reply = error.smtp_reply()
        status, _, text = reply.partition(" ")
        return _result(address, code, status, text)
    except InvalidMessage:
        return _result(address, 554, "5.6.0", "the message can't be parsed")
    except DatabaseError:
        logger.warning("database unavailable delivering to %s", address, exc_info=True)
        return temporary_failure(address)
    except Exception:
        # A bug must not lose mail: the sender keeps it and retries.
        logger.exception("delivery to %s failed", address)
        return temporary_failure(address, LOCAL_ERROR)
    if stored is None:
        return _result(address, 250, "2.0.0", "delivered (discarded by the recipient's filter)")
    return _result(address, 250, "2.0.0", "delivered", email_id=jmap_email_id(stored))


class _Duplicate(Exception):
    pass


def _window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.MAIL_DEDUP_WINDOW)


def _target_pks(account: Account, targets: list[MailboxRef]) -> list[int]:
    """Mailbox pks of the plan, creating the ``:create`` paths (RFC 5490 §3.2)."""
    from groupware.mail.models import Mailbox

    pks: list[int] = []
    for target in targets:
        if target.pk is not None:
            pks.append(target.pk)
            continue
        parent: int | None = None
        path = target.path
        if path and path[0].upper() == "INBOX":
            parent = Mailbox.objects.filter(account_id=account.pk, role="inbox").values_list("pk", flat=True).first()
            path = path[1:]
        try:
            for segment in path:
                found = (
                    Mailbox.objects.filter(account_id=account.pk, parent_id=parent, name=segment)
                    .values_list("pk", flat=True)
                    .first()
                )
                if found is None:
                    found = mailbox_create(account=account, name=segment, parent_id=parent).pk
                parent = found
        except MailboxInvalid:
            parent = None
        if parent is None:  # an impossible name: keep in the inbox
            parent = Mailbox.objects.filter(account_id=account.pk, role="inbox").values_list("pk", flat=True).first()
        if parent is not None:
            pks.append(parent)
    return list(dict.fromkeys(pks))


def _commit(
    *,
    account: Account,
    plan: DeliveryPlan,
    prepared: PreparedEmail,
    stored_raw: bytes,
    mail_from: str,
    key: str,
    now: datetime,
    is_report: bool = False,
) -> int | None:
    """Store what the plan says in one transaction; the stored Email's pk (None if none)."""
    if plan.stores:
        # Before the account lock (as the parse and the search tokens): the message file on
        # disk, flushed (the row must never outlive its blob, even across a power loss).
        prepared = replace(prepared, written=blob_write(stored_raw))
    with account_changes(account.pk):
        email_pk: int | None = None
        if plan.stores:
            mailbox_pks = _target_pks(account, plan.targets)
            email_pk = _store(account, prepared, mailbox_pks, dict.fromkeys(plan.keywords, True)).pk
            if is_report:
                # A DSN or MDN about a message this account sent updates that submission.
                submission_report_received(account=account, raw=stored_raw)
        # Under the account lock, so a copy delivered meanwhile on another connection
        # shows here: a record of this key within the window makes this delivery a
        # retransmission, and everything above rolls back (rare: the check costs no
        # statement of its own). An older record is replaced.
        recorded = sql.row(
            "INSERT INTO mail_deliveryrecord (account_id, key, email_id, created) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (account_id, key) DO UPDATE SET email_id = excluded.email_id, created = excluded.created"
            " WHERE mail_deliveryrecord.created < %s RETURNING id",
            [account.pk, key, email_pk, sql.db_datetime(now), sql.db_datetime(_window_start(now))],
        )
        if recorded is None:
            raise _Duplicate
        _record_follow_ups(account=account, plan=plan, stored_raw=stored_raw, mail_from=mail_from, now=now)
    return email_pk


def _store(account: Account, prepared: PreparedEmail, mailbox_pks: list[int], keywords: dict[str, bool]) -> Email:
    (result,) = emails_import(
        account=account, items=[EmailImport(prepared=prepared, mailbox_ids=mailbox_pks, keywords=keywords)]
    )
    if isinstance(result, InvalidKeywords):  # e.g. too many: the message matters more than its flags
        (result,) = emails_import(
            account=account, items=[EmailImport(prepared=prepared, mailbox_ids=mailbox_pks, keywords={})]
        )
    if isinstance(result, Exception):
        raise result
    return result


def _record_follow_ups(
    *, account: Account, plan: DeliveryPlan, stored_raw: bytes, mail_from: str, now: datetime
) -> None:
    from groupware.mail import sieve

    for mark in plan.duplicate_marks:
        SieveDuplicate.objects.update_or_create(
            account=account,
            key=sieve_duplicate_key(mark.key),
            defaults={"expires": now + timedelta(seconds=max(int(mark.seconds), 0))},
        )
    for vacation in plan.vacations:
        # RFC 5230 §4.2: remember the reply so the sender gets at most one per period.
        VacationReply.objects.update_or_create(
            account=account,
            handle=str(vacation.handle)[:64],
            sender=str(vacation.recipient).lower()[:320],
            defaults={"sent": now},
        )
        reply = sieve.vacation_reply_bytes(vacation, account.owner.email)
        # RFC 5230 §5.1 (via RFC 3834 §4): the reply's envelope sender is empty.
        queue_outbound(account=account, raw=reply, mail_from="", recipients=[vacation.recipient])
    for address in plan.redirects:
        # RFC 5228 §4.2: the message goes on unchanged, from its original envelope sender.
        queue_outbound(account=account, raw=stored_raw, mail_from=mail_from, recipients=[address])
