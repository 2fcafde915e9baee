"""EmailSubmission services (RFC 8621 §7): check, queue, cancel, forget.

Everything a submission is refused for is checked before anything is queued: sending
rights and rate limits, the Identity and the From/Sender fields (no forged From), the
envelope (addresses, parameters, CR/LF), recipients (none, too many, invalid), size.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from accounts.models import Account, User
from groupware.core.blobs import blob_id, blob_pin, blob_store, blob_unpin
from groupware.core.changes import Change, account_changes
from groupware.mail.headers import header_value
from groupware.mail.models import Email
from groupware.mail.services.emails import email_raw
from groupware.mail.submission.addresses import (
    address_key,
    address_valid,
    has_control,
    identity_allows,
    sender_addresses,
)
from groupware.mail.submission.dispatch import relay_start
from groupware.mail.submission.models import (
    EmailSubmission,
    Identity,
    OutboundMessage,
    OutboundRecipient,
    SenderPolicy,
)
from groupware.mail.submission.outgoing import OutgoingError, outgoing_message
from groupware.mail.submission.reports import SUBMISSION_TYPE, new_message_id, submission_id

# FUTURERELEASE (RFC 4865) and SIZE (RFC 1870) are the MAIL FROM parameters we understand.
MAIL_PARAMETERS = {"HOLDFOR", "HOLDUNTIL", "SIZE"}


class SubmissionError(Exception):
    """A refused submission; ``kind`` is the SetError type, ``extra`` its properties."""

    def __init__(self, kind: str, description: str, **extra: Any) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.extra = extra


# -- Limits -------------------------------------------------------------------------------


def max_delayed_send() -> int:
    return int(settings.SUBMISSION_MAX_DELAYED_SEND)


def sending_limits(user: User) -> tuple[bool, int, int]:
    """(may send, messages per hour, recipients per day) for the user."""
    policy = SenderPolicy.objects.filter(user=user).first()
    per_hour = settings.SUBMISSION_MESSAGES_PER_HOUR
    per_day = settings.SUBMISSION_RECIPIENTS_PER_DAY
    if policy is None:
        return True, per_hour, per_day
    return (
        policy.may_send,
        policy.messages_per_hour if policy.messages_per_hour is not None else per_hour,
        policy.recipients_per_day if policy.recipients_per_day is not None else per_day,
    )


def sending_allowed(*, user: User, recipients: int) -> None:
    """forbiddenToSend if the user may not send now (disabled, or over a rate limit)."""
    may_send, per_hour, per_day = sending_limits(user)
    if not may_send or not user.is_active:
        raise SubmissionError("forbiddenToSend", "Sending is disabled for this user.")
    now = timezone.now()
    sent = OutboundMessage.objects.filter(user=user, created__gte=now - timedelta(hours=1), is_report=False).count()
    if sent + 1 > per_hour:
        raise SubmissionError("forbiddenToSend", f"At most {per_hour} messages per hour may be sent; try again later.")
    day = OutboundRecipient.objects.filter(
        message__user=user, message__created__gte=now - timedelta(days=1), message__is_report=False
    ).aggregate(n=Count("pk"))["n"]
    if day + recipients > per_day:
        raise SubmissionError(
            "forbiddenToSend", f"At most {per_day} recipients per day may be sent to; try again later."
        )


def _outgoing(raw: bytes, *, from_address: str) -> bytes:
    """The message as it leaves (outgoing_message), its refusals as SubmissionErrors."""
    try:
        return outgoing_message(raw, from_address=from_address, max_size=settings.SUBMISSION_MAX_MESSAGE_SIZE)
    except OutgoingError as error:
        raise SubmissionError(error.kind, error.description, **error.extra) from None


# -- Envelope -----------------------------------------------------------------------------


def _single_address(headers: list[dict], name: str) -> str | None:
    """The address of the From or Sender field; invalidEmail if there are several."""
    fields = header_value(headers, name, "Addresses", all_=True)
    if not fields:
        return None
    if len(fields) > 1 or len(fields[0]) != 1:
        prop = "from" if name == "From" else "sender"
        raise SubmissionError("invalidEmail", f"the message must have exactly one {name} address", properties=[prop])
    return fields[0][0]["email"]


def _rcpt_from_headers(email: Email) -> list[str]:
    found: dict[str, str] = {}
    for column in (email.to, email.cc, email.bcc):
        for address in column or []:
            value = address.get("email") or ""
            found.setdefault(address_key(value), value)
    return list(found.values())


def _hold_until(parameters: dict[str, Any], now: datetime) -> datetime | None:
    """The release time a FUTURERELEASE parameter asks for (RFC 4865 §3)."""
    if parameters.get("HOLDFOR") is not None:
        value = str(parameters["HOLDFOR"])
        if not value.isdigit():
            raise SubmissionError("invalidProperties", "HOLDFOR must be a number of seconds", properties=["envelope"])
        return now + timedelta(seconds=int(value))
    if parameters.get("HOLDUNTIL") is not None:
        try:
            when = datetime.fromisoformat(str(parameters["HOLDUNTIL"]).replace("Z", "+00:00"))
        except ValueError:
            raise SubmissionError("invalidProperties", "HOLDUNTIL must be a date-time", properties=["envelope"])
        if when.tzinfo is None:
            raise SubmissionError("invalidProperties", "HOLDUNTIL needs a time zone", properties=["envelope"])
        return when
    return None


def _checked_envelope(envelope: dict[str, Any]) -> tuple[str, dict[str, Any], list[tuple[str, dict]]]:
    """(mailFrom, its parameters, [(rcpt, parameters)]) of a client's Envelope, checked."""

    def bad(description: str) -> SubmissionError:
        return SubmissionError("invalidProperties", description, properties=["envelope"])

    if set(envelope) - {"mailFrom", "rcptTo"} or not isinstance(envelope.get("mailFrom"), dict):
        raise bad("envelope has mailFrom (Address) and rcptTo (Address[])")
    rcpt_to = envelope.get("rcptTo")
    if not isinstance(rcpt_to, list):
        raise bad("envelope.rcptTo must be an array of Address objects")

    def address(value: Any) -> tuple[str, dict]:
        if (
            not isinstance(value, dict)
            or set(value) - {"email", "parameters"}
            or not isinstance(value.get("email"), str)
        ):
            raise bad("an Address has email (String) and parameters (Object|null)")
        parameters = value.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise bad("Address parameters must be an object or null")
        for key, item in parameters.items():
            if has_control(key) or (item is not None and (not isinstance(item, str) or has_control(item))):
                raise bad("envelope parameters may not contain control characters")
        if has_control(value["email"]):
            raise bad("envelope addresses may not contain control characters")
        return value["email"], {key.upper(): item for key, item in parameters.items()}

    mail_from, mail_parameters = address(envelope["mailFrom"])
    unknown = sorted(set(mail_parameters) - MAIL_PARAMETERS)
    if unknown:
        raise bad(f"unsupported MAIL FROM parameters: {', '.join(unknown)}")
    recipients = [address(item) for item in rcpt_to]
    if any(parameters for _, parameters in recipients):
        raise bad("RCPT TO parameters are not supported")
    return mail_from, mail_parameters, recipients


# -- Services -----------------------------------------------------------------------------


def email_submission_create(
    *, account: Account, user: User, identity_pk: int, email_pk: int, envelope: dict[str, Any] | None
) -> EmailSubmission:
    """Check and queue a submission of a stored Email. Raises SubmissionError."""
    identity = Identity.objects.filter(account_id=account.pk, pk=identity_pk).first()
    if identity is None:
        raise SubmissionError("invalidProperties", "no such Identity", properties=["identityId"])
    email = Email.objects.filter(account_id=account.pk, pk=email_pk).first()
    if email is None:
        raise SubmissionError("invalidProperties", "no such Email", properties=["emailId"])
    owned = sender_addresses(user)
    if not owned.allows_identity_email(identity.email):
        raise SubmissionError("forbiddenFrom", f"you may no longer send as {identity.email}")
    headers = (email.parsed or {}).get("headers") or []
    from_address = _single_address(headers, "From")
    sender_address = _single_address(headers, "Sender")
    if from_address is None:
        raise SubmissionError("invalidEmail", "the message has no From address", properties=["from"])
    # No forged From: the Identity must cover it and the user must own it (RFC 8621 §7.5).
    for address in (from_address, sender_address):
        if address is not None and (not identity_allows(identity.email, address) or not owned.allows(address)):
            raise SubmissionError("forbiddenFrom", f"you may not send as {address} with this identity")

    now = timezone.now()
    if envelope is None:
        # RFC 8621 §7: from the Sender (else From) field; the Identity's address if that
        # one isn't the Identity's; recipients from To, Cc and Bcc, deduplicated.
        mail_from = sender_address or from_address
        if not identity_allows(identity.email, mail_from):
            mail_from = identity.email
        mail_parameters: dict[str, Any] = {}
        recipients = [(address, {}) for address in _rcpt_from_headers(email)]
    else:
        mail_from, mail_parameters, recipients = _checked_envelope(envelope)
        if not address_valid(mail_from) or not owned.allows(mail_from):
            raise SubmissionError("forbiddenMailFrom", f"you may not use {mail_from or '<>'} as the envelope sender")
    deduplicated: dict[str, tuple[str, dict]] = {}
    for address, parameters in recipients:
        deduplicated.setdefault(address_key(address), (address, parameters))
    recipients = list(deduplicated.values())
    if not recipients:
        raise SubmissionError("noRecipients", "the envelope has no recipients")
    limit = settings.SUBMISSION_MAX_RECIPIENTS
    if len(recipients) > limit:
        raise SubmissionError("tooManyRecipients", f"at most {limit} recipients", maxRecipients=limit)
    invalid = [address for address, _ in recipients if not address_valid(address)]
    if invalid:
        raise SubmissionError("invalidRecipients", "invalid recipient addresses", invalidRecipients=invalid)
    send_at = _hold_until(mail_parameters, now) or now
    if send_at < now:
        send_at = now
    if (send_at - now).total_seconds() > max_delayed_send():
        raise SubmissionError(
            "invalidProperties",
            f"sends may be delayed by at most {max_delayed_send()} seconds",
            properties=["envelope"],
        )
    max_size = settings.SUBMISSION_MAX_MESSAGE_SIZE
    if email.size > max_size:
        raise SubmissionError("tooLarge", f"messages are limited to {max_size} octets", maxSize=max_size)
    sending_allowed(user=user, recipients=len(recipients))

    raw = email_raw(email)
    message_ids = email.message_id or []
    message_id = f"<{message_ids[0]}>" if message_ids else new_message_id()
    if not message_ids:
        raw = f"Message-ID: {message_id}\r\n".encode() + raw
    outgoing = _outgoing(raw, from_address=from_address)

    with account_changes(account.pk) as changes:
        # RCPT TO parameters are refused by _checked_envelope: the recipients' are all empty.
        outbound = outbound_queue(
            account=account, user=user, raw=outgoing, mail_from=mail_from, mail_parameters=mail_parameters,
            recipients=[address for address, _ in recipients], message_id=message_id, send_at=send_at,
        )  # fmt: skip
        initial = {"smtpReply": "250 2.0.0 Queued", "delivered": "queued", "displayed": "unknown"}
        submission = EmailSubmission.objects.create(
            account=account,
            user=user,
            identity_pk=identity.pk,
            email_pk=email.pk,
            thread_pk=email.thread_id,
            envelope={
                "mailFrom": {"email": mail_from, "parameters": mail_parameters or None},
                "rcptTo": [{"email": address, "parameters": parameters or None} for address, parameters in recipients],
            },
            send_at=send_at,
            delivery_status={address: dict(initial) for address, _ in recipients},
            recipient_count=len(recipients),
            outbound=outbound,
        )
        changes.record(SUBMISSION_TYPE, submission_id(submission.pk), Change.CREATED)
    return submission


def email_submission_cancel(*, submission: EmailSubmission) -> EmailSubmission:
    """undoStatus pending -> canceled: only while no recipient has been sent or is being
    sent right now; otherwise cannotUnsend (RFC 8621 §7.5)."""
    if submission.undo_status == EmailSubmission.CANCELED:
        return submission
    now = timezone.now()
    with account_changes(submission.account_id) as changes:
        recipients = list(OutboundRecipient.objects.select_for_update().filter(message_id=submission.outbound_id))
        busy = any(r.locked_until is not None and r.locked_until > now for r in recipients)
        if (
            submission.undo_status != EmailSubmission.PENDING
            or submission.outbound_id is None
            or busy
            or any(r.state != OutboundRecipient.QUEUED for r in recipients)
        ):
            raise SubmissionError("cannotUnsend", "the message has already been sent (or is being sent)")
        OutboundRecipient.objects.filter(pk__in=[r.pk for r in recipients]).update(
            state=OutboundRecipient.CANCELED, updated=now
        )
        outbound = submission.outbound
        outbound.finished = now
        outbound.save(update_fields=["finished"])
        blob_unpin(submission.account, blob_id(outbound.blob_id))
        submission.undo_status = EmailSubmission.CANCELED
        submission.delivery_status = {
            address: {**entry, "delivered": "no", "smtpReply": "554 5.0.0 Canceled by the sender"}
            for address, entry in (submission.delivery_status or {}).items()
        }
        submission.save(update_fields=["undo_status", "delivery_status"])
        changes.record(SUBMISSION_TYPE, submission_id(submission.pk), Change.UPDATED)
    return submission


def email_submission_destroy(*, submission: EmailSubmission) -> None:
    """Forget the record; the deliveries it stands for go on (RFC 8621 §7.5)."""
    with account_changes(submission.account_id) as changes:
        for value in [*submission.dsn_blob_ids, *submission.mdn_blob_ids]:
            blob_unpin(submission.account, value)
        pk = submission.pk
        submission.delete()
        changes.record(SUBMISSION_TYPE, submission_id(pk), Change.DESTROYED)


def mdn_queue(
    *, account: Account, user: User, raw: bytes, from_address: str, to: str, message_id: str
) -> OutboundMessage:
    """Queue an MDN (RFC 8098 §2.1: the envelope sender is null, so no DSN comes back)."""
    may_send, _, _ = sending_limits(user)
    if not may_send or not user.is_active:
        raise SubmissionError("forbidden", "Sending is disabled for this user.")
    return outbound_queue(
        account=account, user=user, raw=_outgoing(raw, from_address=from_address), mail_from="", recipients=[to],
        message_id=message_id, is_report=True,
    )  # fmt: skip


def outbound_queue(
    *,
    account: Account,
    raw: bytes,
    mail_from: str,
    recipients: list[str],
    user: User | None = None,
    message_id: str = "",
    is_report: bool = False,
    mail_parameters: dict[str, Any] | None = None,
    send_at: datetime | None = None,
) -> OutboundMessage:
    """Queue a message the server sends itself, sent as it is (MDNs; Sieve vacation replies
    and redirects from delivery): stored as a blob and relayed like a submission, local
    recipients through delivery, remote ones through the smarthost or MX."""
    send_at = send_at or timezone.now()
    with account_changes(account.pk):
        stored = blob_store(account=account, stream_or_bytes=raw, type="message/rfc822", max_size=len(raw))
        blob_pin(account, blob_id(stored.blob_id))
        outbound = OutboundMessage.objects.create(
            account=account, user=user, blob_id=stored.blob_id, mail_from=mail_from,
            mail_parameters=mail_parameters or {}, message_id=message_id, send_at=send_at, is_report=is_report,
        )  # fmt: skip
        OutboundRecipient.objects.bulk_create(
            [OutboundRecipient(message=outbound, address=address, next_attempt=send_at) for address in recipients]
        )
        relay_start(outbound.pk, send_at)
    return outbound
