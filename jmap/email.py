"""Email/get, /changes, /set, /copy, /import and /parse (RFC 8621 §4).

(Email/query and Email/queryChanges live in jmap/email_query.py.)

/get reads the columns filled at ingest and the parse stored with each Email: it never
re-parses a message. The raw message is read (once per Email, without a database query)
only when bodyValues are asked for. A request costs the same number of queries whatever
the number of Emails: the state, the Emails, and their memberships when mailboxIds is
asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from types import SimpleNamespace
from typing import Any

from django.conf import settings

from accounts.quotas import OverQuota
from groupware.core import sql
from groupware.core.blobs import BlobNotFound, blob_id, parse_blob_id
from groupware.core.changes import account_changes, encode_state, type_state
from groupware.core.ids import is_valid_id
from groupware.mail import headers as mail_headers
from groupware.mail.mime import body_value
from groupware.mail.models import Email
from groupware.mail.services import emails as email_services
from groupware.mail.services.counts import EMAIL_ID_PREFIX, EMAIL_TYPE, in_chunks, mailbox_id, mailbox_pk, thread_id
from groupware.mail.services.emails import (
    InvalidKeywords,
    InvalidMessage,
    MailboxesInvalid,
    MessageTooLarge,
    keyword_normalize,
    mail_blob_reader,
    part_blob_id,
)
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError, SetError, invalid_properties
from jmap.mail_capability import MAIL, max_mailboxes_per_email, max_size_attachments_per_email
from jmap.registry import registry
from jmap.standard import ModelDataType, Prop, SetContext, register_standard_methods
from jmap.standard.get import GET_ARGS, requested_keys
from jmap.standard.set import standard_set

# -- Properties ---------------------------------------------------------------------------

# RFC 8621 §4.2: the default when "properties" is omitted or null.
DEFAULT_GET_PROPERTIES = (
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview", "bodyValues", "textBody", "htmlBody", "attachments",
)  # fmt: skip
# RFC 8621 §4.9: Email/parse's default.
DEFAULT_PARSE_PROPERTIES = DEFAULT_GET_PROPERTIES[7:]
DEFAULT_BODY_PROPERTIES = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location",
)  # fmt: skip
BODY_PART_PROPERTIES = frozenset({*DEFAULT_BODY_PROPERTIES, "headers", "subParts"})
METADATA_PROPERTIES = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt")
CONVENIENCE_PROPERTIES = (
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt",
)  # fmt: skip
BODY_PROPERTIES = ("headers", "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments")
EMAIL_PROPERTIES = frozenset(
    {*METADATA_PROPERTIES, *CONVENIENCE_PROPERTIES, *BODY_PROPERTIES, "hasAttachment", "preview"}
)
# Properties read from the stored parse (the rest come from columns).
_NEEDS_PARSE = frozenset(BODY_PROPERTIES)
# Server-set properties (§4.1): never given on create.
SERVER_SET = ("id", "blobId", "threadId", "size", "hasAttachment", "preview")

DEFAULT_MAX_KEYWORDS_PER_EMAIL = 256

# RFC 8621 §4.1.3: header:{name}[:as{form}][:all]; a name is printable ASCII but ":".
_HEADER_PROPERTY = re.compile(r"^header:([\x21-\x39\x3b-\x7e]+)(?::as([A-Za-z]+))?(:all)?$")


def max_keywords_per_email() -> int:
    """MAIL_MAX_KEYWORDS_PER_EMAIL: more keywords on one Email is tooManyKeywords (§4.6)."""
    return max(int(getattr(settings, "MAIL_MAX_KEYWORDS_PER_EMAIL", DEFAULT_MAX_KEYWORDS_PER_EMAIL)), 1)


@dataclass(frozen=True)
class HeaderProperty:
    """A parsed ``header:{name}:as{form}:all`` property name."""

    prop: str
    name: str
    form: str
    all: bool


def header_property(prop: str) -> HeaderProperty | None:
    """The header field property named ``prop`` (None if it isn't one); invalidArguments
    if it is malformed or asks for a form forbidden for that field (RFC 8621 §4.1.2)."""
    if not prop.startswith("header:"):
        return None
    match = _HEADER_PROPERTY.match(prop)
    form = mail_headers.canonical_form(match.group(2) or "Raw") if match else None
    if match is None or form is None:
        raise MethodError("invalidArguments", f"{prop} is not a valid header property")
    name = match.group(1)
    if not mail_headers.form_allowed(name, form):
        raise MethodError("invalidArguments", f"{prop}: the {form} form is not allowed for the {name} header field")
    return HeaderProperty(prop=prop, name=name, form=form, all=match.group(3) is not None)


def checked_email_properties(requested: list[str] | None, default: tuple[str, ...]) -> list[str]:
    if requested is None:
        return list(default)
    unknown = []
    for prop in requested:
        if prop not in EMAIL_PROPERTIES and header_property(prop) is None:
            unknown.append(prop)
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(sorted(set(unknown)))}")
    return list(dict.fromkeys(requested))


def checked_body_properties(requested: list[str] | None) -> list[str]:
    if requested is None:
        return list(DEFAULT_BODY_PROPERTIES)
    unknown = [prop for prop in requested if prop not in BODY_PART_PROPERTIES and header_property(prop) is None]
    if unknown:
        raise MethodError("invalidArguments", f"unknown body properties: {', '.join(sorted(set(unknown)))}")
    return list(dict.fromkeys(requested))


BODY_ARGS = (
    a.arg("bodyProperties", a.nullable(a.list_of(a.string)), None),
    a.arg("fetchTextBodyValues", a.boolean, False),
    a.arg("fetchHTMLBodyValues", a.boolean, False),
    a.arg("fetchAllBodyValues", a.boolean, False),
    a.arg("maxBodyValueBytes", a.unsigned, 0),
)


# -- Rendering ----------------------------------------------------------------------------


def sent_at_date(value: datetime | None, offset_minutes: int | None) -> str | None:
    """sentAt (RFC 8621 §4.1.3): the Date field's instant with its own offset, as
    header:Date:asDate shows it."""
    if value is None:
        return None
    return mail_headers.format_date(value.astimezone(dt_timezone(timedelta(minutes=offset_minutes or 0))))


def utc_date(value: datetime | None) -> str | None:
    """RFC 8620 §1.4 UTCDate: "Z" and no fractional seconds."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class BodyOptions:
    properties: list[str]
    fetch_text: bool
    fetch_html: bool
    fetch_all: bool
    max_bytes: int

    @classmethod
    def from_args(cls, parsed: dict[str, Any]) -> BodyOptions:
        return cls(
            properties=checked_body_properties(parsed["bodyProperties"]),
            fetch_text=parsed["fetchTextBodyValues"],
            fetch_html=parsed["fetchHTMLBodyValues"],
            fetch_all=parsed["fetchAllBodyValues"],
            max_bytes=parsed["maxBodyValueBytes"],
        )


class MessageView:
    """What an Email's JSON is made of: a stored Email (metadata and columns) or a parsed
    blob (Email/parse: metadata null); the parse in its stored form
    (``ParsedMessage.to_dict()``: parts are dicts, textBody/htmlBody/attachments partIds);
    and a way to read the raw octets, used for bodyValues only."""

    def __init__(
        self,
        *,
        message_blob_id: str,
        size: int,
        parsed: Mapping[str, Any] | None,
        raw: Callable[[], bytes],
        email: Email | None = None,
        mailbox_ids: list[int] | None = None,
    ) -> None:
        self.message_blob_id = message_blob_id
        self.size = size
        self._parsed = parsed
        self._raw_loader = raw
        self._raw: bytes | None = None
        self._parts: dict[str, Mapping[str, Any]] | None = None
        self.email = email
        self.mailbox_ids = mailbox_ids

    @property
    def parsed(self) -> Mapping[str, Any]:
        if self._parsed is None:
            self._parsed = self.email.parsed if self.email is not None and self.email.parsed else {}
        return self._parsed

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self._raw_loader()
        return self._raw

    @property
    def structure(self) -> Mapping[str, Any] | None:
        return self.parsed.get("bodyStructure")

    def parts(self, key: str) -> list[Mapping[str, Any]]:
        """The parts of textBody, htmlBody or attachments (stored as partIds)."""
        if self._parts is None:
            self._parts = {}
            for part in walk_parts(self.structure):
                if part.get("partId") is not None:
                    self._parts[part["partId"]] = part
        return [self._parts[part_id] for part_id in self.parsed.get(key) or () if part_id in self._parts]

    # Convenience header properties (§4.1.3): columns of a stored Email, else the parse.

    def convenience(self, prop: str) -> Any:
        email = self.email
        if email is None:
            return self.parsed.get(prop)  # to_dict() uses the JMAP names
        if prop == "sentAt":
            return sent_at_date(email.sent_at, email.sent_at_offset)
        return getattr(email, _COLUMNS[prop])


_COLUMNS = {
    "messageId": "message_id",
    "inReplyTo": "in_reply_to",
    "references": "references",
    "sender": "sender",
    "from": "from_addresses",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "replyTo": "reply_to",
    "hasAttachment": "has_attachment",
    "preview": "preview",
    "subject": "subject",
}


def walk_parts(structure: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """Every part of a stored body structure, depth first, in order (no recursion)."""
    stack = [structure] if structure is not None else []
    while stack:
        part = stack.pop()
        yield part
        stack.extend(reversed(part.get("subParts") or ()))


def render_part(view: MessageView, part: Mapping[str, Any], options: BodyOptions, *, tree: bool) -> dict[str, Any]:
    """An EmailBodyPart with the requested bodyProperties (§4.1.4). ``tree``: with its
    subParts (bodyStructure); the flat lists never have them."""
    result: dict[str, Any] = {}
    for prop in options.properties:
        if prop == "blobId":
            result[prop] = part_blob_id(view.message_blob_id, part.get("partId"))
        elif prop == "subParts":
            subparts = part.get("subParts")
            if subparts is None or not tree:
                result[prop] = None
            else:
                result[prop] = [render_part(view, sub, options, tree=True) for sub in subparts]
        elif prop.startswith("header:"):
            header = header_property(prop)
            assert header is not None
            result[prop] = mail_headers.header_value(part.get("headers") or (), header.name, header.form, header.all)
        else:
            result[prop] = part.get(prop)
    if tree and "subParts" not in options.properties and part.get("subParts") is not None:
        # Without subParts a multipart bodyStructure would lose its tree: bodyProperties
        # that leave it out still get it there.
        result["subParts"] = [render_part(view, sub, options, tree=True) for sub in part["subParts"]]
    return result


def render_body_values(view: MessageView, options: BodyOptions) -> dict[str, Any]:
    """bodyValues (§4.1.4): the text/* parts chosen by the fetch*BodyValues arguments."""
    groups: list[Iterable[Mapping[str, Any]]] = []
    if options.fetch_text:
        groups.append(view.parts("textBody"))
    if options.fetch_html:
        groups.append(view.parts("htmlBody"))
    if options.fetch_all:
        groups.append(part for part in walk_parts(view.structure) if part.get("subParts") is None)
    wanted: dict[str, Mapping[str, Any]] = {}
    for group in groups:
        for part in group:
            part_id = part.get("partId")
            if part_id is not None and str(part.get("type", "")).lower().startswith("text/"):
                wanted.setdefault(part_id, part)
    if not wanted:
        return {}
    raw = view.raw()  # read once for every part of this message
    return {part_id: body_value(raw, part, options.max_bytes or None) for part_id, part in wanted.items()}


def render_email(view: MessageView, properties: list[str], options: BodyOptions) -> dict[str, Any]:
    email = view.email
    result: dict[str, Any] = {}
    for prop in properties:
        if prop == "id":
            result[prop] = email_id_of(email.pk) if email else None
        elif prop == "blobId":
            result[prop] = view.message_blob_id
        elif prop == "threadId":
            result[prop] = thread_id(email.thread_id) if email else None
        elif prop == "mailboxIds":
            result[prop] = {mailbox_id(pk): True for pk in view.mailbox_ids or ()} if email else None
        elif prop == "keywords":
            result[prop] = dict(email.keywords) if email else None
        elif prop == "size":
            result[prop] = view.size
        elif prop == "receivedAt":
            result[prop] = utc_date(email.received_at) if email else None
        elif prop in _COLUMNS or prop in ("subject", "sentAt"):
            result[prop] = view.convenience(prop)
        elif prop == "headers":
            result[prop] = list(view.parsed.get("headers") or ())
        elif prop == "bodyStructure":
            structure = view.structure
            result[prop] = render_part(view, structure, options, tree=True) if structure is not None else None
        elif prop in ("textBody", "htmlBody", "attachments"):
            result[prop] = [render_part(view, part, options, tree=False) for part in view.parts(prop)]
        elif prop == "bodyValues":
            result[prop] = render_body_values(view, options)
        else:
            header = header_property(prop)
            assert header is not None
            result[prop] = mail_headers.header_value(
                view.parsed.get("headers") or (), header.name, header.form, header.all
            )
    return result


def email_id_of(pk: int) -> str:
    return EMAIL.object_id_from_key(pk)


# -- The data type (Email/changes, Email/copy and the update/destroy half of /set) ----------


def _check_mailbox_ids(value: Any, name: str) -> dict[str, bool]:
    if not isinstance(value, dict) or not value:
        raise MethodError("invalidArguments", f"{name} must be a non-empty Id[Boolean] with true values")
    for key, flag in value.items():
        ref = key[1:] if key.startswith("#") else key
        if not is_valid_id(ref) or flag is not True:
            raise MethodError("invalidArguments", f"{name}/{key}: must be a Mailbox id set to true")
    return value


def _check_keywords(value: Any, name: str) -> dict[str, bool]:
    if not isinstance(value, dict):
        raise MethodError("invalidArguments", f"{name} must be a String[Boolean] with true values")
    bad = [key for key, flag in value.items() if flag is not True or keyword_normalize(key) is None]
    if bad:
        raise MethodError("invalidArguments", f"{name}: invalid keyword(s) {', '.join(map(repr, sorted(bad)))}")
    return {keyword_normalize(key): True for key in value}  # type: ignore[misc]


def _check_utc_date(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise MethodError("invalidArguments", f"{name} must be a UTCDate")
    parsed = parse_utc_date(value)
    if parsed is None:
        raise MethodError("invalidArguments", f"{name} must be a UTCDate like 2024-01-31T12:00:00Z")
    return parsed


_UTC_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")


def parse_utc_date(value: str) -> datetime | None:
    """RFC 8620 §1.4 UTCDate (time-offset "Z"; fractional seconds allowed, dropped)."""
    if not _UTC_DATE.match(value):
        return None
    try:
        return datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)
    except ValueError:
        return None


class EmailType(ModelDataType):
    def create_record(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Email, dict[str, Any]]:
        # Email creates take header:* and body properties beyond the declared ones: not
        # the generic property validation but composing a message (RFC 8621 §4.6).
        email = email_create(ctx, values)
        return email, created_extra(email)

    name = EMAIL_TYPE
    capability = MAIL
    model = Email
    id_prefix = EMAIL_ID_PREFIX
    properties = {
        **{name: Prop(name, server_set=True) for name in SERVER_SET},
        "mailboxIds": Prop("mailboxIds", _check_mailbox_ids),
        "keywords": Prop("keywords", _check_keywords, default=dict),
        "receivedAt": Prop("receivedAt", _check_utc_date, immutable=True),
        **{name: Prop(name, immutable=True) for name in (*CONVENIENCE_PROPERTIES, *BODY_PROPERTIES)},
    }

    def load(self, account: Any, keys: Iterable[Any] | None, *, for_update: bool = False) -> dict[Any, Any]:
        """Emails with their mailbox pks (``mailbox_pks``): two queries for any number."""
        query = self.queryset(account)
        if keys is not None:
            query = query.filter(pk__in=list(keys))
        if for_update:
            query = query.select_for_update()
        records = {record.pk: record for record in query}
        for record in records.values():
            record.account = account  # the services read it: no query per Email
        attach_mailboxes(records)
        return records

    def all_properties(self) -> list[str]:
        # What /set update compares a patch against: only these are mutable (§4.1.1).
        return ["id", "mailboxIds", "keywords"]

    def to_json(self, record: Email, properties: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in properties:
            if name == "id":
                result[name] = self.object_id(record)
            elif name == "mailboxIds":
                result[name] = {mailbox_id(pk): True for pk in record.mailbox_pks}
            elif name == "keywords":
                result[name] = dict(record.keywords)
            elif name == "receivedAt":
                result[name] = utc_date(record.received_at)
        return result

    # Email/copy (§4.7): the original's message with the target's mailboxes and keywords.

    def copy_values(self, record: Email) -> dict[str, Any]:
        return {_SOURCE: record, **self.to_json(record, ["mailboxIds", "keywords"])}

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        source: Email = values[_SOURCE]
        others = sorted(name for name in values if name not in (_SOURCE, "mailboxIds", "keywords", "receivedAt"))
        if others:
            raise invalid_properties(others, "only mailboxIds, keywords and receivedAt may be set on copy")
        mailbox_pks = resolve_mailboxes(ctx.call, values["mailboxIds"])
        keywords = checked_keyword_count(values["keywords"])
        with _service_errors():
            copy = email_services.email_copy(
                email=source,
                account=ctx.account,
                mailbox_ids=mailbox_pks,
                keywords=keywords,
                received_at=values.get("receivedAt"),
                user=ctx.call.user,
            )
        return copy, created_extra(copy)

    def update(self, ctx: SetContext, record: Email, values: dict[str, Any]) -> dict[str, Any] | None:
        mailbox_pks = resolve_mailboxes(ctx.call, values["mailboxIds"]) if "mailboxIds" in values else None
        keywords = checked_keyword_count(values["keywords"]) if "keywords" in values else None
        with _service_errors():
            email_services.email_update(email=record, keywords=keywords, mailbox_ids=mailbox_pks)
        return None

    def destroy(self, ctx: SetContext, record: Email) -> None:
        email_services.email_destroy(email=record)


_SOURCE = "\x00source"  # the original Email, passed from copy_values to create


def attach_mailboxes(records: dict[int, Email]) -> None:
    """Set ``mailbox_pks`` on each Email (one query)."""
    by_email: dict[int, list[int]] = {pk: [] for pk in records}
    if records:
        for chunk in in_chunks(list(records), 1000):
            # Plain SQL (groupware.core.sql): every Email/get of mailboxIds comes here.
            for email_pk, mailbox in sql.rows(
                "SELECT email_id, mailbox_id FROM mail_emailmailbox"  # noqa: S608
                f" WHERE email_id IN ({sql.placeholders(len(chunk))}) ORDER BY mailbox_id",
                chunk,
            ):
                by_email[email_pk].append(mailbox)
    for pk, record in records.items():
        record.mailbox_pks = by_email[pk]


def created_extra(email: Email) -> dict[str, Any]:
    # RFC 8621 §4.6, §4.7, §4.8: created Emails report id, blobId, threadId and size.
    return {"blobId": blob_id(email.blob_id), "threadId": thread_id(email.thread_id), "size": email.size}


def resolve_mailboxes(call: CallContext, value: Mapping[str, Any]) -> list[int]:
    """Mailbox pks for a mailboxIds value ("#creationId" keys allowed, RFC 8620 §5.3)."""
    pks: list[int] = []
    bad: list[str] = []
    for key in value:
        resolved = call.created_id(key[1:]) if key.startswith("#") else key
        pk = mailbox_pk(resolved) if resolved else None
        if pk is None:
            bad.append(key)
        else:
            pks.append(pk)
    if bad:
        raise invalid_properties(["mailboxIds"], f"no such mailbox(es): {', '.join(bad)}")
    limit = max_mailboxes_per_email()
    if limit is not None and len(set(pks)) > limit:
        raise SetError("tooManyMailboxes", f"an Email may be in at most {limit} mailboxes")
    return pks


def checked_keyword_count(keywords: dict[str, bool]) -> dict[str, bool]:
    limit = max_keywords_per_email()
    if len(keywords) > limit:
        raise SetError("tooManyKeywords", f"an Email may have at most {limit} keywords")
    return keywords


_SERVICE_ERRORS = (MailboxesInvalid, InvalidKeywords, MessageTooLarge, InvalidMessage, BlobNotFound, OverQuota)


def service_set_error(error: Exception) -> SetError:
    """The SetError for a mail service's refusal (one of ``_SERVICE_ERRORS``)."""
    if isinstance(error, MailboxesInvalid):
        return invalid_properties(["mailboxIds"], str(error))
    if isinstance(error, InvalidKeywords):
        return invalid_properties(["keywords"], str(error))
    if isinstance(error, MessageTooLarge):
        return SetError("tooLarge", str(error), maxSize=error.max_size)
    if isinstance(error, InvalidMessage):
        return SetError("invalidEmail", str(error))
    if isinstance(error, BlobNotFound):
        return SetError("blobNotFound", "the message blob is gone", notFound=[str(error.blob_id)])
    if isinstance(error, OverQuota):
        return SetError("overQuota", str(error))  # RFC 8620 §5.3, RFC 9425
    raise error


@contextmanager
def _service_errors() -> Iterator[None]:
    """Map the mail services' refusals to SetErrors."""
    try:
        yield
    except _SERVICE_ERRORS as error:
        raise service_set_error(error) from None


EMAIL = EmailType()
register_standard_methods(EMAIL, ("changes", "copy"))


# -- Email/get ------------------------------------------------------------------------------


EMAIL_GET_ARGS = GET_ARGS + BODY_ARGS


@registry.method("Email/get", capability=MAIL)
def email_get(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(EMAIL_GET_ARGS, arguments)
    account = call.account(parsed["accountId"])
    properties = checked_email_properties(parsed["properties"], DEFAULT_GET_PROPERTIES)
    if "id" not in properties:
        properties.insert(0, "id")
    options = BodyOptions.from_args(parsed)
    # The state is read before the records (see jmap.standard.get).
    state = type_state(account, EMAIL_TYPE)
    requested = parsed["ids"]
    limit = settings.JMAP["maxObjectsInGet"]
    if requested is None:
        # ids: null means every Email (RFC 8620 §5.1), as long as that is within the limit.
        pks = list(Email.objects.filter(account_id=account.pk).order_by("pk").values_list("pk", flat=True)[: limit + 1])
        if len(pks) > limit:
            raise MethodError("requestTooLarge", f"more than {limit} Emails; ask for ids (Email/query)")
        requested = [EMAIL.object_id_from_key(pk) for pk in pks]
    keys, not_found = requested_keys(EMAIL, call, requested)
    records: dict[int, Email] = {}
    if keys:
        skipped: set[str] = set()
        if not any(prop in _NEEDS_PARSE or prop.startswith("header:") for prop in properties):
            # The big column, only for structure and headers; and the JSON columns no
            # requested property reads (decoding them was most of a list's /get).
            skipped = {"parsed", *_unread_json_columns(properties)}
        columns = [field.attname for field in Email._meta.concrete_fields if field.attname not in skipped]
        # Rows as plain objects with the Email's attribute names: rendering only reads
        # them, and building 50 model instances cost more than the query.
        query = Email.objects.filter(account_id=account.pk, pk__in=list(keys)).values(*columns)
        records = {row["id"]: SimpleNamespace(pk=row["id"], **row) for row in query}
        if "mailboxIds" in properties:
            attach_mailboxes(records)
    found = []
    for key, given in keys.items():
        record = records.get(key)
        if record is None:
            not_found.append(given)
        else:
            view = MessageView(
                message_blob_id=blob_id(record.blob_id),
                size=record.size,
                parsed=None,
                raw=lambda record=record: email_services.email_raw(record),
                email=record,
                mailbox_ids=getattr(record, "mailbox_pks", None),
            )
            found.append(render_email(view, properties, options))
    return {"accountId": account.jmap_id, "state": state, "list": found, "notFound": not_found}


_JSON_COLUMNS = {"message_id", "in_reply_to", "references", "sender", "from_addresses", "to", "cc", "bcc", "reply_to"}


def _unread_json_columns(properties: list[str]) -> list[str]:
    """The JSON columns of Email that rendering these properties won't read."""
    wanted = {_COLUMNS[prop] for prop in properties if prop in _COLUMNS}
    unread = sorted(_JSON_COLUMNS - wanted)
    if "keywords" not in properties:
        unread.append("keywords")
    return unread


# -- Email/set --------------------------------------------------------------------------


@registry.method("Email/set", capability=MAIL, writes=True)
def email_set(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    # The standard /set; creates go through EmailType.create_record (RFC 8621 §4.6).
    return standard_set(EMAIL, call, arguments)


def email_create(ctx: SetContext, values: dict[str, Any]) -> Email:
    """One Email/set create (RFC 8621 §4.6): compose the message, then ingest it."""
    from groupware.mail.compose import BlobNotFoundError, ComposeError, compose_message

    server_set = [name for name in values if name in SERVER_SET]
    if server_set:
        raise invalid_properties(server_set, "these properties are set by the server")
    if "mailboxIds" not in values:
        raise invalid_properties(["mailboxIds"], "mailboxIds is required: an Email is always in a Mailbox")
    meta = {}
    problems = []
    for name in ("mailboxIds", "keywords", "receivedAt"):
        if name in values:
            try:
                meta[name] = EMAIL.properties[name].check(values[name], name)
            except MethodError as error:
                problems.append((name, error.description or name))
    if problems:
        raise invalid_properties([name for name, _ in problems], "; ".join(text for _, text in problems))
    mailbox_pks = resolve_mailboxes(ctx.call, meta["mailboxIds"])
    keywords = checked_keyword_count(meta.get("keywords", {}))
    content = {name: value for name, value in values.items() if name not in ("mailboxIds", "keywords", "receivedAt")}

    # Every blob the parts reference is read first: a blobNotFound error names them all
    # (RFC 8621 §4.6), and the attachment size limit is checked before composing.
    referenced = list(dict.fromkeys(referenced_blob_ids(content)))
    read = mail_blob_reader(ctx.account, referenced, user=ctx.call.user)
    blobs: dict[str, bytes | None] = {given: read(given) for given in referenced}
    missing = [given for given, data in blobs.items() if data is None]
    if missing:
        raise SetError("blobNotFound", "blobs not found", notFound=missing)
    attachment_limit = max_size_attachments_per_email()
    if sum(len(data or b"") for data in blobs.values()) > attachment_limit:
        raise SetError("tooLarge", f"attachments are limited to {attachment_limit} octets", maxSize=attachment_limit)

    def load_blob(given: str) -> bytes | None:
        if given not in blobs:
            blobs[given] = read(given)
        return blobs[given]

    try:
        raw = compose_message(content, load_blob)
    except BlobNotFoundError as error:
        raise SetError("blobNotFound", "blobs not found", notFound=list(error.blob_ids)) from None
    except ComposeError as error:
        raise invalid_properties(list(getattr(error, "properties", None) or ["bodyStructure"]), str(error)) from None
    with _service_errors():
        return email_services.email_ingest(
            account=ctx.account,
            raw=raw,
            mailbox_ids=mailbox_pks,
            keywords=keywords,
            received_at=meta.get("receivedAt"),
            user=ctx.call.user,
        )


def referenced_blob_ids(values: Mapping[str, Any]) -> list[str]:
    """The blobIds of every EmailBodyPart of an Email to create, in order, once each."""
    found: list[str] = []
    stack: list[Any] = [values.get("bodyStructure")]
    for name in ("textBody", "htmlBody", "attachments"):
        if isinstance(values.get(name), list):
            stack.extend(values[name])
    while stack:
        part = stack.pop(0)
        if not isinstance(part, Mapping):
            continue
        if isinstance(part.get("blobId"), str) and part["blobId"] not in found:
            found.append(part["blobId"])
        if isinstance(part.get("subParts"), list):
            stack[0:0] = part["subParts"]
    return found


# -- Email/import -----------------------------------------------------------------------


IMPORT_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("ifInState", a.nullable(a.string), None),
    a.arg("emails", a.map_of(a.obj, key=a.creation_id_key)),
)
_IMPORT_PROPERTIES = ("blobId", "mailboxIds", "keywords", "receivedAt")


@registry.method("Email/import", capability=MAIL, writes=True)
def email_import(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(IMPORT_ARGS, arguments)
    account = call.account(parsed["accountId"], write=True)
    emails = parsed["emails"]
    limit = settings.JMAP["maxObjectsInSet"]
    if len(emails) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} emails per Email/import (maxObjectsInSet)")
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    # Each message is read, parsed and tokenized before the account is locked, so
    # concurrent imports into one account only queue for the writes (one batch).
    items: dict[str, email_services.EmailImport] = {}
    given = [values.get("blobId") for values in emails.values() if isinstance(values, dict)]
    read = mail_blob_reader(account, given, user=call.user)
    for cid, values in emails.items():
        try:
            items[cid] = _import_prepare(call, values, read)
        except SetError as error:
            not_created[cid] = error.as_dict()
    with account_changes(account.pk) as changes:
        old_state = type_state(account, EMAIL_TYPE)
        if parsed["ifInState"] is not None and parsed["ifInState"] != old_state:
            raise MethodError("stateMismatch", "ifInState does not match the current state")
        results = email_services.emails_import(account=account, items=list(items.values()), user=call.user)
        for cid, result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                not_created[cid] = service_set_error(result).as_dict()
                continue
            object_id = email_id_of(result.pk)
            call.add_created_id(cid, object_id)
            created[cid] = {"id": object_id, **created_extra(result)}
        touched = changes.touched_types().get(EMAIL_TYPE)
    return {
        "accountId": account.jmap_id,
        "oldState": old_state,
        "newState": encode_state(touched) if touched is not None else old_state,
        "created": created or None,
        "notCreated": not_created or None,
    }


def _import_prepare(
    call: CallContext, values: dict[str, Any], read: Callable[[object], bytes | None]
) -> email_services.EmailImport:
    """One EmailImport (RFC 8621 §4.8), checked, read (``read``: a ``mail_blob_reader``)
    and parsed (no lock held)."""
    unknown = [name for name in values if name not in _IMPORT_PROPERTIES]
    missing = [name for name in ("blobId", "mailboxIds") if name not in values]
    if unknown or missing:
        raise invalid_properties(unknown + missing, "EmailImport takes blobId, mailboxIds, keywords, receivedAt")
    bad: list[str] = []
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for name in ("mailboxIds", "keywords", "receivedAt"):
        if name in values:
            try:
                checked[name] = EMAIL.properties[name].check(values[name], name)
            except MethodError as error:
                bad.append(name)
                problems.append(error.description or name)
    if not is_valid_id(values["blobId"]):
        bad.append("blobId")
        problems.append("blobId must be an Id")
    if bad:
        raise invalid_properties(bad, "; ".join(problems))
    mailbox_pks = resolve_mailboxes(call, checked["mailboxIds"])
    keywords = checked_keyword_count(checked.get("keywords", {}))
    raw = read(values["blobId"])
    if raw is None:
        # RFC 8621 §4.8: an id not found is invalidProperties (blobId).
        raise invalid_properties(["blobId"], f"blob {values['blobId']} not found")
    if not email_services.message_plausible(raw):
        raise SetError("invalidEmail", "the blob is not a message (RFC 5322): it has no header fields")
    with _service_errors():
        email_services.keywords_normalize(keywords)
        prepared = email_services.email_prepare(raw=raw, received_at=checked.get("receivedAt"))
    return email_services.EmailImport(
        prepared=prepared,
        mailbox_ids=mailbox_pks,
        keywords=keywords,
        # A whole stored blob only gets a reference; a body part is stored as a blob.
        sha256=parse_blob_id(values["blobId"]),
    )


# -- Email/parse ------------------------------------------------------------------------


PARSE_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("blobIds", a.list_of(a.id_)),
    a.arg("properties", a.nullable(a.list_of(a.string)), None),
    *BODY_ARGS,
)


@registry.method("Email/parse", capability=MAIL)
def email_parse(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed_args = a.parse(PARSE_ARGS, arguments)
    account = call.account(parsed_args["accountId"])
    properties = checked_email_properties(parsed_args["properties"], DEFAULT_PARSE_PROPERTIES)
    options = BodyOptions.from_args(parsed_args)
    blob_ids = list(dict.fromkeys(parsed_args["blobIds"]))
    limit = settings.JMAP["maxObjectsInGet"]
    if len(blob_ids) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} blobIds per call (maxObjectsInGet)")
    size_limit = email_services.max_message_size()
    parsed: dict[str, Any] = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    read = mail_blob_reader(account, blob_ids, user=call.user)
    for given in blob_ids:
        data = read(given)
        if data is None:
            not_found.append(given)
            continue
        if len(data) > size_limit or not email_services.message_plausible(data):
            not_parsable.append(given)
            continue
        try:
            message = email_services.message_parse(data)
        except InvalidMessage:
            not_parsable.append(given)
            continue
        view = MessageView(message_blob_id=given, size=len(data), parsed=message.to_dict(), raw=lambda data=data: data)
        parsed[given] = render_email(view, properties, options)
    return {
        "accountId": account.jmap_id,
        "parsed": parsed or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    }
