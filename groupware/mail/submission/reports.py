"""Delivery and disposition reports: DSNs (RFC 3464) and MDNs (RFC 8098).

Both are multipart/report messages (RFC 6522). The server writes DSNs when a recipient
fails for good, writes MDNs for MDN/send (RFC 9007), parses MDNs for MDN/parse, and
links reports that arrive for a message this server sent to its EmailSubmission.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.message import Message
from email.parser import HeaderParser
from email.utils import format_datetime, formataddr
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from groupware.core.blobs import blob_id, blob_pin, blob_store
from groupware.core.changes import Change, account_changes
from groupware.core.ids import encode
from groupware.mail.submission.addresses import address_key
from groupware.mail.submission.models import EmailSubmission

SUBMISSION_TYPE = "EmailSubmission"
SUBMISSION_ID_PREFIX = "s"
ACTION_MODES = ("manual-action", "automatic-action")
SENDING_MODES = ("mdn-sent-manually", "mdn-sent-automatically")
DISPOSITION_TYPES = ("deleted", "dispatched", "displayed", "processed")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
_KNOWN_MDN_FIELDS = {
    "reporting-ua", "mdn-gateway", "original-recipient", "final-recipient", "original-message-id",
    "disposition", "error",
}  # fmt: skip


def submission_id(pk: int) -> str:
    return encode(SUBMISSION_ID_PREFIX, pk)


def helo_name() -> str:
    return settings.SUBMISSION_HELO_NAME or socket.getfqdn() or "localhost"


def new_message_id() -> str:
    return f"<{secrets.token_hex(12)}@{helo_name()}>"


def _header(name: str, value: str) -> bytes:
    """One header field; non-ASCII text as RFC 2047 encoded words."""
    if value.isascii():
        return f"{name}: {value}\r\n".encode()
    return f"{name}: {Header(value, 'utf-8').encode()}\r\n".encode()


def _address(name: str | None, address: str) -> str:
    return formataddr((name or "", address), charset="utf-8")


def _text_part(text: str) -> bytes:
    import base64

    if text.isascii():
        body = text.replace("\r\n", "\n").replace("\n", "\r\n")
        return b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + body.encode() + b"\r\n"
    encoded = base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
    return b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded


def _report(
    *, headers: list[bytes], report_type: str, human: str, machine_type: str, machine: bytes, third: bytes | None
) -> bytes:
    boundary = "=_report_" + secrets.token_hex(12)
    out = b"".join(headers)
    out += b"MIME-Version: 1.0\r\n"
    out += f'Content-Type: multipart/report; report-type={report_type};\r\n boundary="{boundary}"\r\n\r\n'.encode()
    out += b"This is a MIME-encapsulated message.\r\n\r\n"
    out += f"--{boundary}\r\n".encode() + _text_part(human)
    out += f"--{boundary}\r\n".encode() + f"Content-Type: {machine_type}\r\n\r\n".encode() + machine
    if third is not None:
        out += f"\r\n--{boundary}\r\n".encode() + third
    out += f"\r\n--{boundary}--\r\n".encode()
    return out


def original_header_section(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end == -1 else raw[: end + 2]


# -- DSN ----------------------------------------------------------------------------------


@dataclass
class FailedRecipient:
    address: str
    reply: str
    remote_mta: str | None = None


def build_dsn(
    *, to: str, original: bytes, arrival: datetime, failed: list[FailedRecipient], now: datetime | None = None
) -> bytes:
    """A failure DSN (RFC 3464) to the original sender, with the original header section."""
    now = now or timezone.now()
    reporter = helo_name()
    headers = [
        _header("From", _address("Mail Delivery System", f"MAILER-DAEMON@{reporter}")),
        _header("To", f"<{to}>"),
        _header("Subject", "Undelivered Mail Returned to Sender"),
        _header("Date", format_datetime(now)),
        _header("Message-ID", new_message_id()),
        _header("Auto-Submitted", "auto-replied"),
    ]
    lines = [
        "Your message could not be delivered to one or more recipients.",
        "",
        *(f"<{item.address}>: {item.reply}" for item in failed),
    ]
    machine = f"Reporting-MTA: dns; {reporter}\r\nArrival-Date: {format_datetime(arrival)}\r\n".encode()
    for item in failed:
        match = _ENHANCED.match(item.reply[4:]) if len(item.reply) > 4 else None
        status = match.group(1) if match else ("5.0.0" if item.reply.startswith("5") else "4.0.0")
        machine += b"\r\n"
        machine += f"Final-Recipient: rfc822; {item.address}\r\nAction: failed\r\nStatus: {status}\r\n".encode()
        if item.remote_mta:
            machine += f"Remote-MTA: dns; {item.remote_mta}\r\n".encode()
        machine += f"Diagnostic-Code: smtp; {item.reply}\r\n".encode()
        machine += f"Last-Attempt-Date: {format_datetime(now)}\r\n".encode()
    third = b"Content-Type: text/rfc822-headers\r\n\r\n" + original_header_section(original)
    return _report(
        headers=headers,
        report_type="delivery-status",
        human="\n".join(lines) + "\n",
        machine_type="message/delivery-status",
        machine=machine,
        third=third,
    )


# -- MDN ----------------------------------------------------------------------------------


@dataclass
class MdnFields:
    """What MDN/send takes from the client and the original message."""

    from_name: str | None
    from_address: str
    to: str
    subject: str
    text_body: str
    reporting_ua: str | None
    action_mode: str
    sending_mode: str
    disposition_type: str
    final_recipient: str
    original_recipient: str | None
    original_message_id: str | None
    error: list[str] = field(default_factory=list)
    extension_fields: dict[str, str] = field(default_factory=dict)
    original: bytes | None = None  # the whole original message, when it is included


def _sending_mode_token(mode: str) -> str:
    return "MDN-sent-manually" if mode == "mdn-sent-manually" else "MDN-sent-automatically"


def build_mdn(fields: MdnFields, *, now: datetime | None = None) -> tuple[bytes, str]:
    """An MDN (RFC 8098 §3) and its Message-ID."""
    now = now or timezone.now()
    message_id = new_message_id()
    headers = [
        _header("From", _address(fields.from_name, fields.from_address)),
        _header("To", f"<{fields.to}>"),
        _header("Subject", fields.subject),
        _header("Date", format_datetime(now)),
        _header("Message-ID", message_id),
    ]
    if fields.original_message_id:
        headers.append(_header("In-Reply-To", fields.original_message_id))
        headers.append(_header("References", fields.original_message_id))
    if fields.sending_mode == "mdn-sent-automatically":
        headers.append(_header("Auto-Submitted", "auto-replied"))
    machine = b""
    if fields.reporting_ua:
        machine += f"Reporting-UA: {fields.reporting_ua}\r\n".encode()
    if fields.original_recipient:
        machine += f"Original-Recipient: {fields.original_recipient}\r\n".encode()
    machine += f"Final-Recipient: {fields.final_recipient}\r\n".encode()
    if fields.original_message_id:
        machine += f"Original-Message-ID: {fields.original_message_id}\r\n".encode()
    modifier = "/error" if fields.error else ""
    mode = f"{fields.action_mode}/{_sending_mode_token(fields.sending_mode)}"
    machine += f"Disposition: {mode}; {fields.disposition_type}{modifier}\r\n".encode()
    for text in fields.error:
        machine += f"Error: {text}\r\n".encode()
    for name, value in fields.extension_fields.items():
        machine += f"{name}: {value}\r\n".encode()
    third = None
    if fields.original is not None:
        third = b"Content-Type: message/rfc822\r\n\r\n" + fields.original
    raw = _report(
        headers=headers,
        report_type="disposition-notification",
        human=fields.text_body,
        machine_type="message/disposition-notification",
        machine=machine,
        third=third,
    )
    return raw, message_id


# -- Parsing ------------------------------------------------------------------------------


@dataclass
class ParsedReport:
    report_type: str  # "disposition-notification" | "delivery-status"
    subject: str | None
    text_body: str | None
    fields: list[tuple[str, str]]  # MDN fields, or every DSN field (message then recipients)
    recipient_groups: list[list[tuple[str, str]]]  # DSN: per-recipient field groups
    third_type: str | None
    original_headers: list[tuple[str, str]]


def _fields_of(part: Message) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The fields of a message/disposition-notification or message/delivery-status part."""
    payload = part.get_payload()
    blocks: list[Message] = []
    if isinstance(payload, list):
        blocks = [item for item in payload if isinstance(item, Message)]
    else:
        text = part.get_payload(decode=True) or b""
        for chunk in re.split(rb"\r?\n\r?\n", text.strip()):
            blocks.append(HeaderParser(policy=email.policy.compat32).parsestr(chunk.decode("utf-8", "replace")))
    groups = [[(name, " ".join(str(value).split())) for name, value in block.items()] for block in blocks]
    flat = [pair for group in groups for pair in group]
    return flat, groups[1:]


def _decoded_subject(message: Message) -> str | None:
    from groupware.mail.headers import as_text

    value = message.get("Subject")
    return None if value is None else as_text(str(value))


def parse_report(raw: bytes) -> ParsedReport | None:
    """The parts of a multipart/report message, or None if it isn't one."""
    try:
        # The header alone first: delivery asks this of every message it stores.
        head = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
        if head.get_content_type() != "multipart/report":
            return None
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # the stdlib parser is lenient; anything else is simply not a report
        return None
    if message.get_content_type() != "multipart/report":
        return None
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) < 2:
        return None
    report_type = (message.get_param("report-type") or "").lower()
    text_body = None
    if parts[0].get_content_type() == "text/plain":
        data = parts[0].get_payload(decode=True) or b""
        text_body = data.decode(parts[0].get_content_charset() or "utf-8", "replace").replace("\r\n", "\n")
    machine = parts[1]
    expected = {"disposition-notification": "message/disposition-notification"}.get(
        report_type, "message/delivery-status"
    )
    if machine.get_content_type() not in (expected, "message/global-disposition-notification"):
        return None
    fields, groups = _fields_of(machine)
    third_type = parts[2].get_content_type() if len(parts) > 2 else None
    original_headers: list[tuple[str, str]] = []
    if len(parts) > 2:
        third = parts[2]
        inner = third.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            original_headers = [(name, str(value)) for name, value in inner[0].items()]
        else:
            data = third.get_payload(decode=True) or b""
            parsed = HeaderParser(policy=email.policy.compat32).parsestr(data.decode("utf-8", "replace"))
            original_headers = [(name, str(value)) for name, value in parsed.items()]
    return ParsedReport(
        report_type=report_type,
        subject=_decoded_subject(message),
        text_body=text_body,
        fields=fields,
        recipient_groups=groups,
        third_type=third_type,
        original_headers=original_headers,
    )


def _field(fields: list[tuple[str, str]], name: str) -> str | None:
    for key, value in fields:
        if key.lower() == name:
            return value
    return None


def _address_of(recipient_field: str | None) -> str | None:
    """``rfc822; bob@example.org`` -> ``bob@example.org``."""
    if not recipient_field:
        return None
    value = recipient_field.split(";", 1)[-1].strip()
    return value.strip("<>") or None


def mdn_from_report(report: ParsedReport) -> dict[str, Any] | None:
    """The MDN object (RFC 9007 §2) of a parsed disposition notification, or None."""
    if report.report_type != "disposition-notification":
        return None
    disposition = _field(report.fields, "disposition")
    final = _field(report.fields, "final-recipient")
    if not disposition or not final:
        return None
    mode, _, kind = disposition.partition(";")
    action, _, sending = mode.strip().lower().partition("/")
    disposition_type = kind.strip().lower().split("/")[0].strip()
    if action not in ACTION_MODES or sending.strip() not in SENDING_MODES or disposition_type not in DISPOSITION_TYPES:
        return None
    errors = [value for key, value in report.fields if key.lower() == "error"]
    extensions = {key: value for key, value in report.fields if key.lower() not in _KNOWN_MDN_FIELDS}
    return {
        "forEmailId": None,
        "subject": report.subject,
        "textBody": report.text_body,
        "includeOriginalMessage": report.third_type in ("message/rfc822", "message/global"),
        "reportingUA": _field(report.fields, "reporting-ua"),
        "disposition": {"actionMode": action, "sendingMode": sending.strip(), "type": disposition_type},
        "mdnGateway": _field(report.fields, "mdn-gateway"),
        "originalRecipient": _field(report.fields, "original-recipient"),
        "finalRecipient": final,
        "originalMessageId": _field(report.fields, "original-message-id"),
        "error": errors or None,
        "extensionFields": extensions or None,
    }


# -- Reports about our own submissions ------------------------------------------------------


def _find_submission(account: Account, message_id: str | None) -> EmailSubmission | None:
    if not message_id:
        return None
    wanted = message_id.strip()
    return EmailSubmission.objects.filter(account_id=account.pk, outbound__message_id=wanted).order_by("-pk").first()


def _status_entry(status: dict[str, Any], address: str) -> dict[str, Any] | None:
    for key, entry in status.items():
        if address_key(key) == address_key(address):
            return entry
    return None


def submission_report_received(*, account: Account, raw: bytes) -> EmailSubmission | None:
    """Link an incoming DSN or MDN to the account's EmailSubmission it reports on (RFC 8621
    §7: dsnBlobIds/mdnBlobIds, deliveryStatus delivered/displayed). Returns the submission
    it updated, or None when the message isn't a report about one of ours."""
    report = parse_report(raw)
    if report is None:
        return None
    if report.report_type == "disposition-notification":
        mdn = mdn_from_report(report)
        if mdn is None:
            return None
        submission = _find_submission(account, mdn["originalMessageId"])
        updates = {_address_of(mdn["finalRecipient"]) or "": {"displayed": "yes"}}
        if mdn["disposition"]["type"] != "displayed":
            updates = {}
        return _record_report(account, submission, raw, "mdn_blob_ids", updates)
    if report.report_type == "delivery-status":
        submission = _find_submission(account, _field(report.original_headers, "message-id"))
        updates = {}
        for group in report.recipient_groups:
            address = _address_of(_field(group, "final-recipient"))
            action = (_field(group, "action") or "").lower()
            diagnostic = _field(group, "diagnostic-code")
            change: dict[str, Any] = {}
            if action == "failed":
                change["delivered"] = "no"
            elif action == "delivered":
                change["delivered"] = "yes"
            if diagnostic and ";" in diagnostic:
                change["smtpReply"] = diagnostic.split(";", 1)[1].strip()
            if address and change:
                updates[address] = change
        return _record_report(account, submission, raw, "dsn_blob_ids", updates)
    return None


def _record_report(
    account: Account, submission: EmailSubmission | None, raw: bytes, blob_field: str, updates: dict[str, dict]
) -> EmailSubmission | None:
    if submission is None:
        return None
    with account_changes(account.pk) as changes:
        submission = EmailSubmission.objects.select_for_update().get(pk=submission.pk)
        stored = blob_store(account=account, stream_or_bytes=raw, type="message/rfc822", max_size=len(raw) + 1)
        report_blob = blob_id(stored.blob_id)
        blobs = list(getattr(submission, blob_field))
        if report_blob not in blobs:
            blob_pin(account, report_blob)
            blobs.append(report_blob)
        setattr(submission, blob_field, blobs)
        status = dict(submission.delivery_status or {})
        for address, change in updates.items():
            entry = _status_entry(status, address)
            if entry is not None:
                entry.update(change)
        submission.delivery_status = status
        submission.save(update_fields=[blob_field, "delivery_status"])
        changes.record(SUBMISSION_TYPE, submission_id(submission.pk), Change.UPDATED)
    return submission
