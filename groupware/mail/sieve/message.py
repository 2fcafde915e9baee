"""What a script sees of a message and its envelope."""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import email.policy
import email.utils
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache, partial
from typing import Any

from groupware.mail.mime import decode_charset, html_to_text, part_content


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path
    rcpt_to: str  # the recipient this delivery is for
    auth: str | None = None


class BodyPart:
    """One MIME part as the body test sees it.

    ``content_type``: "type/subtype", lower case. ``text``: the transfer-decoded content of
    a leaf part (charset-decoded for text/*), decoded when first read (from ``source``), so
    a test of the text parts never decodes the attachments. ``is_container``: multipart/*
    (text: prologue and epilogue) or message/rfc822 (text: the embedded header).
    """

    __slots__ = ("_plain", "_source", "_text", "content_type", "is_container")

    def __init__(
        self,
        content_type: str,
        text: str | None = None,
        is_container: bool = False,
        *,
        source: Callable[[], str | None] | None = None,
        plain: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.is_container = is_container
        self._text = text
        self._source = source
        self._plain = plain  # of text/html: the text without markup, if known

    @property
    def text(self) -> str | None:
        if self._source is not None:
            self._text, self._source = self._source(), None
        return self._text

    @property
    def plain(self) -> str | None:
        """The text as ``body :text`` reads it: text/html without its markup (RFC 5173 §5.3)."""
        if self.content_type != "text/html":
            return self.text
        if self._plain is None:
            text = self.text
            self._plain = html_to_text(text) if text is not None else None
        return self._plain

    def __repr__(self) -> str:
        return f"BodyPart({self.content_type!r}, is_container={self.is_container})"


def decode_header_value(value: str) -> str:
    """Unfold and decode RFC 2047 encoded words (RFC 5228 §2.7.2)."""
    value = value.replace("\r\n", "").replace("\n", "")
    if "=?" not in value:
        return value.strip()
    try:
        return str(email.header.make_header(email.header.decode_header(value))).strip()
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return value.strip()


def _unescape(value: str) -> str:
    """Raw 8-bit header text (RFC 6532 UTF-8, else legacy Latin-1) from the parser's escapes."""
    if value.isascii():
        return value
    data = value.encode("utf-8", errors="surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _part_text(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    if part.get_content_maintype() != "text":
        return payload.decode("utf-8", errors="replace")  # RFC 5173 §5.2: no charset conversion
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


class MessageView:
    """Headers, size and (parsed on first use) body of the message being filtered."""

    def __init__(
        self,
        headers: list[tuple[str, str]],
        size: int,
        raw_body: str | None = None,
        parts: list[BodyPart] | None = None,
        *,
        raw: bytes | None = None,
    ) -> None:
        self.headers = headers  # (name, raw value) in message order
        self.size = size
        self._raw = raw
        self._raw_body = raw_body
        self._parts = parts
        self._leaves: list[BodyPart] | None = None
        self._structure: tuple[Mapping[str, Any], bytes, Mapping[str, tuple[str, str]]] | None = None
        # Each field's values by lower-case name, raw and decoded, read once: a script
        # tests the same fields in rule after rule.
        self._raw_values: dict[str, list[str]] | None = None
        self._decoded: dict[str, list[str]] = {}

    @classmethod
    def from_bytes(cls, raw: bytes) -> MessageView:
        # Only the header is parsed now; the MIME structure waits for a body test. The
        # parser would read the body line by line into a payload nobody looks at: it gets
        # the octets up to the first empty line (the header fields end there at the latest).
        end = min((found for found in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if found >= 0), default=-1)
        header = raw[: end + 4] if end >= 0 else raw
        parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(header, headersonly=True)
        headers = [(name, _unescape(str(value))) for name, value in parsed.raw_items()]
        return cls(headers=headers, size=len(raw), raw=raw)

    @property
    def raw_body(self) -> str:
        if self._raw_body is None:
            raw = self._raw or b""
            crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
            if crlf >= 0 and (lf < 0 or crlf < lf):
                body = raw[crlf + 4 :]
            elif lf >= 0:
                body = raw[lf + 2 :]
            else:
                body = b""
            self._raw_body = body.decode("utf-8", errors="replace")
        return self._raw_body

    @property
    def parts(self) -> list[BodyPart]:
        if self._parts is None:
            self._parts = _body_parts(self._raw or b"")
        return self._parts

    def use_structure(
        self, parsed: Mapping[str, Any] | None, raw: bytes, texts: Mapping[str, tuple[str, str]] | None = None
    ) -> None:
        """Give the body test the parse the store made of the message (its stored form,
        ``groupware.mail.mime``, with offsets into ``raw``), so the text parts are read from
        it instead of parsing the message again; ``texts``: the text parts that parse
        decoded already (``ParsedMessage.texts``), not decoded again."""
        if isinstance(parsed, Mapping) and not parsed.get("truncated"):
            structure = parsed.get("bodyStructure")
            if isinstance(structure, Mapping):
                self._structure = (structure, raw, texts or {})

    @property
    def leaf_parts(self) -> list[BodyPart]:
        """The parts that are not multipart/* or message/rfc822 containers, in order."""
        if self._leaves is None:
            leaves = _structure_leaves(*self._structure) if self._structure is not None else None
            self._leaves = leaves if leaves is not None else [part for part in self.parts if not part.is_container]
        return self._leaves

    def raw_header_values(self, name: str) -> list[str]:
        """The raw values of a field, in message order (the list is shared: don't change it)."""
        if self._raw_values is None:
            by_name: dict[str, list[str]] = {}
            for key, value in self.headers:
                by_name.setdefault(key.lower(), []).append(value)
            self._raw_values = by_name
        return self._raw_values.get(name.lower(), [])

    def header_values(self, name: str) -> list[str]:
        """The decoded values of a field (RFC 5228 §2.7.2; the list is shared: don't change it)."""
        lowered = name.lower()
        values = self._decoded.get(lowered)
        if values is None:
            values = self._decoded[lowered] = [decode_header_value(value) for value in self.raw_header_values(name)]
        return values

    def has_header(self, name: str) -> bool:
        return bool(self.raw_header_values(name))


def _body_parts(raw: bytes) -> list[BodyPart]:
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    parts: list[BodyPart] = []
    for part in parsed.walk():
        content_type = part.get_content_type().lower()
        if content_type == "message/rfc822":
            # RFC 5173 §5.2: a message/rfc822 part's own content is the embedded header ...
            embedded = part.get_payload()
            inner = embedded[0] if isinstance(embedded, list) and embedded else None
            header = "".join(f"{name}: {value}\r\n" for name, value in inner.raw_items()) if inner else ""
            parts.append(BodyPart(content_type, _unescape(header), is_container=True))
        elif part.is_multipart():
            # ... and a multipart's is its prologue and epilogue.
            text = "\r\n".join(item for item in (part.preamble, part.epilogue) if item)
            parts.append(BodyPart(content_type, _unescape(text), is_container=True))
        else:
            parts.append(BodyPart(content_type, source=partial(_part_text, part)))
    return parts


def _structure_leaves(
    structure: Mapping[str, Any], raw: bytes, texts: Mapping[str, tuple[str, str]]
) -> list[BodyPart] | None:
    """The leaf parts of a stored body structure, or None when it holds an embedded message
    (the body test looks inside it, RFC 5173 §5.2, which the structure doesn't). ``texts``:
    text parts decoded already, by partId: (text, text as the index reads it)."""

    def text(node: Mapping[str, Any], content_type: str) -> str:
        data = part_content(raw, node)
        if content_type.startswith("text/"):
            return decode_charset(data, node.get("charset"))[0]
        return data.decode("utf-8", errors="replace")  # RFC 5173 §5.2: no charset conversion

    leaves: list[BodyPart] = []
    pending = [structure]
    while pending:
        node = pending.pop()
        content_type = str(node.get("type") or "text/plain").lower()
        children = node.get("subParts")
        if isinstance(children, list):
            pending.extend(reversed(children))
        elif content_type in ("message/rfc822", "message/global"):
            return None
        else:
            known = texts.get(node.get("partId")) if content_type.startswith("text/") else None  # type: ignore[arg-type]
            if known is not None:  # the parse decoded it (and for text/html, dropped the markup)
                decoded, readable = known
                plain = readable if content_type == "text/html" else None
                leaves.append(BodyPart(content_type, decoded, plain=plain))
            else:
                leaves.append(BodyPart(content_type, source=partial(text, node, content_type)))
    return leaves


def parse_addresses(value: str) -> list[str]:
    """The addr-specs of an address header (display names and groups dropped)."""
    return list(_addresses(value))


@lru_cache(maxsize=256)
def _addresses(value: str) -> tuple[str, ...]:
    # Cached: a script tests From and To in several rules, each reading them again.
    pairs = email.utils.getaddresses([value.replace("\r\n", " ").replace("\n", " ")])
    return tuple(address for _name, address in pairs if address)


def split_address(address: str) -> tuple[str, str | None]:
    """(localpart, domain); domain None when the address has no '@'."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, None
    return local, domain
