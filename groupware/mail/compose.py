"""Build an RFC 5322 message from the properties of an Email to create (RFC 8621 §4.6).

``compose_message(email, load_blob)`` checks the creation rules of §4.6, then writes the
header fields (convenience properties and ``header:{name}[:as{Form}][:all]`` ones, in
their forms of §4.1.2), a Message-ID and a Date when the client gave none, and the MIME
body: from ``bodyStructure``, or from ``textBody``/``htmlBody``/``attachments`` as
multipart/alternative, /related and /mixed as needed. Text is UTF-8; bodies are 7bit,
quoted-printable or base64, whichever fits; non-ASCII header text is RFC 2047 encoded,
non-ASCII file names RFC 2231; every line ends with CRLF.

Invalid input raises ComposeError naming the offending properties (the caller's
invalidProperties); blobs that ``load_blob`` can't find raise BlobNotFoundError listing
all of them (blobNotFound with notFound, §4.6).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from groupware.mail.bodyparts import parse_content_type
from groupware.mail.headers import canonical_form, form_allowed

__all__ = ["BlobNotFoundError", "ComposeError", "compose_message"]

MAX_BODY_DEPTH = 50
MAX_BODY_PARTS = 1_000
LINE_LENGTH = 78  # RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters


class ComposeError(ValueError):
    """The Email can't be created as given; ``properties`` names what is wrong."""

    def __init__(self, message: str, properties: list[str] | None = None) -> None:
        super().__init__(message)
        self.properties = properties or []


class BlobNotFoundError(ComposeError):
    """Parts reference blobs that don't exist (RFC 8621 §4.6 blobNotFound)."""

    def __init__(self, blob_ids: list[str]) -> None:
        super().__init__(f"blob(s) not found: {', '.join(blob_ids)}", ["bodyStructure"])
        self.blob_ids = blob_ids
        self.not_found = blob_ids


# -- Properties -------------------------------------------------------------------------------

# RFC 8621 §4.1.3 convenience properties: the header field and form each stands for.
_CONVENIENCE = {
    "messageId": ("Message-ID", "MessageIds"),
    "inReplyTo": ("In-Reply-To", "MessageIds"),
    "references": ("References", "MessageIds"),
    "sender": ("Sender", "Addresses"),
    "from": ("From", "Addresses"),
    "to": ("To", "Addresses"),
    "cc": ("Cc", "Addresses"),
    "bcc": ("Bcc", "Addresses"),
    "replyTo": ("Reply-To", "Addresses"),
    "subject": ("Subject", "Text"),
    "sentAt": ("Date", "Date"),
}
_BODY_PROPERTIES = frozenset({"bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments"})
_METADATA = frozenset({"mailboxIds", "keywords", "receivedAt"})  # not part of the message
_PART_PROPERTIES = frozenset(
    {"partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location", "subParts"}
)
# EmailBodyPart properties and the header field each one writes.
_PART_FIELDS = {
    "type": "content-type",
    "charset": "content-type",
    "disposition": "content-disposition",
    "cid": "content-id",
    "language": "content-language",
    "location": "content-location",
}
_HEADER_PROPERTY = re.compile(r"^header:([\x21-\x39\x3b-\x7e]+?)(?::as([A-Za-z]+))?(:all)?$")


@dataclass
class _HeaderProperty:
    prop: str
    name: str
    form: str
    all: bool


def _header_property(prop: str, where: str) -> _HeaderProperty:
    match = _HEADER_PROPERTY.match(prop)
    if match is None:
        raise ComposeError(f"{where}: {prop} is not a valid header property", [prop])
    form = canonical_form(match.group(2) or "Raw")
    name = match.group(1)
    if form is None:
        raise ComposeError(f"{where}: unknown header form in {prop}", [prop])
    if not form_allowed(name, form):  # RFC 8621 §4.6: no forbidden forms
        raise ComposeError(f"{where}: the {form} form is not allowed for {name}", [prop])
    return _HeaderProperty(prop, name, form, match.group(3) is not None)


# -- Header field values ------------------------------------------------------------------------

_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$")
_SIMPLE_ADDRESS = re.compile(r"^[^\s<>(),;:\"\[\]\\]+$")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ENCODED_WORD_LOOKALIKE = re.compile(r"=\?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_PAYLOAD = 75 - len("=?UTF-8?Q??=")  # RFC 2047 §2: an encoded-word is at most 75 characters


def _q_char(char: str) -> str:
    if char == " ":
        return "_"
    return "".join(chr(octet) if octet in _Q_SAFE else f"={octet:02X}" for octet in char.encode("utf-8"))


def _encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 encoded-words (RFC 2047 §4), Q when it is mostly ASCII, B
    otherwise, split between characters so that each word is a valid one."""
    non_ascii = sum(1 for char in text if ord(char) > 127)
    words: list[str] = []
    if non_ascii * 3 <= len(text):
        current = ""
        for char in text:
            encoded = _q_char(char)
            if current and len(current) + len(encoded) > _PAYLOAD:
                words.append(f"=?UTF-8?Q?{current}?=")
                current = ""
            current += encoded
        if current:
            words.append(f"=?UTF-8?Q?{current}?=")
        return words
    chunk = b""
    limit = _PAYLOAD // 4 * 3
    for char in text:
        octets = char.encode("utf-8")
        if chunk and len(chunk) + len(octets) > limit:
            words.append(f"=?UTF-8?B?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = b""
        chunk += octets
    if chunk:
        words.append(f"=?UTF-8?B?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or bool(_ENCODED_WORD_LOOKALIKE.search(word)) or bool(_CONTROL.search(word))


def _clean_text(text: str) -> str:
    # Line breaks can't be in a header field: they become spaces; other controls go.
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", text))


def encode_unstructured(text: str) -> str:
    """Unstructured text (RFC 5322 §3.2.5) with the words that need it RFC 2047 encoded;
    runs of such words are encoded together (white space between encoded-words is
    dropped when decoding)."""
    text = _clean_text(text)
    words = text.split(" ")
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if word and _needs_encoding(word):
            run.append(word)
            continue
        if run:
            out.append(" ".join(_encoded_words(" ".join(run))))
            run = []
        out.append(word)
    if run:
        out.append(" ".join(_encoded_words(" ".join(run))))
    return " ".join(out)


def encode_phrase(name: str) -> str:
    """A display-name (RFC 5322 §3.2.5 phrase): atoms, a quoted-string, or encoded-words."""
    name = _clean_text(name).strip()
    if not name.isascii() or _ENCODED_WORD_LOOKALIKE.search(name):
        return " ".join(_encoded_words(name))
    if _ATEXT_PHRASE.match(name) and "  " not in name:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string(value: Any, prop: str) -> str:
    if not isinstance(value, str):
        raise ComposeError(f"{prop}: a string is required", [prop])
    return value


def _address(value: Any, prop: str) -> str:
    if not isinstance(value, Mapping) or not isinstance(value.get("email"), str):
        raise ComposeError(f"{prop}: an EmailAddress needs an email string", [prop])
    unknown = set(value) - {"name", "email"}
    if unknown:
        raise ComposeError(f"{prop}: unknown EmailAddress properties {sorted(unknown)}", [prop])
    email = value["email"].strip()
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise ComposeError(f"{prop}: an EmailAddress name must be a string or null", [prop])
    if _CONTROL.search(email) or _LINE_BREAKS.search(email) or "<" in email or ">" in email:
        raise ComposeError(f"{prop}: {email!r} can't be written as an address", [prop])
    if name and name.strip():
        return f"{encode_phrase(name)} <{email}>"
    return email if _SIMPLE_ADDRESS.match(email) else f"<{email}>"


def _addresses(value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise ComposeError(f"{prop}: a list of EmailAddress is required", [prop])
    return ", ".join(_address(item, prop) for item in value)


def _grouped_addresses(value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise ComposeError(f"{prop}: a list of EmailAddressGroup is required", [prop])
    out = []
    for group in value:
        if not isinstance(group, Mapping) or not isinstance(group.get("addresses"), list):
            raise ComposeError(f"{prop}: an EmailAddressGroup needs addresses", [prop])
        members = _addresses(group["addresses"], prop)
        name = group.get("name")
        if name is None:
            if members:
                out.append(members)
        else:
            out.append(f"{encode_phrase(_string(name, prop))}: {members};")
    return ", ".join(out)


_MESSAGE_ID = re.compile(r"^[^\s<>()\[\]\\\",;:]+(?:@[^\s<>()\\\",;]+)?$")


def _message_ids(value: Any, prop: str) -> str:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ComposeError(f"{prop}: a list of message ids is required", [prop])
    for item in value:
        if not _MESSAGE_ID.match(item):
            raise ComposeError(f"{prop}: {item!r} is not a valid message id", [prop])
    return " ".join(f"<{item}>" for item in value)


# RFC 8620 §1.4 Date: RFC 3339 date-time, upper-case letters.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")


def parse_jmap_date(value: Any, prop: str) -> datetime:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ComposeError(f"{prop}: an RFC 3339 date-time is required", [prop])
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ComposeError(f"{prop}: {value!r} is not a valid date-time", [prop]) from None


def _date(value: Any, prop: str) -> str:
    # RFC 5322 §3.3, keeping the offset given.
    return format_datetime(parse_jmap_date(value, prop).replace(microsecond=0))


def _urls(value: Any, prop: str) -> str:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ComposeError(f"{prop}: a list of URLs is required", [prop])
    for item in value:
        if not item or re.search(r"[\s<>]", item):
            raise ComposeError(f"{prop}: {item!r} can't be written as a URL", [prop])
    return ", ".join(f"<{item}>" for item in value)


_RAW_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _raw(value: Any, prop: str) -> str:
    # RFC 8621 §4.1.2.1: the octets after the colon, as given. Only folding line breaks
    # may be in it (written as CRLF).
    text = _string(value, prop)
    text = _RAW_FOLD.sub("\r\n", text)
    if "\x00" in text or re.search(r"\r(?!\n[ \t])|(?<!\r)\n", text):
        raise ComposeError(f"{prop}: a raw value can only break lines to fold them", [prop])
    return text


def _text(value: Any, prop: str) -> str:
    return encode_unstructured(_string(value, prop))


_FORMATTERS: dict[str, Callable[[Any, str], str]] = {
    "Raw": _raw,
    "Text": _text,
    "Addresses": _addresses,
    "GroupedAddresses": _grouped_addresses,
    "MessageIds": _message_ids,
    "Date": _date,
    "URLs": _urls,
}


def fold(name: str, value: str) -> str:
    """``Name: value`` folded at white space (RFC 5322 §2.2.3) to keep lines short."""
    line = f"{name}: {value}"
    if len(line) <= LINE_LENGTH:
        return line
    out: list[str] = []
    current = f"{name}:"
    for word in value.split(" "):
        # Fold only before a word: a line of white space alone would end the header.
        if word and len(current) + 1 + len(word) > LINE_LENGTH and not current.endswith(":"):
            out.append(current)
            current = ""
        current += " " + word
    out.append(current)
    return "\r\n".join(out)


@dataclass
class _Field:
    name: str
    line: str  # the whole field, folded, without its final CRLF


def _fields_for(header: _HeaderProperty, value: Any) -> list[_Field]:
    """The header fields one ``header:`` property (or convenience property) writes."""
    if value is None:
        return []
    values = value if header.all else [value]
    if header.all and not isinstance(value, list):
        raise ComposeError(f"{header.prop}: a list (one value per field) is required", [header.prop])
    fields = []
    for item in values:
        if item is None:
            continue
        text = _FORMATTERS[header.form](item, header.prop)
        if header.form == "Raw":
            fields.append(_Field(header.name, f"{header.name}:{text}"))
        else:
            fields.append(_Field(header.name, fold(header.name, text)))
    return fields


# -- MIME entities --------------------------------------------------------------------------------


@dataclass
class _Entity:
    content_type: str
    params: list[tuple[str, str]] = field(default_factory=list)
    encoding: str = ""  # Content-Transfer-Encoding; "" writes none (7bit)
    fields: list[_Field] = field(default_factory=list)  # other header fields
    body: bytes = b""
    children: list[_Entity] | None = None


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MEDIA_TYPE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _parameter(name: str, value: str) -> list[str]:
    """``name=value`` as one or more parameters: quoted if needed, RFC 2231 encoded
    (charset'language'%xx, continued when long) if not ASCII."""
    if value.isascii() and not _CONTROL.search(value) and len(value) <= 60:
        if _TOKEN.match(value):
            return [f"{name}={value}"]
        return [f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"']
    encoded = quote(value, safe="!#$&+-.^_`|~")  # RFC 2231 §7 attribute-char
    pieces: list[str] = []
    while encoded:
        cut = min(len(encoded), 60)
        while cut < len(encoded) and "%" in encoded[cut - 2 : cut]:  # not inside %xx
            cut -= 1
        pieces.append(encoded[:cut])
        encoded = encoded[cut:]
    if len(pieces) == 1:
        return [f"{name}*=UTF-8''{pieces[0]}"]
    prefix = "UTF-8''"
    return [f"{name}*{index}*={prefix if index == 0 else ''}{piece}" for index, piece in enumerate(pieces)]


def _with_parameters(name: str, value: str, params: list[tuple[str, str]]) -> str:
    items = [value] + [text for key, param in params for text in _parameter(key, param)]
    line = f"{name}: " + "; ".join(items)
    if len(line) <= LINE_LENGTH:
        return line
    return f"{name}: " + ";\r\n ".join(items)


def _serialize(entity: _Entity, depth: int = 0) -> bytes:
    lines = []
    params = list(entity.params)
    body = entity.body
    if entity.children is not None:
        encoded_children = [_serialize(child, depth + 1) for child in entity.children]
        boundary = _boundary(encoded_children)
        params = [("boundary", boundary), *params]
        chunks = [f"--{boundary}\r\n".encode() + child + b"\r\n" for child in encoded_children]
        body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    lines.append(_with_parameters("Content-Type", entity.content_type, params))
    if entity.encoding:
        lines.append(f"Content-Transfer-Encoding: {entity.encoding}")
    lines.extend(item.line for item in entity.fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _boundary(children: list[bytes]) -> str:
    # "=_" can't occur in quoted-printable or base64 text; the random part makes a
    # clash with 7bit/8bit content as good as impossible, and it is checked anyway.
    while True:
        boundary = "=_" + secrets.token_hex(16)
        marker = b"--" + boundary.encode()
        if not any(marker in child for child in children):
            return boundary


def _normalise_text(text: str) -> bytes:
    return _LINE_BREAKS.sub("\r\n", text).encode("utf-8")


def _line_lengths_ok(data: bytes) -> bool:
    return all(len(line) <= 998 for line in data.split(b"\r\n"))


def _only_crlf(data: bytes) -> bool:
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


def _quoted_printable(data: bytes) -> bytes:
    # b2a_qp keeps the first line end it sees; give it LF, write CRLF.
    return binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _encode_body(entity: _Entity, data: bytes, *, text: bool) -> None:
    """Choose the Content-Transfer-Encoding (RFC 2045 §6): none for short-lined ASCII
    with CRLF line ends, quoted-printable for mostly-ASCII text, else base64. message/*
    parts are never encoded (RFC 2046 §5.2.1, RFC 6532 §3.5): 8bit or binary."""
    clean_lines = _only_crlf(data) and _line_lengths_ok(data) and b"\x00" not in data
    if entity.content_type in ("message/rfc822", "message/global"):
        entity.encoding = "" if data.isascii() and clean_lines else ("8bit" if clean_lines else "binary")
        entity.body = data
        return
    if data.isascii() and clean_lines:
        entity.body = data
        return
    non_ascii = sum(1 for octet in data[:65536] if octet > 127)
    if text and _only_crlf(data) and b"\x00" not in data and non_ascii * 3 <= min(len(data), 65536):
        entity.encoding = "quoted-printable"
        entity.body = _quoted_printable(data)
    else:
        entity.encoding = "base64"
        entity.body = _base64(data)


@dataclass
class _Context:
    body_values: Mapping[str, Any]
    load_blob: Callable[[str], bytes | None]
    missing: list[str] = field(default_factory=list)
    parts: int = 0


def _check_body_values(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ComposeError("bodyValues must be an object of EmailBodyValue", ["bodyValues"])
    for part_id, body in value.items():
        if not isinstance(body, Mapping) or not isinstance(body.get("value"), str):
            raise ComposeError(f"bodyValues/{part_id}: a value string is required", ["bodyValues"])
        unknown = set(body) - {"value", "isEncodingProblem", "isTruncated"}
        if unknown:
            raise ComposeError(f"bodyValues/{part_id}: unknown properties {sorted(unknown)}", ["bodyValues"])
        # RFC 8621 §4.6: isEncodingProblem and isTruncated must be false or omitted.
        if body.get("isEncodingProblem", False) is not False or body.get("isTruncated", False) is not False:
            raise ComposeError(f"bodyValues/{part_id}: isEncodingProblem and isTruncated must be false", ["bodyValues"])
    return value


def _build_part(
    part: Any,
    ctx: _Context,
    prop: str,
    depth: int,
    default_type: str | None = None,
    top_fields: frozenset[str] = frozenset(),
) -> _Entity:
    """One EmailBodyPart of a creation (RFC 8621 §4.6 rules) as a MIME entity."""
    if depth > MAX_BODY_DEPTH:
        raise ComposeError(f"{prop}: body parts nest deeper than {MAX_BODY_DEPTH}", [prop])
    ctx.parts += 1
    if ctx.parts > MAX_BODY_PARTS:
        raise ComposeError(f"{prop}: more than {MAX_BODY_PARTS} body parts", [prop])
    if not isinstance(part, Mapping):
        raise ComposeError(f"{prop}: an EmailBodyPart object is required", [prop])
    if "headers" in part:
        raise ComposeError(f"{prop}: headers can't be given; set header:{{name}} properties", [prop])
    headers: list[tuple[_HeaderProperty, Any]] = []
    seen: dict[str, str] = {}  # header field (lower case) -> the property that sets it
    for key in part:
        if key.startswith("header:"):
            header = _header_property(key, prop)
            lowered = header.name.lower()
            if lowered == "content-transfer-encoding":  # RFC 8621 §4.6
                raise ComposeError(f"{prop}: Content-Transfer-Encoding is chosen by the server", [prop])
            if lowered in top_fields:
                raise ComposeError(f"{prop}: {header.name} is already set on the Email", [prop])
            headers.append((header, part[key]))
        elif key in _PART_PROPERTIES:
            lowered = _PART_FIELDS.get(key, "")
            if not lowered:
                continue
        else:
            raise ComposeError(f"{prop}: unknown EmailBodyPart property {key}", [prop])
        # RFC 8621 §4.6: no two properties for one header field (type and charset are
        # two halves of Content-Type, not two versions of it).
        other = seen.setdefault(lowered, key)
        if other != key and {other, key} != {"type", "charset"}:
            raise ComposeError(f"{prop}: {other} and {key} both set {lowered}", [prop])

    sub_parts = part.get("subParts")
    given_type = part.get("type")
    if given_type is not None and (not isinstance(given_type, str) or not _MEDIA_TYPE.match(given_type)):
        raise ComposeError(f"{prop}: type must be a media type (type/subtype, no parameters)", [prop])
    content_params: list[tuple[str, str]] = []
    content_type_header = next((value for header, value in headers if header.name.lower() == "content-type"), None)
    if content_type_header is not None:
        # header:Content-Type instead of type: its type and parameters are taken apart
        # (the server writes charset and boundary itself).
        if not isinstance(content_type_header, str):
            raise ComposeError(f"{prop}: header:Content-Type must be a string", [prop])
        parsed_type = parse_content_type(content_type_header)
        given_type = parsed_type.type
        content_params = [
            (key, value) for key, value in parsed_type.params.items() if key not in ("boundary", "charset")
        ]
        headers = [(header, value) for header, value in headers if header.name.lower() != "content-type"]

    fields: list[_Field] = []
    name = part.get("name")
    if name is not None and not isinstance(name, str):
        raise ComposeError(f"{prop}: name must be a string", [prop])
    disposition = part.get("disposition")
    if disposition is not None:
        if not isinstance(disposition, str) or not _TOKEN.match(disposition):
            raise ComposeError(f"{prop}: disposition must be a token like attachment or inline", [prop])
        params = [("filename", name)] if name else []
        fields.append(
            _Field("Content-Disposition", _with_parameters("Content-Disposition", disposition.lower(), params))
        )
    cid = part.get("cid")
    if cid is not None:
        if not isinstance(cid, str) or not _MESSAGE_ID.match(cid):
            raise ComposeError(f"{prop}: cid must be a Content-ID without angle brackets", [prop])
        fields.append(_Field("Content-ID", f"Content-ID: <{cid}>"))
    language = part.get("language")
    if language is not None:
        if not isinstance(language, list) or not all(isinstance(tag, str) and _TOKEN.match(tag) for tag in language):
            raise ComposeError(f"{prop}: language must be a list of language tags", [prop])
        if language:
            fields.append(_Field("Content-Language", fold("Content-Language", ", ".join(language))))
    location = part.get("location")
    if location is not None:
        if not isinstance(location, str) or re.search(r"[\s<>\"]", location):
            raise ComposeError(f"{prop}: location must be a URI", [prop])
        fields.append(_Field("Content-Location", fold("Content-Location", location)))
    for header, value in headers:
        fields.extend(_fields_for(header, value))

    if sub_parts is not None:
        # RFC 8621 §4.1.4: only multipart/* parts have subParts (and no partId or blobId).
        media = (given_type or "multipart/mixed").lower()
        if not media.startswith("multipart/") or not isinstance(sub_parts, list):
            raise ComposeError(f"{prop}: subParts need a multipart/* type", [prop])
        if any(key in part for key in ("partId", "blobId", "charset", "size")):
            raise ComposeError(f"{prop}: a multipart part has no partId, blobId, charset or size", [prop])
        children = [_build_part(child, ctx, prop, depth + 1) for child in sub_parts]
        return _Entity(media, content_params, fields=fields, children=children)

    part_id, blob_id = part.get("partId"), part.get("blobId")
    if (part_id is None) == (blob_id is None):
        raise ComposeError(f"{prop}: a part needs either a partId or a blobId", [prop])
    if part_id is not None:
        # RFC 8621 §4.6: the content is in bodyValues; charset and size are not given.
        if not isinstance(part_id, str) or part_id not in ctx.body_values:
            raise ComposeError(f"{prop}: partId {part_id!r} is not in bodyValues", [prop, "bodyValues"])
        if "charset" in part or "size" in part:
            raise ComposeError(f"{prop}: charset and size can't be given with a partId", [prop])
        media = (given_type or default_type or "text/plain").lower()
        if media.startswith("multipart/"):
            raise ComposeError(f"{prop}: a multipart part needs subParts", [prop])
        data = _normalise_text(ctx.body_values[part_id]["value"])
        entity = _Entity(media, fields=fields)
        if media.startswith("text/"):
            entity.params = [("charset", "us-ascii" if data.isascii() else "utf-8")]
        entity.params += content_params
        if name:
            entity.params.append(("name", name))  # for readers that only look here
        _encode_body(entity, data, text=True)
        return entity

    if not isinstance(blob_id, str):
        raise ComposeError(f"{prop}: blobId must be a string", [prop])
    media = (given_type or default_type or "application/octet-stream").lower()
    if media.startswith("multipart/"):
        raise ComposeError(f"{prop}: a multipart part needs subParts", [prop])
    data = ctx.load_blob(blob_id)
    if data is None:
        if blob_id not in ctx.missing:
            ctx.missing.append(blob_id)
        data = b""
    entity = _Entity(media, fields=fields)
    charset = part.get("charset")
    if charset is not None:
        if not isinstance(charset, str) or not _TOKEN.match(charset):
            raise ComposeError(f"{prop}: charset must be a charset name", [prop])
        if media.startswith("text/"):
            entity.params.append(("charset", charset))
    entity.params += content_params
    if name:
        entity.params.append(("name", name))
    _encode_body(entity, bytes(data), text=media.startswith("text/"))
    return entity


def _single(value: Any, prop: str, media: str) -> Mapping[str, Any]:
    # RFC 8621 §4.6: textBody/htmlBody hold exactly one part, of their type.
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], Mapping):
        raise ComposeError(f"{prop} must contain exactly one body part", [prop])
    part = value[0]
    given = part.get("type", media)
    if not isinstance(given, str) or given.lower() != media:
        raise ComposeError(f"{prop}: the part must be of type {media}", [prop])
    return part


def _body_from_lists(email: Mapping[str, Any], ctx: _Context, top_fields: frozenset[str]) -> _Entity:
    """textBody/htmlBody/attachments as one tree: text and HTML as alternatives, images
    the HTML shows (cid, not "attachment") related to it, the rest mixed in after."""
    text = html = None
    if email.get("textBody") is not None:
        text = _build_part(
            _single(email["textBody"], "textBody", "text/plain"), ctx, "textBody", 1, "text/plain", top_fields
        )
    if email.get("htmlBody") is not None:
        html = _build_part(
            _single(email["htmlBody"], "htmlBody", "text/html"), ctx, "htmlBody", 1, "text/html", top_fields
        )
    attachments = email.get("attachments") or []
    if not isinstance(attachments, list):
        raise ComposeError("attachments must be a list of EmailBodyPart", ["attachments"])
    inline: list[_Entity] = []
    others: list[_Entity] = []
    for item in attachments:
        entity = _build_part(item, ctx, "attachments", 1, None, top_fields)
        embedded = isinstance(item, Mapping) and item.get("cid") and item.get("disposition") != "attachment"
        (inline if html is not None and embedded else others).append(entity)
    if html is not None and inline:
        html = _Entity("multipart/related", [("type", "text/html")], children=[html, *inline])
    if text is not None and html is not None:
        body: _Entity | None = _Entity("multipart/alternative", children=[text, html])
    else:
        body = text or html
    if others:
        if body is None and len(others) == 1:
            return others[0]
        return _Entity("multipart/mixed", children=([body] if body is not None else []) + others)
    if body is None:
        return _Entity("text/plain", [("charset", "us-ascii")])
    return body


def _message_id_domain(email: Mapping[str, Any]) -> str:
    senders = email.get("from")
    if isinstance(senders, list) and senders and isinstance(senders[0], Mapping):
        address = senders[0].get("email")
        if isinstance(address, str) and "@" in address:
            domain = address.rsplit("@", 1)[1].strip().lower()
            if re.match(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$", domain) and "." in domain:
                return domain
    return "localhost"


def compose_message(
    email: Mapping[str, Any],
    load_blob: Callable[[str], bytes | None],
    *,
    now: datetime | None = None,
) -> bytes:
    """The RFC 5322 message for the creation properties of an Email (RFC 8621 §4.6).

    ``load_blob(blobId)`` returns a blob's octets or None. mailboxIds, keywords and
    receivedAt are not part of the message and are ignored. Raises ComposeError (with
    ``properties``) or BlobNotFoundError (with every missing ``blob_ids``).
    """
    if not isinstance(email, Mapping):
        raise ComposeError("an Email object is required")
    # §4.6: one property per header field, allowed forms only, no Content-* on the Email.
    fields: list[_Field] = []
    seen: dict[str, str] = {}
    for key, value in email.items():
        if key in _METADATA or key in _BODY_PROPERTIES:
            continue
        if key == "headers":
            raise ComposeError("headers can't be given; set header:{name} properties", ["headers"])
        if key in _CONVENIENCE:
            name, form = _CONVENIENCE[key]
            header = _HeaderProperty(key, name, form, False)
        elif key.startswith("header:"):
            header = _header_property(key, "Email")
        else:
            raise ComposeError(f"{key} can't be set when creating an Email", [key])
        lowered = header.name.lower()
        if lowered.startswith("content-"):
            raise ComposeError(f"{key}: Content-* header fields belong on body parts", [key])
        if lowered in seen:
            raise ComposeError(f"{seen[lowered]} and {key} both set {header.name}", [seen[lowered], key])
        seen[lowered] = key
        fields.extend(_fields_for(header, value))

    if "bodyStructure" in email and any(key in email for key in ("textBody", "htmlBody", "attachments")):
        raise ComposeError(
            "bodyStructure can't be given with textBody, htmlBody or attachments",
            ["bodyStructure", *(key for key in ("textBody", "htmlBody", "attachments") if key in email)],
        )
    ctx = _Context(_check_body_values(email.get("bodyValues")), load_blob)
    top_fields = frozenset(seen)
    if email.get("bodyStructure") is not None:
        root = _build_part(email["bodyStructure"], ctx, "bodyStructure", 0, None, top_fields)
    else:
        root = _body_from_lists(email, ctx, top_fields)
    if ctx.missing:
        raise BlobNotFoundError(ctx.missing)

    # RFC 8621 §4.6: the server MUST set a Message-ID and a Date if none were given.
    if "date" not in seen:
        fields.append(_Field("Date", f"Date: {format_datetime((now or datetime.now(UTC)).replace(microsecond=0))}"))
    if "message-id" not in seen:
        identifier = f"{secrets.token_hex(16)}@{_message_id_domain(email)}"
        fields.append(_Field("Message-ID", f"Message-ID: <{identifier}>"))
    if "mime-version" not in seen:
        fields.append(_Field("MIME-Version", "MIME-Version: 1.0"))
    head = "".join(item.line + "\r\n" for item in fields).encode("utf-8")
    return head + _serialize(root)
