"""Email services (RFC 8621 §4): ingest, copy, update keywords/mailboxes, destroy.

Every write to an Email goes through here, whoever asks (JMAP Email/set, /import and
/copy, delivery, Sieve, the webmail): the raw message is stored as a blob and parsed
exactly once, every column /get and /query read is filled from that parse, the Email
joins a Thread, its memberships and the Mailbox counts move together, the search index
follows, and each change is recorded in the same transaction (groupware.core.changes).

Part blobs. An EmailBodyPart's blobId (RFC 8621 §4.1.4) is derived, not stored:
``"p" + <sha256 of the message blob> + "_" + <partId>`` (partIds are digits and dots,
written with "-" for ".", so the id stays in the Id alphabet of RFC 8620 §1.2). A part
of a message that is itself an attached message/rfc822 part chains the path:
``p<sha>_<partId>_<partId>``. ``mail_blob_read`` turns either kind of id (whole blobs
"b..." and parts "p...") into octets, checking that the account can see the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import Account, User
from accounts.quotas import OverQuota, quota_charge
from groupware.core import sql
from groupware.core.blobs import (
    BlobNotFound,
    blob_copy,
    blob_find_many,
    blob_id,
    blob_pin,
    blob_pin_many,
    blob_read,
    blob_read_row,
    blob_storage,
    blob_store_pinned,
    parse_blob_id,
    storage_name,
)
from groupware.core.changes import Change, account_changes, account_changes_joined
from groupware.core.collation import unicode_casemap
from groupware.mail.mime import ParsedMessage, parse_message, part_content
from groupware.mail.models import Email, EmailMailbox
from groupware.mail.search import SearchDocument, search_document
from groupware.mail.services import threads
from groupware.mail.services.counts import (
    EMAIL_TYPE,
    email_destroy_orphans,
    email_id,
    is_unread,
    mailbox_counts_apply,
    thread_snapshot,
)
from groupware.mail.services.store import NewEmail, emails_insert

DEFAULT_MAX_MESSAGE_SIZE = 50_000_000
MESSAGE_TYPE = "message/rfc822"
PART_BLOB_PREFIX = "p"

# RFC 8621 §4.1.1: 1-255 characters of %x21-%x7e, none of ( ) { ] % * " \
_KEYWORD = re.compile(r"^[\x21-\x7e]{1,255}$")
_KEYWORD_FORBIDDEN_CHARS = frozenset('(){]%*"\\')
# IMAP's \Recent is never exposed through JMAP (§4.1.1), so it can't be set either.
FORBIDDEN_KEYWORDS = frozenset({"$recent"})
_PART_ID = re.compile(r"^[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*$")
_PART_BLOB = re.compile(r"^p([0-9a-f]{64})((?:_[0-9A-Za-z-]+)+)$")


# -- Errors -------------------------------------------------------------------------------


class EmailError(Exception):
    """A request the mail store refuses; the protocol layer maps each kind to its error."""


class MessageTooLarge(EmailError):
    def __init__(self, max_size: int) -> None:
        super().__init__(f"The message is larger than the maximum of {max_size} octets.")
        self.max_size = max_size


class InvalidKeywords(EmailError):
    def __init__(self, keywords: list[str]) -> None:
        super().__init__(f"invalid keyword(s): {', '.join(map(repr, keywords))}")
        self.keywords = keywords


class MailboxesInvalid(EmailError):
    """No mailbox given, or mailboxes that don't exist in the account."""

    def __init__(self, missing: list[int], description: str | None = None) -> None:
        super().__init__(description or f"no such mailbox(es): {missing}")
        self.missing = missing


class InvalidMessage(EmailError):
    """The octets can't be parsed as a message (RFC 8621 §4.8 invalidEmail)."""


# -- Settings and validation ---------------------------------------------------------------


def max_message_size() -> int:
    """MAIL_MAX_MESSAGE_SIZE (octets): the largest message the store accepts."""
    return int(getattr(settings, "MAIL_MAX_MESSAGE_SIZE", DEFAULT_MAX_MESSAGE_SIZE))


def keyword_normalize(keyword: object) -> str | None:
    """The keyword in lower case (RFC 8621 §4.1.1: servers return keywords lower-cased),
    or None if it isn't a valid keyword."""
    if not isinstance(keyword, str) or not _KEYWORD.match(keyword):
        return None
    if any(char in _KEYWORD_FORBIDDEN_CHARS for char in keyword):
        return None
    lowered = keyword.lower()
    if lowered in FORBIDDEN_KEYWORDS:
        return None
    return lowered


def keywords_normalize(keywords: Mapping[str, Any] | Iterable[str] | None) -> dict[str, bool]:
    """A valid keyword set ``{keyword: True}`` or InvalidKeywords naming the bad ones.

    A mapping must have ``true`` values only (§4.1.1: "The value for each key in the
    object MUST be true").
    """
    if keywords is None:
        return {}
    items = keywords.items() if isinstance(keywords, Mapping) else ((name, True) for name in keywords)
    result: dict[str, bool] = {}
    bad: list[str] = []
    for name, value in items:
        normal = keyword_normalize(name)
        if normal is None or value is not True:
            bad.append(str(name))
        else:
            result[normal] = True
    if bad:
        raise InvalidKeywords(bad)
    return dict(sorted(result.items()))


# -- Parsing once ---------------------------------------------------------------------------


def message_parse(raw: bytes) -> ParsedMessage:
    """Parse a message (groupware.mail.mime: best effort, never fails on bad input)."""
    try:
        return parse_message(raw)
    except (ValueError, LookupError, UnicodeError) as exc:  # a parser bug: refuse, don't crash
        raise InvalidMessage(f"the message can't be parsed: {exc}") from None


_FIELD_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*:")


def message_plausible(raw: bytes) -> bool:
    """Whether the octets start like a message: a header field (RFC 5322 §2.2, §3.6)."""
    return _FIELD_LINE.match(raw[:1000]) is not None


def _addresses(value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    # EmailAddress objects as the parser made them ({"name", "email"}), copied.
    return None if value is None else [dict(item) for item in value]


def _sort_address(addresses: list[dict[str, Any]] | None) -> str:
    # RFC 8621 §4.4.2: the name of the first address, or its email if the name is empty.
    if not addresses:
        return ""
    first = addresses[0]
    return (first.get("name") or first.get("email") or "")[:320]


def sort_columns(
    *, subject: str | None, from_addresses: list[dict[str, Any]] | None, to: list[dict[str, Any]] | None
) -> dict[str, str]:
    """The Email's sort key columns (RFC 8621 §4.4.2 subject, from, to), see the model."""
    keys = {
        "sort_subject": threads.base_subject(subject, lower=False),
        "sort_from": _sort_address(from_addresses),
        "sort_to": _sort_address(to),
    }
    return {**keys, **{f"{name}_unicode": unicode_casemap(value) for name, value in keys.items()}}


def utc_offset_minutes(when: datetime | None) -> int | None:
    """A datetime's offset from UTC in whole minutes (sent_at_offset)."""
    offset = when.utcoffset() if when is not None else None
    return None if offset is None else int(offset.total_seconds() // 60)


def without_nul(value: Any) -> Any:
    """The value with U+0000 removed from every string: RFC 8621 §4.1.2.1 drops NUL octets,
    and PostgreSQL text and jsonb can't hold them."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


# The Email columns that come from the message (what a copy takes from its original).
MESSAGE_COLUMNS = (
    "sent_at", "sent_at_offset", "subject", "base_subject", "message_id", "in_reply_to", "references",
    "sender", "from_addresses", "to", "cc", "bcc", "reply_to", "sort_subject", "sort_from", "sort_to",
    "sort_subject_unicode", "sort_from_unicode", "sort_to_unicode", "preview", "has_attachment", "parsed",
)  # fmt: skip


def _columns(parsed: ParsedMessage) -> dict[str, Any]:
    """Email columns from a ParsedMessage (everything /get and /query read fast)."""
    return without_nul(_columns_of(parsed))


def _columns_of(parsed: ParsedMessage) -> dict[str, Any]:
    from_ = _addresses(parsed.from_)
    to = _addresses(parsed.to)
    subject = parsed.subject
    return {
        "sent_at": parsed.sent_at,
        "sent_at_offset": utc_offset_minutes(parsed.sent_at),
        "subject": subject,
        "base_subject": threads.base_subject(subject),
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "sender": _addresses(parsed.sender),
        "from_addresses": from_,
        "to": to,
        "cc": _addresses(parsed.cc),
        "bcc": _addresses(parsed.bcc),
        "reply_to": _addresses(parsed.reply_to),
        **sort_columns(subject=subject, from_addresses=from_, to=to),
        "preview": (parsed.preview or "")[:256],
        "has_attachment": bool(parsed.has_attachment),
        "parsed": stored_parse(parsed),
    }


def stored_parse(parsed: ParsedMessage) -> dict[str, Any]:
    """The parse kept with an Email: everything but the search text, which the search
    index holds (up to megabytes a message; /get never needs it)."""
    data = parsed.to_dict()
    data.pop("searchText", None)
    return data


def search_fields_of(parsed: ParsedMessage | Mapping[str, Any]) -> dict[str, str]:
    """The search index fields (subject, from, to, cc, bcc, body, attachments, headers)
    of a ParsedMessage or of its ``to_dict()`` form ({} when it has none)."""
    text = parsed.get("searchText") if isinstance(parsed, Mapping) else parsed.search_text
    return {str(key): str(value) for key, value in (text or {}).items()}


def _received_header_date(headers: Iterable[tuple[str, str]]) -> datetime | None:
    """The most recent date of the Received header fields (RFC 5322 §3.6.7: after ";")."""
    newest: datetime | None = None
    for name, value in headers:
        if name.lower() != "received" or ";" not in value:
            continue
        try:
            when = parsedate_to_datetime(value.rsplit(";", 1)[1].strip())
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if newest is None or when > newest:
            newest = when
    return newest


def email_search_fields(email: Email) -> dict[str, str]:
    """The search index fields of a stored Email: its stored parse doesn't keep the
    search text, so the message is read and parsed again (copies and Thread merges)."""
    fields = search_fields_of(email.parsed)
    if not fields:
        fields = without_nul(search_fields_of(message_parse(email_raw(email))))
    return fields


# -- Part blobs -----------------------------------------------------------------------------


def part_blob_id(message_blob_id: str, part_id: str | None) -> str | None:
    """The blob id of a body part of the message with this blob id (see the module doc)."""
    if part_id is None or not _PART_ID.match(part_id):
        return None
    segment = "_" + part_id.replace(".", "-")
    sha256 = parse_blob_id(message_blob_id)
    if sha256 is not None:
        candidate = f"{PART_BLOB_PREFIX}{sha256}{segment}"
    elif isinstance(message_blob_id, str) and _PART_BLOB.match(message_blob_id):
        candidate = message_blob_id + segment
    else:
        return None
    return candidate if len(candidate) <= 255 else None


def parse_part_blob_id(value: object) -> tuple[str, list[str]] | None:
    """(sha256 of the message, [partId, ...] path) behind a part blob id, or None."""
    if not isinstance(value, str) or len(value) > 255:
        return None
    match = _PART_BLOB.match(value)
    if match is None:
        return None
    return match.group(1), [segment.replace("-", ".") for segment in match.group(2)[1:].split("_")]


def mail_blob_reader(
    account: Account, values: Iterable[object], *, user: User | None = None
) -> Callable[[object], bytes | None]:
    """``mail_blob_read`` for several blob ids: the rows of the whole blobs among
    ``values`` are found in one query, and each blob is read when asked for."""
    rows = blob_find_many(account, values, user=user)

    def read(value: object) -> bytes | None:
        sha256 = parse_blob_id(value)
        if sha256 is None:
            return mail_blob_read(account, value, user=user)
        row = rows.get(sha256)
        return blob_read_row(row) if row is not None else None

    return read


def mail_blob_read(account: Account, value: object, *, user: User | None = None) -> bytes | None:
    """The octets behind a blob id visible in the account: a whole blob ("b...") or a
    body part of a message blob ("p...", decoded per its Content-Transfer-Encoding).
    None if the account (or ``user``) can't see it or the part doesn't exist."""
    if parse_blob_id(value) is not None:
        return blob_read(account, value, user=user)
    parsed_id = parse_part_blob_id(value)
    if parsed_id is None:
        return None
    sha256, path = parsed_id
    data = blob_read(account, blob_id(sha256), user=user)
    if data is None:
        return None
    # A stored Email of this blob already has the structure: no parse for the first level.
    stored = Email.objects.filter(account_id=account.pk, blob_id=sha256).values_list("parsed", flat=True).first()
    message = ParsedMessage.from_dict(stored) if stored else None
    for part_id in path:
        if message is None:
            message = message_parse(data)
        part = message.part(part_id)
        if part is None:
            return None
        data = part_content(data, part)
        message = None  # a deeper step reads this part as a message of its own
    return data


def email_raw(email: Email) -> bytes:
    """The raw message of a stored Email (the Email row proves the account holds it)."""
    with blob_storage().open(storage_name(email.blob_id), "rb") as handle:
        return handle.read()


# -- Services -------------------------------------------------------------------------------


def _existing_mailboxes(account: Account, id_lists: Iterable[Iterable[int]]) -> dict[int, str | None]:
    """Which of these mailbox pks exist in the account, with their roles (one query)."""
    wanted = {pk for ids in id_lists for pk in ids}
    if not wanted:
        return {}
    return dict(
        sql.rows(
            f"SELECT id, role FROM mail_mailbox WHERE account_id = %s AND id IN ({sql.placeholders(len(wanted))})",  # noqa: S608
            [account.pk, *wanted],
        )
    )


def _mailbox_pks(mailbox_ids: Iterable[int], existing: Mapping[int, object]) -> list[int]:
    wanted = list(dict.fromkeys(mailbox_ids))
    if not wanted:
        # RFC 8621 §4.1.1: an Email belongs to one or more Mailboxes at all times.
        raise MailboxesInvalid([], "an Email must be in at least one Mailbox")
    missing = [pk for pk in wanted if pk not in existing]
    if missing:
        raise MailboxesInvalid(missing)
    return wanted


@dataclass(frozen=True)
class PreparedEmail:
    """A message parsed once and tokenized for the search index: everything an ingest
    needs that takes no database work, so it is done before the account is locked."""

    raw: bytes
    columns: dict[str, Any]
    received_at: datetime
    search: SearchDocument
    written: str | None = None  # the sha-256 of ``raw`` once blob_write has stored it
    # The parse's decoded text parts (ParsedMessage.texts), for Sieve at delivery.
    texts: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False, compare=False)


def email_prepare(*, raw: bytes, received_at: datetime | None = None) -> PreparedEmail:
    """Parse a message for storing. ``received_at`` defaults to the date of the most
    recent Received header field, or now if there is none (RFC 8621 §4.8).
    Raises MessageTooLarge (MAIL_MAX_MESSAGE_SIZE) or InvalidMessage."""
    limit = max_message_size()
    if len(raw) > limit:
        raise MessageTooLarge(limit)
    parsed = message_parse(raw)  # the only parse of this message
    columns = _columns(parsed)
    if received_at is None:
        received_at = _received_header_date(parsed.headers)
        now = timezone.now()
        if received_at is None or received_at > now:
            received_at = now
    search = search_document(email=columns, fields=without_nul(search_fields_of(parsed)))
    return PreparedEmail(
        raw=raw, columns=columns, received_at=received_at.replace(microsecond=0), search=search, texts=parsed.texts
    )


@dataclass(frozen=True)
class EmailImport:
    """One message for ``emails_import``: prepared, with its mailboxes (pks) and keywords.
    ``sha256``: the message is already this blob of the account (only a reference is
    added); otherwise its octets are stored."""

    prepared: PreparedEmail
    mailbox_ids: Iterable[int]
    keywords: Mapping[str, Any] | Iterable[str] | None
    sha256: str | None = None


def emails_import(
    *, account: Account, items: Sequence[EmailImport], user: User | None = None
) -> list[Email | Exception]:
    """Store prepared messages as new Emails, in one transaction and one round of queries
    for the whole batch; each item's result is its Email, or the error (InvalidKeywords,
    MailboxesInvalid, BlobNotFound, accounts.quotas.OverQuota) that kept it out. ``user``
    is who adds them."""
    results: list[Email | Exception] = [EmailError("not stored")] * len(items)
    mailbox_lists = [list(item.mailbox_ids) for item in items]
    with account_changes_joined(account.pk) as changes:
        # Read under the lock: the roles decide the counts (the trash rule of RFC 8621 §2).
        existing = _existing_mailboxes(account, mailbox_lists)
        checked: dict[int, tuple[list[int], dict[str, bool]]] = {}
        for position, item in enumerate(items):
            try:
                keywords = keywords_normalize(item.keywords)
                checked[position] = (_mailbox_pks(mailbox_lists[position], existing), keywords)
            except EmailError as error:
                results[position] = error
        for position in list(checked):
            try:  # in order: a message that doesn't fit is refused, later smaller ones may fit
                quota_charge(changes=changes, octets=len(items[position].prepared.raw), count=1)
            except OverQuota as error:
                results[position] = error
                del checked[position]
        shas: dict[int, str] = {}
        to_pin = [position for position in checked if items[position].sha256 is not None]
        missing = blob_pin_many(account, [items[position].sha256 or "" for position in to_pin], user=user)
        for position in to_pin:
            sha256 = items[position].sha256 or ""
            if sha256 in missing:
                results[position] = BlobNotFound(blob_id(sha256))
                del checked[position]
                quota_charge(changes=changes, octets=-len(items[position].prepared.raw), count=-1)
            else:
                shas[position] = sha256
        for position in checked:
            if position not in shas:
                raw = items[position].prepared.raw
                shas[position] = blob_store_pinned(
                    account=account, content=raw, type=MESSAGE_TYPE, user=user, written=items[position].prepared.written
                )
        order = sorted(checked)
        new = [
            NewEmail(
                columns=items[position].prepared.columns,
                search=items[position].prepared.search,
                sha256=shas[position],
                size=len(items[position].prepared.raw),
                received_at=items[position].prepared.received_at,
                mailbox_pks=checked[position][0],
                keywords=checked[position][1],
            )
            for position in order
        ]
        stored = emails_insert(account=account, changes=changes, items=new, mailbox_roles=existing)
        for position, email in zip(order, stored, strict=True):
            results[position] = email
    return results


def email_ingest(
    *,
    account: Account,
    raw: bytes,
    mailbox_ids: Iterable[int],
    keywords: Mapping[str, Any] | Iterable[str] | None,
    received_at: datetime | None = None,
    user: User | None = None,
) -> Email:
    """Store a message as a new Email in these mailboxes (pks) with these keywords.

    ``received_at`` defaults to the date of the most recent Received header field, or
    now if there is none (RFC 8621 §4.8). ``user`` is who adds it (blob visibility).
    Raises MessageTooLarge (MAIL_MAX_MESSAGE_SIZE), InvalidKeywords, MailboxesInvalid,
    InvalidMessage or accounts.quotas.OverQuota; nothing is stored then.
    """
    keywords_normalize(keywords)  # refused before the parse
    prepared = email_prepare(raw=raw, received_at=received_at)
    item = EmailImport(prepared=prepared, mailbox_ids=mailbox_ids, keywords=keywords)
    (result,) = emails_import(account=account, items=[item], user=user)
    if isinstance(result, Exception):
        raise result
    return result


def email_copy(
    *,
    email: Email,
    account: Account,
    mailbox_ids: Iterable[int],
    keywords: Mapping[str, Any] | Iterable[str] | None,
    received_at: datetime | None = None,
    user: User | None = None,
) -> Email:
    """A copy of a stored Email in another account (RFC 8621 §4.7): same message, blob
    and parse; its own mailboxes, keywords and receivedAt (default: the original's)."""
    normal_keywords = keywords_normalize(keywords)
    columns = {name: getattr(email, name) for name in MESSAGE_COLUMNS}
    search = search_document(email=columns, fields=email_search_fields(email))
    with account_changes(account.pk) as changes:
        wanted = list(mailbox_ids)
        existing = _existing_mailboxes(account, [wanted])
        mailbox_pks = _mailbox_pks(wanted, existing)
        quota_charge(changes=changes, octets=email.size, count=1)  # raises OverQuota
        if email.account_id != account.pk:
            copied = blob_copy(
                from_account=email.account, to_account=account, blob_id=blob_id(email.blob_id), user=user
            )
            if copied is None:
                raise BlobNotFound(blob_id(email.blob_id))
        blob_pin(account, blob_id(email.blob_id), user=user)
        new = NewEmail(
            columns=columns,
            search=search,
            sha256=email.blob_id,
            size=email.size,
            received_at=(received_at or email.received_at).replace(microsecond=0),
            mailbox_pks=mailbox_pks,
            keywords=normal_keywords,
        )
        return emails_insert(account=account, changes=changes, items=[new], mailbox_roles=existing)[0]


def email_update(
    *,
    email: Email,
    keywords: Mapping[str, Any] | Iterable[str] | None = None,
    mailbox_ids: Iterable[int] | None = None,
) -> Email:
    """Replace an Email's keywords and/or mailboxes (pks); None leaves one as it is.

    Only the memberships that change are written; the counts of the Mailboxes it
    leaves, joins or stays in (when unread-ness changes) move accordingly.
    """
    account = email.account
    new_keywords = keywords_normalize(keywords) if keywords is not None else None
    with account_changes(account.pk) as changes:
        current = set(EmailMailbox.objects.filter(email_id=email.pk).values_list("mailbox_id", flat=True))
        if mailbox_ids is not None:
            wanted = list(mailbox_ids)
            target = set(_mailbox_pks(wanted, _existing_mailboxes(account, [wanted])))
        else:
            target = current
        keywords_changed = new_keywords is not None and new_keywords != email.keywords
        added, removed = target - current, current - target
        if not keywords_changed and not added and not removed:
            return email
        before = thread_snapshot(account.pk, [email.thread_id])
        if keywords_changed and new_keywords is not None:
            email.keywords = new_keywords
            email.is_unread = is_unread(new_keywords)
            email.save(update_fields=["keywords", "is_unread"])
        if removed:
            EmailMailbox.objects.filter(email_id=email.pk, mailbox_id__in=removed).delete()
        if added:
            EmailMailbox.objects.bulk_create(
                [
                    EmailMailbox(
                        account=account,
                        mailbox_id=pk,
                        email=email,
                        thread_id=email.thread_id,
                        received_at=email.received_at,
                    )
                    for pk in sorted(added)
                ]
            )
        mailbox_counts_apply(account=account, before=before, after=thread_snapshot(account.pk, [email.thread_id]))
        changes.record(EMAIL_TYPE, email_id(email.pk), Change.UPDATED)
    return email


def email_destroy(*, email: Email) -> None:
    """Remove an Email from every Mailbox and the store (RFC 8621 §4.6): counts, its
    Thread (destroyed with its last Email), the search index and the blob reference."""
    email_destroy_orphans(email.account, [email.pk])
