"""MDN/send and MDN/parse (RFC 9007): read receipts as JMAP objects."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from groupware.core.ids import decode, encode
from groupware.mail.headers import header_value
from groupware.mail.models import Email, MessageIdIndex
from groupware.mail.services.counts import EMAIL_ID_PREFIX
from groupware.mail.services.emails import email_raw, mail_blob_reader
from groupware.mail.submission import services
from groupware.mail.submission.addresses import (
    SenderAddresses,
    address_valid,
    has_control,
    identity_allows,
    sender_addresses,
)
from groupware.mail.submission.identities import IDENTITY_ID_PREFIX
from groupware.mail.submission.models import Identity
from groupware.mail.submission.reports import (
    ACTION_MODES,
    DISPOSITION_TYPES,
    SENDING_MODES,
    MdnFields,
    build_mdn,
    mdn_from_report,
    parse_report,
)
from groupware.mail.submission.services import SubmissionError
from jmap import args as a
from jmap.context import CallContext
from jmap.email import EMAIL
from jmap.errors import MethodError, SetError, invalid_properties
from jmap.mail_capability import MAIL
from jmap.registry import registry
from jmap.standard.set import perform_set
from jmap.submission_capability import MDN, sending_account, set_errors

SEND_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("identityId", a.id_),
    a.arg("send", a.map_of(a.obj, key=a.creation_id_key)),
    a.arg("onSuccessUpdateEmail", a.nullable(a.map_of(a.obj)), None),
)
PARSE_ARGS = (a.arg("accountId", a.id_), a.arg("blobIds", a.list_of(a.id_)))
MDN_KEYWORD = "$mdnsent"
_CLIENT = {
    "forEmailId", "subject", "textBody", "includeOriginalMessage", "reportingUA", "disposition",
    "finalRecipient", "extensionFields",
}  # fmt: skip
_SERVER_SET = {"mdnGateway", "originalRecipient", "originalMessageId", "error"}


def _account(call: CallContext, account_id: Any, *, write: bool) -> Any:
    # RFC 9007 §2.1/§2.2: an unknown account is invalidArguments for these methods.
    try:
        return sending_account(call, account_id, write=write)
    except MethodError as error:
        if error.kind in ("accountNotFound", "accountNotSupportedByMethod"):
            raise MethodError("invalidArguments", "no such account for MDNs") from None
        raise


def _sets_mdnsent(patch: dict[str, Any] | None) -> bool:
    if not patch:
        return False
    return patch.get(f"keywords/{MDN_KEYWORD}") is True or (
        isinstance(patch.get("keywords"), dict) and patch["keywords"].get(MDN_KEYWORD) is True
    )


def _checked_mdn(values: dict[str, Any]) -> dict[str, Any]:
    server_set = sorted(set(values) & _SERVER_SET)
    if server_set:
        raise invalid_properties(server_set, "these properties are set by the server")
    unknown = sorted(set(values) - _CLIENT)
    if unknown:
        raise invalid_properties(unknown, "unknown properties")
    bad: list[str] = []
    for name in ("subject", "textBody", "reportingUA", "finalRecipient"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            bad.append(name)
    for name in ("reportingUA", "finalRecipient", "subject"):  # they become header fields
        if isinstance(values.get(name), str) and has_control(values[name]):
            bad.append(name)
    if not isinstance(values.get("forEmailId"), str):
        bad.append("forEmailId")
    if not isinstance(values.get("includeOriginalMessage", False), bool):
        bad.append("includeOriginalMessage")
    disposition = values.get("disposition")
    if (
        not isinstance(disposition, dict)
        or set(disposition) != {"actionMode", "sendingMode", "type"}
        or disposition["actionMode"] not in ACTION_MODES
        or disposition["sendingMode"] not in SENDING_MODES
        or disposition["type"] not in DISPOSITION_TYPES
    ):
        bad.append("disposition")
    extensions = values.get("extensionFields")
    if extensions is not None and (
        not isinstance(extensions, dict)
        or not all(
            isinstance(key, str) and isinstance(item, str) and key.isascii() and ":" not in key
            and not has_control(key) and not has_control(item) and key.strip() == key and key
            for key, item in extensions.items()
        )
    ):  # fmt: skip
        bad.append("extensionFields")
    if bad:
        raise invalid_properties(bad, "invalid MDN properties")
    return values


def _default_text(email: Email, final_recipient: str, kind: str) -> str:
    when = email.sent_at.strftime("%d %b %Y %H:%M:%S %z") if email.sent_at else "an unknown date"
    return (
        f'The message sent on {when} to {final_recipient.split(";", 1)[-1].strip()} with subject "{email.subject}" '
        f"has been {kind}.\nThis is no guarantee that the message has been read or understood.\n"
    )


def _send_one(
    call: CallContext, account: Any, identity: Identity, owned: SenderAddresses, values: dict[str, Any], patches: dict
) -> dict:
    values = _checked_mdn(values)
    email_pk = decode(EMAIL_ID_PREFIX, values["forEmailId"])
    email = Email.objects.filter(account_id=account.pk, pk=email_pk).first() if email_pk is not None else None
    if email is None:
        raise SetError("notFound", "no such Email")
    headers = (email.parsed or {}).get("headers") or []
    notify = header_value(headers, "Disposition-Notification-To", "Addresses") or []
    if not notify or not address_valid(notify[0].get("email")):
        raise SetError("notFound", "the Email has no valid Disposition-Notification-To header field")
    if email.keywords.get(MDN_KEYWORD):
        raise SetError("mdnAlreadySent", "$mdnsent keyword is already present")
    if not _sets_mdnsent(patches.get(values["forEmailId"])):
        raise invalid_properties(["forEmailId"], "onSuccessUpdateEmail must set the $mdnsent keyword on this Email")
    if values.get("finalRecipient"):
        final_address = values["finalRecipient"].split(";", 1)[-1].strip()
        if not address_valid(final_address) or not identity_allows(identity.email, final_address):
            raise SetError("forbiddenFrom", "this identity may not use that finalRecipient")
        final_recipient = values["finalRecipient"]
    else:
        final_address = identity.email
        if identity.email.startswith("*@"):  # the address of the domain the message came to
            to = [item["email"] for item in (email.to or []) + (email.cc or []) if item.get("email")]
            final_address = next((item for item in to if identity_allows(identity.email, item)), "")
        final_recipient = f"rfc822; {final_address}"
    if not address_valid(final_address) or not owned.allows(final_address):
        raise SetError("forbiddenFrom", f"you may not send as {final_address}")
    kind = values["disposition"]["type"]
    original_message_id = f"<{email.message_id[0]}>" if email.message_id else None
    original_recipient = header_value(headers, "Original-Recipient", "Text")
    subject = values.get("subject")
    if subject is None:
        subject = (
            f"Read receipt: {email.subject}" if kind == "displayed" else f"Disposition notification: {email.subject}"
        )
    text_body = values.get("textBody")
    if text_body is None:
        text_body = _default_text(email, final_recipient, kind)
    include = values.get("includeOriginalMessage", False)
    fields = MdnFields(
        from_name=identity.name or None,
        from_address=final_address,
        to=notify[0]["email"],
        subject=subject,
        text_body=text_body,
        reporting_ua=values.get("reportingUA"),
        action_mode=values["disposition"]["actionMode"],
        sending_mode=values["disposition"]["sendingMode"],
        disposition_type=kind,
        final_recipient=final_recipient,
        original_recipient=original_recipient.strip() if original_recipient else None,
        original_message_id=original_message_id,
        extension_fields=dict(values.get("extensionFields") or {}),
        original=email_raw(email) if include else None,
    )
    raw, message_id = build_mdn(fields)
    with set_errors(SubmissionError):
        services.mdn_queue(
            account=account, user=call.user, raw=raw, from_address=final_address, to=fields.to, message_id=message_id
        )
    sent: dict[str, Any] = {
        "finalRecipient": final_recipient,
        "originalMessageId": original_message_id,
        "originalRecipient": fields.original_recipient,
        "mdnGateway": None,
        "error": None,
    }
    for name, default in (("subject", subject), ("textBody", text_body), ("includeOriginalMessage", False),
                          ("reportingUA", None), ("extensionFields", None)):  # fmt: skip
        if name not in values:
            sent[name] = default
    return sent


@registry.method("MDN/send", capability=MDN, writes=True)
def mdn_send(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(SEND_ARGS, arguments)
    if MAIL not in call.request.using:
        raise MethodError("unknownMethod", "MDN/send needs urn:ietf:params:jmap:mail in using too")
    account = _account(call, parsed["accountId"], write=True)
    identity_pk = decode(IDENTITY_ID_PREFIX, parsed["identityId"])
    identity = Identity.objects.filter(account_id=account.pk, pk=identity_pk).first() if identity_pk else None
    if identity is None:
        raise MethodError("invalidArguments", "no such identityId")
    if len(parsed["send"]) > settings.JMAP["maxObjectsInSet"]:
        raise MethodError("requestTooLarge", "too many MDNs in one call")
    patches = parsed["onSuccessUpdateEmail"] or {}
    sent: dict[str, Any] = {}
    not_sent: dict[str, Any] = {}
    done_emails: list[str] = []
    owned = sender_addresses(call.user)  # once per call, not per MDN
    for cid, values in parsed["send"].items():
        try:
            sent[cid] = _send_one(call, account, identity, owned, values, patches)
            done_emails.append(values["forEmailId"])
        except SetError as error:
            not_sent[cid] = error.as_dict()
    response = {"accountId": account.jmap_id, "sent": sent or None, "notSent": not_sent or None}
    update = {email_id: patches[email_id] for email_id in dict.fromkeys(done_emails) if email_id in patches}
    if update:
        try:
            call.emit(
                "Email/set",
                perform_set(EMAIL, call, account, if_in_state=None, create={}, update=update, destroy=[]),
            )
        except MethodError as error:
            call.emit("error", error.arguments())
    return response


def _email_for_message_id(account: Any, message_id: str | None) -> str | None:
    """The Email with this Message-ID, if exactly one has it (RFC 9007 §2.2)."""
    if not message_id:
        return None
    wanted = message_id.strip().strip("<>")
    threads = MessageIdIndex.objects.filter(account_id=account.pk, message_id=wanted).values_list(
        "thread_id", flat=True
    )
    candidates = Email.objects.filter(account_id=account.pk, thread_id__in=list(threads)).values_list(
        "pk", "message_id"
    )
    matches = [pk for pk, ids in candidates if wanted in (ids or [])]
    return encode(EMAIL_ID_PREFIX, matches[0]) if len(matches) == 1 else None


@registry.method("MDN/parse", capability=MDN)
def mdn_parse(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(PARSE_ARGS, arguments)
    account = _account(call, parsed["accountId"], write=False)
    if len(parsed["blobIds"]) > settings.JMAP["maxObjectsInGet"]:
        raise MethodError("requestTooLarge", "too many blobIds in one call")
    found: dict[str, Any] = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    blob_ids = list(dict.fromkeys(parsed["blobIds"]))
    read = mail_blob_reader(account, blob_ids, user=call.user)
    for given in blob_ids:
        data = read(given)
        if data is None:
            not_found.append(given)
            continue
        report = parse_report(data)
        mdn = mdn_from_report(report) if report is not None else None
        if mdn is None:
            not_parsable.append(given)
            continue
        mdn["forEmailId"] = _email_for_message_id(account, mdn["originalMessageId"])
        found[given] = mdn
    return {
        "accountId": account.jmap_id,
        "parsed": found or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    }
