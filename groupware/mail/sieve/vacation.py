"""Vacation (RFC 5230, RFC 6131 :seconds): when to answer, and the reply itself."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .actions import Environment, Vacation
from .message import Envelope, MessageView, parse_addresses, split_address

DAY = 86400
LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner",
                "list-archive")  # fmt: skip
RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


def default_handle(reason: str, subject: str | None, from_address: str | None, mime: bool) -> str:
    """RFC 5230 §4.2: without :handle, the handle covers :subject, :from, :mime and the reason."""
    digest = hashlib.sha256()
    for item in (reason, subject or "", from_address or "", "mime" if mime else ""):
        digest.update(item.encode("utf-8", errors="surrogatepass") + b"\0")
    return "auto-" + digest.hexdigest()[:32]


def _auto_submitted(message: MessageView) -> bool:
    for value in message.header_values("auto-submitted"):
        if value.split(";", 1)[0].strip().lower() != "no":
            return True
    return False


def _bulk(message: MessageView) -> bool:
    for value in message.header_values("precedence"):
        if value.strip().lower() in ("bulk", "list", "junk"):
            return True
    if any(message.has_header(name) for name in LIST_HEADERS):
        return True
    for value in message.header_values("x-auto-response-suppress"):
        if {item.strip().lower() for item in value.split(",")} & {"all", "oof", "autoreply"}:
            return True
    return False


def _system_sender(sender: str) -> bool:
    local = split_address(sender)[0].lower()
    return local in ("mailer-daemon", "postmaster") or local.startswith("owner-") or local.endswith("-request")


def _addressed_to(message: MessageView, own: Iterable[str]) -> str | None:
    own_lower = {address.lower(): address for address in own if address}
    for name in RECIPIENT_HEADERS:
        for value in message.raw_header_values(name):
            for address in parse_addresses(value):
                if address.lower() in own_lower:
                    return address
    return None


def vacation_response(
    *,
    message: MessageView,
    envelope: Envelope,
    environment: Environment,
    reason: str,
    subject: str | None,
    from_address: str | None,
    addresses: list[str],
    mime: bool,
    handle: str | None,
    seconds: int,
) -> Vacation | None:
    """The reply to send, or None when RFC 5230 §4.5 (or the tracking) says not to answer."""
    sender = envelope.mail_from.strip().removeprefix("<").removesuffix(">").strip()
    if not sender:
        return None  # §4.5: never answer the null reverse-path (bounces)
    own = [envelope.rcpt_to, *environment.user_addresses, *addresses]
    if sender.lower() in {address.lower() for address in own if address}:
        return None  # our own message: answering could loop
    if _system_sender(sender) or _auto_submitted(message) or _bulk(message):
        return None
    matched = _addressed_to(message, own)
    if matched is None:
        return None  # §4.5: only answer mail that names one of the user's addresses
    if handle is None:
        handle = default_handle(reason, subject, from_address, mime)
    if not environment.vacation_should_reply(sender, handle, seconds):
        return None
    if subject is None:
        original = next(iter(message.header_values("subject")), "")
        subject = f"Auto: {original}" if original else "Automated reply"
    message_id = next(iter(message.raw_header_values("message-id")), "").strip() or None
    references = " ".join(value.strip() for value in message.raw_header_values("references"))
    if message_id:
        references = f"{references} {message_id}".strip()
    return Vacation(
        recipient=sender,
        subject=subject,
        from_address=from_address or matched,
        reason=reason,
        mime=mime,
        handle=handle,
        seconds=seconds,
        in_reply_to=message_id,
        references=references or None,
    )


def vacation_reply_bytes(action: Vacation, from_fallback: str, domain: str | None = None) -> bytes:
    """An RFC 3834 auto-reply for a Vacation action (the delivery code may build its own)."""
    from email import message_from_string, policy

    if action.mime:
        # §5.8: with :mime the reason is a MIME entity (its own headers and body).
        reply = message_from_string(action.reason.replace("\r\n", "\n"), _class=EmailMessage, policy=policy.default)
    else:
        reply = EmailMessage(policy=policy.default)
        reply.set_content(action.reason)
    reply["From"] = action.from_address or from_fallback
    reply["To"] = action.recipient
    reply["Subject"] = action.subject
    reply["Date"] = formatdate(localtime=False, usegmt=False)
    reply["Message-ID"] = make_msgid(domain=domain or split_address(from_fallback)[1] or None)
    if action.in_reply_to:
        reply["In-Reply-To"] = action.in_reply_to
    if action.references:
        reply["References"] = action.references
    reply["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: keeps other responders quiet
    return reply.as_bytes(policy=policy.SMTP)
