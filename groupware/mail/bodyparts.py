"""EmailBodyPart (RFC 8621 §4.1.4): the part model, MIME parameters, and the split of a
body structure into textBody, htmlBody and attachments.

``BodyPart`` carries the JMAP properties plus where its content lies in the raw message
(``body_start``/``body_end``, octet offsets) and its Content-Transfer-Encoding, so a
part's octets can be read again without parsing the message (``mime.part_content``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from groupware.mail.headers import (
    MAX_PARSED_LENGTH,
    Header,
    as_message_ids,
    charset_codec,
    decode_encoded_words,
    unfold,
)

__all__ = [
    "BodyPart",
    "ContentType",
    "classify_parts",
    "parse_content_type",
    "parse_disposition",
    "parse_parameters",
]


@dataclass
class BodyPart:
    """One MIME entity. ``part_id`` is None if and only if it is multipart/* (§4.1.4)."""

    part_id: str | None
    type: str
    headers: list[Header] = field(default_factory=list)
    charset: str | None = None
    name: str | None = None
    disposition: str | None = None
    cid: str | None = None
    language: list[str] | None = None
    location: str | None = None
    size: int = 0
    sub_parts: list[BodyPart] | None = None
    # Where the entity lies in the raw message: its header block starts at ``start``,
    # its content is raw[body_start:body_end] (before transfer decoding).
    start: int = 0
    body_start: int = 0
    body_end: int = 0
    # The Content-Transfer-Encoding, lower case ("" when absent).
    encoding: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form with the JMAP property names (no blobId: the store derives it)."""
        return {
            "partId": self.part_id,
            "headers": [header.to_dict() for header in self.headers],
            "name": self.name,
            "type": self.type,
            "charset": self.charset,
            "disposition": self.disposition,
            "cid": self.cid,
            "language": self.language,
            "location": self.location,
            "size": self.size,
            "subParts": None if self.sub_parts is None else [part.to_dict() for part in self.sub_parts],
            "start": self.start,
            "bodyStart": self.body_start,
            "bodyEnd": self.body_end,
            "encoding": self.encoding,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BodyPart:
        # Iterative, so a stored structure of any depth loads without recursion.
        root = cls._shallow(data)
        stack: list[tuple[BodyPart, Mapping[str, Any]]] = [(root, data)]
        while stack:
            part, source = stack.pop()
            children = source.get("subParts")
            if children is None:
                continue
            part.sub_parts = []
            for child in children:
                loaded = cls._shallow(child)
                part.sub_parts.append(loaded)
                stack.append((loaded, child))
        return root

    @classmethod
    def _shallow(cls, data: Mapping[str, Any]) -> BodyPart:
        headers = []
        for header in data.get("headers") or ():
            if isinstance(header, Mapping):
                headers.append(Header(str(header.get("name", "")), str(header.get("value", ""))))
            else:
                headers.append(Header(str(header[0]), str(header[1])))
        return cls(
            part_id=data.get("partId"),
            type=data.get("type") or "text/plain",
            headers=headers,
            charset=data.get("charset"),
            name=data.get("name"),
            disposition=data.get("disposition"),
            cid=data.get("cid"),
            language=data.get("language"),
            location=data.get("location"),
            size=int(data.get("size") or 0),
            start=int(data.get("start") or 0),
            body_start=int(data.get("bodyStart") or 0),
            body_end=int(data.get("bodyEnd") or 0),
            encoding=str(data.get("encoding") or ""),
        )

    def walk(self) -> Iterator[BodyPart]:
        """This part and every part below it, depth first, in order."""
        stack: list[BodyPart] = [self]
        while stack:
            part = stack.pop()
            yield part
            if part.sub_parts:
                stack.extend(reversed(part.sub_parts))

    def leaves(self) -> Iterator[BodyPart]:
        return (part for part in self.walk() if part.sub_parts is None)


# -- MIME parameters (RFC 2045 §5.1, RFC 2231) ------------------------------------------------

_PARAM_SPLIT = re.compile(r'(;)|"(?:[^"\\]|\\.)*(?:"|$)|[^;"]+', re.S)
_SECTION = re.compile(r"^([^*]+)\*(\d{1,4})(\*?)$")
_PARAM_PAIR = re.compile(r'\\([\\"])')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _split_semicolons(value: str) -> list[str]:
    """Split on ";" outside quoted-strings."""
    pieces: list[str] = [""]
    for match in _PARAM_SPLIT.finditer(value):
        if match.group(1):
            pieces.append("")
        else:
            pieces[-1] += match.group()
    return pieces


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        # Only \" and \\ are taken as quoted-pairs: unescaping every backslash would
        # mangle the Windows paths mailers put in file names ("C:\TEMP\x.png").
        return _PARAM_PAIR.sub(r"\1", inner) if "\\" in inner else inner
    if value.startswith('"'):  # unterminated
        return value[1:]
    return value


def _decode_2231(octets: bytes, charset: str | None) -> str:
    codec = charset_codec(charset) or "utf-8"
    return octets.decode(codec, "replace")


def parse_parameters(pieces: list[str]) -> dict[str, str]:
    """Parameters (lower-case names) from the ``;``-separated pieces after the value.

    RFC 2231 continuations (name*0, name*1*, ...) and charset'language'%xx values are
    joined and decoded; RFC 2047 encoded-words in values are decoded too (not allowed
    there, but widely written for file names). The first occurrence of a name wins.
    """
    simple: dict[str, str] = {}
    extended: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for piece in pieces:
        if "=" not in piece:
            continue
        name, _, raw = piece.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name.endswith("*") and _SECTION.match(name) is None:
            # name*=charset'language'value (RFC 2231 §4)
            base = name[:-1]
            if base not in extended:
                text = _unquote(raw)
                charset, _, rest = text.partition("'")
                _language, _, encoded = rest.partition("'")
                if not rest:  # no charset'language' prefix: take it as it is
                    extended[base] = text
                else:
                    extended[base] = _decode_2231(unquote_to_bytes(encoded), charset)
            continue
        section = _SECTION.match(name)
        if section is not None:
            index = int(section.group(2))
            sections.setdefault(section.group(1), {}).setdefault(index, (raw, bool(section.group(3))))
            continue
        simple.setdefault(name, _unquote(raw))
    for base, parts in sections.items():
        if base in extended:
            continue
        charset: str | None = None
        octets = bytearray()
        for index in sorted(parts):
            raw, encoded = parts[index]
            text = _unquote(raw)
            if encoded:
                if index == 0 and text.count("'") >= 2:
                    charset, _, rest = text.partition("'")
                    text = rest.partition("'")[2]
                octets += unquote_to_bytes(text)
            else:
                octets += text.encode("utf-8", "replace")
        extended[base] = _decode_2231(bytes(octets), charset)
    result = {name: decode_encoded_words(value) for name, value in simple.items()}
    result.update(extended)  # RFC 2231 values win over plain ones of the same name
    return result


@dataclass
class ContentType:
    type: str  # "text/plain", lower case
    params: dict[str, str]
    valid: bool  # False when the field was absent or unusable


def _strip_cfws(value: str) -> str:
    # Comments may nest; removing innermost ones first is linear per nesting level,
    # and real values have at most one or two.
    for _ in range(5):
        if "(" not in value:
            break
        stripped = _COMMENT.sub("", value)
        if stripped == value:
            break
        value = stripped
    return value.strip()


_MEDIA_START = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*/\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)")


def parse_content_type(raw: str | None, default: str = "text/plain") -> ContentType:
    """Content-Type (RFC 2045 §5): type/subtype lower-cased, CFWS removed, and its
    parameters. Absent or syntactically invalid: ``default`` if absent, text/plain if
    invalid (RFC 2045 §5.2)."""
    if raw is None:
        return ContentType(default, {}, False)
    raw = raw[:MAX_PARSED_LENGTH]
    pieces = _split_semicolons(unfold(raw))
    first = _strip_cfws(pieces[0])
    match = _MEDIA_START.match(first)
    if match is None:
        return ContentType("text/plain", parse_parameters(pieces[1:]), False)
    rest = first[match.end() :].strip()
    if "=" in rest:
        # "multipart/mixed boundary=x": the ";" is missing; the parameter is still meant.
        pieces.insert(1, rest)
    elif rest:
        return ContentType("text/plain", parse_parameters(pieces[1:]), False)
    media = f"{match.group(1)}/{match.group(2)}".lower()
    return ContentType(media, parse_parameters(pieces[1:]), True)


def parse_disposition(raw: str | None) -> tuple[str | None, dict[str, str]]:
    """Content-Disposition (RFC 2183): the lower-case value (None if empty) and parameters."""
    if raw is None:
        return None, {}
    raw = raw[:MAX_PARSED_LENGTH]
    pieces = _split_semicolons(unfold(raw))
    value = _strip_cfws(pieces[0]).lower()
    return (value or None), parse_parameters(pieces[1:])


def parse_content_id(raw: str | None) -> str | None:
    """Content-ID without CFWS and angle brackets (RFC 8621 §4.1.4 cid)."""
    if raw is None:
        return None
    raw = raw[:MAX_PARSED_LENGTH]
    ids = as_message_ids(raw)
    if ids:
        return ids[0]
    text = _strip_cfws(unfold(raw)).strip("<>").strip()
    return text or None


def parse_language(raw: str | None) -> list[str] | None:
    """Content-Language (RFC 3282): the language tags, CFWS removed."""
    if raw is None:
        return None
    raw = raw[:MAX_PARSED_LENGTH]
    tags = [tag.strip() for tag in _strip_cfws(unfold(raw)).split(",")]
    tags = [tag for tag in tags if tag]
    return tags or None


def parse_location(raw: str | None) -> str | None:
    """Content-Location (RFC 2557 §4.2): the URI, folding white space removed."""
    if raw is None:
        return None
    raw = raw[:MAX_PARSED_LENGTH]
    text = "".join(_strip_cfws(unfold(raw)).split())
    return text.strip('"') or None


def parse_transfer_encoding(raw: str | None) -> str:
    """Content-Transfer-Encoding (RFC 2045 §6.1), lower case, CFWS removed; "" if absent."""
    if raw is None:
        return ""
    return "".join(_strip_cfws(unfold(raw[:MAX_PARSED_LENGTH])).split()).strip('"').lower()


# -- textBody, htmlBody, attachments (RFC 8621 §4.1.4) -------------------------------------------


def _is_inline_media(type_: str) -> bool:
    return type_.startswith(("image/", "audio/", "video/"))


def classify_parts(structure: BodyPart) -> tuple[list[BodyPart], list[BodyPart], list[BodyPart]]:
    """(textBody, htmlBody, attachments): the RFC 8621 §4.1.4 suggested algorithm, step
    for step (a list set to null there is None here)."""
    text_body: list[BodyPart] = []
    html_body: list[BodyPart] = []
    attachments: list[BodyPart] = []
    _parse_structure([structure], "mixed", False, html_body, text_body, attachments)
    return text_body, html_body, attachments


def _parse_structure(
    parts: list[BodyPart],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[BodyPart] | None,
    text_body: list[BodyPart] | None,
    attachments: list[BodyPart],
) -> None:
    # For multipartType == alternative
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1

    for index, part in enumerate(parts):
        is_multipart = part.type.startswith("multipart/")
        # Is this a body part rather than an attachment?
        is_inline = (
            part.disposition != "attachment"
            # Must be one of the allowed body types
            and (part.type in ("text/plain", "text/html") or _is_inline_media(part.type))
            # If multipart/related, only the first part can be inline. If a text part
            # with a filename, and not the first item in the multipart, assume it is
            # an attachment.
            and (index == 0 or (multipart_type != "related" and (_is_inline_media(part.type) or not part.name)))
        )
        if is_multipart:
            sub_multi_type = part.type.split("/", 1)[1]
            _parse_structure(
                part.sub_parts or [],
                sub_multi_type,
                in_alternative or sub_multi_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                if part.type == "text/plain":
                    if text_body is not None:
                        text_body.append(part)
                elif part.type == "text/html":
                    if html_body is not None:
                        html_body.append(part)
                else:
                    attachments.append(part)
                continue
            if in_alternative:
                if part.type == "text/plain":
                    html_body = None
                if part.type == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _is_inline_media(part.type):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found HTML part only
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        # Found plaintext part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])
