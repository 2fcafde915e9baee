"""Parse a message once into what the Email object (RFC 8621 §4.1) is made of.

``parse_message(raw)`` reads the header fields (§4.1.3), the convenience properties,
the MIME tree (§4.1.4: bodyStructure with partIds, sizes and the byte range of each
part's content), textBody/htmlBody/attachments, hasAttachment, preview and the text to
index. ``part_content`` and ``body_value`` later read one part straight from the raw
octets with the stored offsets: nothing is parsed twice.

Why not ``email.parser``: it doesn't say where a part lies in the raw octets (a part's
blob and bodyValues need that), it recurses once per nesting level, and it can't be
told to stop at a depth or part count. The MIME framing here is a single left-to-right
scan for boundary delimiter lines (RFC 2046 §5.1.1), done by one compiled regular
expression per set of open boundaries, so the time is linear in the size of the
message whatever its shape. Header parameters (RFC 2045, RFC 2231), RFC 2047 words,
dates and addresses are parsed in groupware.mail.headers and .bodyparts; the standard
library supplies the codecs and the base64 / quoted-printable decoders.

Limits (a message beyond them is still stored, degraded, with ``truncated`` set):
multipart nesting deeper than MAX_DEPTH becomes an empty multipart, and no more than
MAX_PARTS parts are read. Nothing in here raises on any input.
"""

from __future__ import annotations

import binascii
import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from groupware.mail.bodyparts import (
    BodyPart,
    classify_parts,
    parse_content_id,
    parse_content_type,
    parse_disposition,
    parse_language,
    parse_location,
    parse_transfer_encoding,
)
from groupware.mail.headers import (
    Address,
    Header,
    as_text,
    charset_codec,
    decode_raw,
    header_value,
    parse_date,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "BodyPart",
    "Header",
    "ParsedMessage",
    "body_value",
    "decode_charset",
    "decode_transfer",
    "html_to_text",
    "parse_message",
    "part_content",
    "part_text",
]

logger = logging.getLogger(__name__)

MAX_DEPTH = 100  # multipart nesting levels read
MAX_PARTS = 10_000  # MIME entities read, multiparts included
MAX_HEADERS = 10_000  # header fields kept per entity
SEARCH_TEXT_LIMIT = 1_000_000  # characters kept per search text field
PREVIEW_LENGTH = 256  # RFC 8621 §4.1.4: preview is at most 256 characters
FORMAT_VERSION = 1  # of to_dict(): bump when stored parses must be recomputed


# -- The header block ---------------------------------------------------------------------

_FIELD = rb"[\x21-\x39\x3b-\x7e]+[ \t]*:[^\n]*(?:\n|\Z)"
_CONTINUATION = rb"[ \t][^\n]*(?:\n|\Z)"
# RFC 5322 §2.2: header fields (each maybe folded onto continuation lines). Field and
# continuation lines start differently, so the match is linear.
_HEADER_BLOCK = re.compile(rb"(?:" + _CONTINUATION + rb")*(?:" + _FIELD + rb"(?:" + _CONTINUATION + rb")*)*")
_FIELD_START = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:", re.M)


@dataclass
class _State:
    parts: int = 0
    truncated: bool = False
    defects: list[str] = field(default_factory=list)

    def defect(self, text: str) -> None:
        if len(self.defects) < 50 and text not in self.defects:
            self.defects.append(text)


def _read_headers(raw: bytes, start: int, delimiter: _Delimiters | None, state: _State) -> tuple[list[Header], int]:
    """The header fields of the entity at ``start`` and where its body starts.

    The block ends at the empty line, at the first line that isn't a header field (it
    then starts the body, as RFC 5322 has no other reading of it) or at a boundary
    delimiter line of an enclosing multipart (a part with no blank line after its
    headers, RFC 2046 §5.1.1).
    """
    block = _HEADER_BLOCK.match(raw, start)
    end = block.end() if block is not None else start
    if delimiter is not None and end > start:
        found = delimiter.search(raw, start, end)
        if found is not None:
            end = found.start
    if raw.startswith(b"\r\n", end):
        body_start = end + 2
    elif raw.startswith(b"\n", end):
        body_start = end + 1
    else:
        body_start = end
        if end < len(raw) and end > start:
            state.defect("header block not ended by an empty line")
    headers: list[Header] = []
    matches = list(islice(_FIELD_START.finditer(raw, start, end), MAX_HEADERS + 1))
    if len(matches) > MAX_HEADERS:
        state.truncated = True
        state.defect(f"more than {MAX_HEADERS} header fields in one part")
        matches = matches[:MAX_HEADERS]
    for index, match in enumerate(matches):
        value_end = matches[index + 1].start() if index + 1 < len(matches) else end
        if raw[value_end - 1 : value_end] == b"\n":
            value_end -= 1
        if raw[value_end - 1 : value_end] == b"\r":
            value_end -= 1
        value_end = max(value_end, match.end())
        headers.append(Header(match.group(1).decode("ascii"), decode_raw(raw[match.end() : value_end])))
    return headers, body_start


# -- Entities ----------------------------------------------------------------------------------

_IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
_CONTENT_FIELDS = frozenset(
    {
        "content-type",
        "content-disposition",
        "content-id",
        "content-language",
        "content-location",
        "content-transfer-encoding",
    }
)


def _describe(part: BodyPart, default_type: str) -> bytes | None:
    """Fill the JMAP properties of ``part`` from its headers (RFC 8621 §4.1.4); the
    boundary if it is a multipart with one."""
    first: dict[str, str] = {}
    for header in part.headers:
        lowered = header.name.lower()
        if lowered in _CONTENT_FIELDS and lowered not in first:
            # The first instance counts, as for every MIME reader.
            first[lowered] = header.value
    content_type = parse_content_type(first.get("content-type"), default_type)
    part.type = content_type.type
    charset = (content_type.params.get("charset") or "").strip() or None
    if charset is None and part.type.startswith("text/"):
        charset = "us-ascii"  # RFC 2045 §5.2 / RFC 2046 §4.1.2: the implicit charset
    part.charset = charset
    disposition, disposition_params = parse_disposition(first.get("content-disposition"))
    part.disposition = disposition
    # RFC 8621 §4.1.4 name: Content-Disposition's filename, else Content-Type's name.
    part.name = disposition_params.get("filename") or content_type.params.get("name") or None
    part.cid = parse_content_id(first.get("content-id"))
    part.language = parse_language(first.get("content-language"))
    part.location = parse_location(first.get("content-location"))
    part.encoding = parse_transfer_encoding(first.get("content-transfer-encoding"))
    if part.type.startswith("multipart/"):
        boundary = content_type.params.get("boundary", "").rstrip(" \t")
        return boundary.encode("utf-8", "replace") if boundary else None
    return None


@lru_cache(maxsize=256)
def _delimiter_regex(boundaries: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """A delimiter line of any open boundary: "--" boundary ["--"] transport-padding
    (RFC 2046 §5.1.1). Longest first, so a boundary that prefixes another still works."""
    alternatives = b"|".join(re.escape(boundary) for boundary in sorted(boundaries, key=len, reverse=True))
    return re.compile(rb"^--(" + alternatives + rb")(--)?[ \t]*\r?$", re.M)


# Any line that could be a delimiter: used once a message has opened too many distinct
# sets of boundaries for a compiled pattern per set to pay off.
_ANY_DELIMITER = re.compile(rb"^--([^\r\n]*?)[ \t]*\r?$", re.M)
MAX_PATTERNS = 64  # compiled delimiter patterns per message


@dataclass
class _Delimiter:
    start: int  # of the line
    end: int  # of the line, before its line end
    boundary: bytes
    closing: bool


class _Delimiters:
    """Finds the next delimiter line of the open boundaries (innermost last)."""

    def __init__(self, boundaries: tuple[bytes, ...], patterns: dict[tuple[bytes, ...], re.Pattern[bytes]]) -> None:
        self.boundaries = frozenset(boundaries)
        self.pattern = patterns.get(boundaries)
        if self.pattern is None and len(patterns) < MAX_PATTERNS:
            self.pattern = patterns[boundaries] = _delimiter_regex(boundaries)

    def search(self, raw: bytes, position: int, end: int | None = None) -> _Delimiter | None:
        end = len(raw) if end is None else end
        if self.pattern is not None:
            match = self.pattern.search(raw, position, end)
            if match is None:
                return None
            return _Delimiter(match.start(), match.end(), match.group(1), match.group(2) is not None)
        for match in _ANY_DELIMITER.finditer(raw, position, end):
            text = match.group(1)
            if text in self.boundaries:
                return _Delimiter(match.start(), match.end(), text, False)
            if text.endswith(b"--") and text[:-2] in self.boundaries:
                return _Delimiter(match.start(), match.end(), text[:-2], True)
        return None


@dataclass
class _Frame:
    part: BodyPart
    boundary: bytes
    child: BodyPart | None = None


def _eol_before(raw: bytes, index: int) -> int:
    if index >= 2 and raw[index - 2 : index] == b"\r\n":
        return 2
    if index >= 1 and raw[index - 1] == 0x0A:
        return 1
    return 0


def _new_part(
    raw: bytes, start: int, delimiter: _Delimiters | None, default_type: str, state: _State
) -> tuple[BodyPart, bytes | None]:
    state.parts += 1
    headers, body_start = _read_headers(raw, start, delimiter, state)
    part = BodyPart(
        part_id=None, type=default_type, headers=headers, start=start, body_start=body_start, body_end=len(raw)
    )
    boundary = _describe(part, default_type)
    return part, boundary


def _parse_structure(raw: bytes, state: _State) -> BodyPart:
    """The MIME tree of the message (RFC 2045, RFC 2046 §5.1) in one scan."""
    start = 0
    if raw.startswith(b"From "):  # an mbox envelope line
        newline = raw.find(b"\n")
        start = newline + 1 if newline != -1 else len(raw)
    root, boundary = _new_part(raw, start, None, "text/plain", state)
    empty_multiparts: set[int] = set()  # id()s of multiparts cut off on purpose
    stack: list[_Frame] = []
    if root.type.startswith("multipart/"):
        if boundary is None:
            state.defect("multipart without a boundary parameter")
            _as_text_leaf(root)
        else:
            root.sub_parts = []
            stack.append(_Frame(root, boundary))
    position = root.body_start
    patterns: dict[tuple[bytes, ...], re.Pattern[bytes]] = {}
    delimiters: _Delimiters | None = None
    while stack:
        if delimiters is None:
            delimiters = _Delimiters(tuple(frame.boundary for frame in stack), patterns)
        match = delimiters.search(raw, position)
        if match is None:
            state.defect("multipart not closed")
            break
        at = match.start - _eol_before(raw, match.start)  # the line end belongs to the delimiter
        index = max(i for i, frame in enumerate(stack) if frame.boundary == match.boundary)
        for frame in stack[index:]:
            if frame.child is not None:
                frame.child.body_end = max(frame.child.body_start, at)
                frame.child = None
        if len(stack) - 1 > index:
            state.defect("multipart closed by an enclosing boundary")
            del stack[index + 1 :]
            delimiters = None
        frame = stack[index]
        position = match.end
        if raw.startswith(b"\n", position):
            position += 1
        if match.closing:  # the close delimiter: the epilogue follows
            stack.pop()
            delimiters = None
            continue
        if state.parts >= MAX_PARTS:
            state.truncated = True
            state.defect(f"more than {MAX_PARTS} parts")
            break
        default_type = "message/rfc822" if frame.part.type == "multipart/digest" else "text/plain"
        child, child_boundary = _new_part(raw, position, delimiters, default_type, state)
        assert frame.part.sub_parts is not None
        frame.part.sub_parts.append(child)
        frame.child = child
        position = child.body_start
        if not child.type.startswith("multipart/"):
            continue
        if child_boundary is None:
            state.defect("multipart without a boundary parameter")
            _as_text_leaf(child)
        elif len(stack) >= MAX_DEPTH:
            state.truncated = True
            state.defect(f"multipart nested deeper than {MAX_DEPTH}")
            child.sub_parts = []
            empty_multiparts.add(id(child))
        elif any(open_frame.boundary == child_boundary for open_frame in stack):
            # The same boundary as an enclosing multipart: its delimiters are the outer
            # one's. (This is how a "cyclic" structure ends up: it can't nest.)
            state.defect("multipart reuses an enclosing boundary")
            child.sub_parts = []
            empty_multiparts.add(id(child))
        else:
            child.sub_parts = []
            stack.append(_Frame(child, child_boundary))
            delimiters = None
    if state.truncated and stack:
        # Cut off: what was left open ends where the reading stopped.
        for frame in stack:
            if frame.child is not None and frame.child.body_end == len(raw):
                frame.child.body_end = max(frame.child.body_start, position)
    _finish(root, empty_multiparts, state)
    return root


def _as_text_leaf(part: BodyPart) -> None:
    # A multipart whose parts can't be found: its content is shown as text (what
    # RFC 2045 §5.2 suggests for an unusable Content-Type).
    part.type = "text/plain"
    part.charset = part.charset or "us-ascii"
    part.sub_parts = None


def _finish(root: BodyPart, empty_multiparts: set[int], state: _State) -> None:
    """partIds for the leaves (depth first), multiparts without parts made text."""
    number = 0
    for part in root.walk():
        if part.sub_parts is not None and not part.sub_parts and id(part) not in empty_multiparts:
            state.defect("multipart without any part")
            _as_text_leaf(part)
        if part.sub_parts is None:
            number += 1
            part.part_id = str(number)
        else:
            part.part_id = None


# -- Transfer and charset decoding ------------------------------------------------------------------

_BASE64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_BASE64_DELETE = bytes(set(range(256)) - set(_BASE64_KEEP))
_WHITESPACE = b" \t\r\n"
_PADDING = re.compile(rb"=+")
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


def _base64(data: bytes) -> tuple[bytes, bool]:
    clean = data.translate(None, _BASE64_DELETE)
    problem = len(clean) != len(data.translate(None, _WHITESPACE))
    chunks = _PADDING.split(clean) if b"=" in clean else [clean]
    out = bytearray()
    for chunk in chunks:
        if len(chunk) % 4 == 1:  # a lone sextet can't make an octet
            chunk = chunk[:-1]
            problem = True
        chunk += b"=" * (-len(chunk) % 4)
        try:
            out += binascii.a2b_base64(chunk)
        except (binascii.Error, ValueError):
            problem = True
    return bytes(out), problem


def _quoted_printable(data: bytes) -> bytes:
    # RFC 2045 §6.7 (3): trailing white space is deleted when decoding; "=" at a line
    # end is a soft line break. Invalid "=XY" sequences stay as they are.
    return binascii.a2b_qp(_QP_TRAILING_SPACE.sub(b"", data))


def _uudecode(data: bytes) -> tuple[bytes, bool]:
    out = bytearray()
    problem = False
    started = False
    for line in data.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`"):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders get the length character wrong: decode what the line holds.
            try:
                count = (((line[0] - 32) & 63) * 4 + 5) // 3
                out += binascii.a2b_uu(line[:count])
            except (binascii.Error, IndexError):
                problem = True
    return bytes(out), problem or not started


def decode_transfer(data: bytes, encoding: str) -> tuple[bytes, bool]:
    """(decoded octets, whether there was a problem) for a Content-Transfer-Encoding.
    An unknown encoding is treated as none (RFC 8621 §4.1.4 blobId) and is a problem."""
    if encoding in _IDENTITY_ENCODINGS:
        return data, False
    if encoding == "base64":
        return _base64(data)
    if encoding == "quoted-printable":
        return _quoted_printable(data), False
    if encoding in ("x-uuencode", "uuencode", "x-uue"):
        return _uudecode(data)
    return data, True


_SURROGATE_CODECS = ("utf-16", "utf-32", "utf-7")
_SURROGATES = re.compile("[\ud800-\udfff]")


def decode_charset(data: bytes, charset: str | None) -> tuple[str, bool]:
    """(text, whether there was a problem): the octets in their charset, U+FFFD for
    what doesn't decode (RFC 8621 §4.1.4 bodyValues).

    Heuristics RFC 8621 allows: 8-bit octets under us-ascii (or no charset) are read
    as UTF-8 when they are valid UTF-8 (the usual reason for the mislabel), else as
    windows-1252; an unknown charset is read the same way and reported as a problem.
    """
    codec = charset_codec(charset) if charset else "ascii"
    problem = False
    if codec is None:
        problem = True
        codec = "ascii"
    if codec == "ascii":
        if data.isascii():
            return data.decode("ascii"), problem
        try:
            return data.decode("utf-8"), problem
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace"), True
    try:
        text = data.decode(codec)
    except (UnicodeError, ValueError, LookupError):
        problem = True
        try:
            text = data.decode(codec, "replace")
        except (UnicodeError, ValueError, LookupError):
            text = data.decode("utf-8", "replace")
    if codec.startswith(_SURROGATE_CODECS) and _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
        problem = True
    return text, problem


def _part_fields(part: BodyPart | Mapping[str, Any]) -> tuple[int, int, str, str, str | None]:
    """(body start, body end, encoding, type, charset) of a BodyPart or its dict form."""
    if isinstance(part, BodyPart):
        return part.body_start, part.body_end, part.encoding, part.type, part.charset
    return (
        int(part.get("bodyStart") or 0),
        int(part.get("bodyEnd") or 0),
        str(part.get("encoding") or ""),
        str(part.get("type") or "text/plain"),
        part.get("charset"),
    )


def _content(raw: bytes, part: BodyPart | Mapping[str, Any]) -> tuple[bytes, bool]:
    start, end, encoding, _type, _charset = _part_fields(part)
    return decode_transfer(raw[start:end], encoding)


def part_content(raw: bytes, part: BodyPart | Mapping[str, Any]) -> bytes:
    """The octets of one part (its blob, RFC 8621 §4.1.4): its content in ``raw`` (the
    message it was parsed from) with the Content-Transfer-Encoding decoded."""
    return _content(raw, part)[0]


def part_text(raw: bytes, part: BodyPart | Mapping[str, Any]) -> tuple[str, bool]:
    """(text, encoding problem) of a text part: transfer and charset decoded, CRLF as LF."""
    data, problem = _content(raw, part)
    charset = _part_fields(part)[4]
    text, charset_problem = decode_charset(data, charset)
    return text.replace("\r\n", "\n"), problem or charset_problem


_TAG_START = re.compile(r"<[A-Za-z/!?]")


def truncate_utf8(text: str, max_bytes: int, *, html_text: bool = False) -> tuple[str, bool]:
    """(text, truncated): at most ``max_bytes`` octets of UTF-8, cut on a character
    boundary (RFC 8621 §4.2 maxBodyValueBytes), and not inside an HTML tag."""
    if max_bytes <= 0 or len(text) * 4 <= max_bytes:
        return text, False
    if len(text) <= max_bytes and len(text.encode("utf-8")) <= max_bytes:
        return text, False
    encoded = text[: max_bytes + 1].encode("utf-8")
    cut = max_bytes
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:  # a continuation octet
        cut -= 1
    result = encoded[:cut].decode("utf-8")
    if html_text:
        opening = result.rfind("<")
        if opening > result.rfind(">") and _TAG_START.match(result, opening):
            result = result[:opening]
    return result, True


def body_value(raw: bytes, part: BodyPart | Mapping[str, Any], max_bytes: int | None = None) -> dict[str, Any]:
    """The EmailBodyValue of a text part (RFC 8621 §4.1.4): value, isEncodingProblem,
    isTruncated (to ``max_bytes`` octets of UTF-8 when it is given and > 0)."""
    text, problem = part_text(raw, part)
    truncated = False
    if max_bytes:
        text, truncated = truncate_utf8(text, max_bytes, html_text=_part_fields(part)[3] == "text/html")
    return {"value": text, "isEncodingProblem": problem, "isTruncated": truncated}


# -- Text for the preview and the search index ----------------------------------------------------

_SKIPPED_ELEMENT = re.compile(r"<(script|style|head|title|template)\b|<!--", re.I)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^<>]*>|<[!?][^<>]*>")
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "tr", "ul",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
# The horizontal white space _tidy collapses: each one but the space becomes a space first
# (a translate, only if the text holds one), then runs of spaces one space (a search for a
# literal, where a character class with a non-ASCII member is tried at every position).
_ODD_SPACES = "\t\r\f\v\u00a0"
_ODD_SPACE_TABLE = str.maketrans(dict.fromkeys(_ODD_SPACES, " "))
_SPACE_RUNS = re.compile("  +")
_OTHER_SPACE = re.compile(r"[^\S \n]")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_LINE_EDGES = re.compile(r"[^\S\n]*\n[^\S\n]*")
_NEWLINES = re.compile(r"\n+")


@lru_cache(maxsize=16)
def _closing(name: str) -> re.Pattern[str]:
    return re.compile(r"</" + name + r"\s*>", re.I)


def html_to_text(source: str) -> str:
    """The readable text of an HTML body: scripts, styles, the head and comments
    dropped, block elements as line breaks, entities decoded. Linear time (no HTML
    parser: unterminated constructs in hostile mail make those quadratic)."""
    kept: list[str] = []
    position = 0
    while True:
        match = _SKIPPED_ELEMENT.search(source, position)
        if match is None:
            kept.append(source[position:])
            break
        kept.append(source[position : match.start()])
        if match.group(1) is None:  # a comment
            end = source.find("-->", match.end())
            position = len(source) if end == -1 else end + 3
        else:
            closing = _closing(match.group(1).lower()).search(source, match.end())
            position = len(source) if closing is None else closing.end()
    text = "".join(kept)

    def tag(match: re.Match[str]) -> str:
        name = (match.group(2) or "").lower()
        if name in _BLOCK_TAGS:
            return "\n"
        if name in _CELL_TAGS:
            return " "
        return ""

    text = html.unescape(_TAG.sub(tag, text))
    return _NEWLINES.sub("\n", _tidy(text))


def _tidy(text: str) -> str:
    # Runs of spaces, tabs... as one space (a lone space, the common case, is left alone).
    text = text.replace("\r\n", "\n")
    if any(space in text for space in _ODD_SPACES):
        text = text.translate(_ODD_SPACE_TABLE)
    if "  " in text:
        text = _SPACE_RUNS.sub(" ", text)
    # Every line stripped (the white space around each line break goes; the text's own
    # ends go with the final strip), without a Python step per line: with only spaces
    # left (at most one on each side of a break), two replaces do it.
    if _OTHER_SPACE.search(text):
        text = _LINE_EDGES.sub("\n", text)
    else:
        text = text.replace(" \n", "\n").replace("\n ", "\n")
    return _BLANK_LINES.sub("\n\n", text).strip()


def _preview(texts: list[str]) -> str:
    """A preview (RFC 8621 §4.1.4): the start of the body, quoted lines skipped,
    white space collapsed, at most 256 characters (UTF-16 code units, as JSON
    clients count them)."""
    joined = "\n".join(texts)[: PREVIEW_LENGTH * 64]
    lines = joined.split("\n")
    unquoted = [line for line in lines if not line.lstrip().startswith(">")]
    chosen = unquoted if any(line.strip() for line in unquoted) else lines
    preview = " ".join(" ".join(chosen).split())[:PREVIEW_LENGTH]
    while len(preview.encode("utf-16-le")) > 2 * PREVIEW_LENGTH:
        preview = preview[:-1]
    return preview


def _address_text(addresses: list[Address] | None) -> str:
    return " ".join(" ".join(filter(None, (address.get("name"), address.get("email")))) for address in addresses or ())


def _limit(text: str) -> str:
    return text[:SEARCH_TEXT_LIMIT]


_CID_REFERENCE = re.compile(r"cid:([^\s\"'<>)]+)", re.I)


# -- The parsed message ---------------------------------------------------------------------------


def _addresses_or_none(headers: list[Header], name: str) -> list[Address] | None:
    return header_value(headers, name, "Addresses")


@dataclass
class ParsedMessage:
    """Everything RFC 8621 §4.1 derives from the message octets (see the module doc).

    ``text_body``, ``html_body`` and ``attachments`` hold parts of ``body_structure``
    (to_dict() stores them as partIds). Addresses are EmailAddress dicts.
    """

    headers: list[Header]
    size: int
    message_id: list[str] | None = None
    in_reply_to: list[str] | None = None
    references: list[str] | None = None
    sent_at: datetime | None = None
    subject: str | None = None
    from_: list[Address] | None = None
    sender: list[Address] | None = None
    reply_to: list[Address] | None = None
    to: list[Address] | None = None
    cc: list[Address] | None = None
    bcc: list[Address] | None = None
    body_structure: BodyPart | None = None
    text_body: list[BodyPart] = field(default_factory=list)
    html_body: list[BodyPart] = field(default_factory=list)
    attachments: list[BodyPart] = field(default_factory=list)
    has_attachment: bool = False
    preview: str = ""
    # Fields for the search index: subject, from, to, cc, bcc, body, attachments, headers.
    search_text: dict[str, str] = field(default_factory=dict)
    # The structure was cut off by a limit (MAX_DEPTH, MAX_PARTS, MAX_HEADERS).
    truncated: bool = False
    # What was wrong with the message, for logs and tests (not for clients).
    defects: list[str] = field(default_factory=list)
    # Not stored: the charset-decoded text of each text/* leaf by partId, and that text as
    # the index reads it (tidied; text/html without markup), for Sieve's body test at
    # delivery, which would otherwise decode the same parts again.
    texts: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def text_body_ids(self) -> list[str]:
        return [part.part_id for part in self.text_body if part.part_id is not None]

    @property
    def html_body_ids(self) -> list[str]:
        return [part.part_id for part in self.html_body if part.part_id is not None]

    @property
    def attachment_ids(self) -> list[str]:
        return [part.part_id for part in self.attachments if part.part_id is not None]

    def part(self, part_id: str) -> BodyPart | None:
        """The part with this partId, or None."""
        if self.body_structure is None:
            return None
        return next((part for part in self.body_structure.walk() if part.part_id == part_id), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the Email row stores it); from_dict() reads it back."""
        return {
            "version": FORMAT_VERSION,
            "size": self.size,
            "headers": [header.to_dict() for header in self.headers],
            "messageId": self.message_id,
            "inReplyTo": self.in_reply_to,
            "references": self.references,
            "sentAt": self.sent_at.isoformat() if self.sent_at is not None else None,
            "subject": self.subject,
            "from": self.from_,
            "sender": self.sender,
            "replyTo": self.reply_to,
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "bodyStructure": self.body_structure.to_dict() if self.body_structure is not None else None,
            "textBody": self.text_body_ids,
            "htmlBody": self.html_body_ids,
            "attachments": self.attachment_ids,
            "hasAttachment": self.has_attachment,
            "preview": self.preview,
            "searchText": self.search_text,
            "truncated": self.truncated,
            "defects": self.defects,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ParsedMessage:
        data = data or {}
        headers = [
            Header(str(item.get("name", "")), str(item.get("value", "")))
            if isinstance(item, Mapping)
            else Header(str(item[0]), str(item[1]))
            for item in data.get("headers") or ()
        ]
        structure_data = data.get("bodyStructure")
        structure = BodyPart.from_dict(structure_data) if structure_data else None
        by_id = {part.part_id: part for part in structure.walk()} if structure is not None else {}

        def parts(key: str) -> list[BodyPart]:
            return [by_id[part_id] for part_id in data.get(key) or () if part_id in by_id]

        sent_at = data.get("sentAt")
        try:
            when = datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else None
        except ValueError:
            when = None
        return cls(
            headers=headers,
            size=int(data.get("size") or 0),
            message_id=data.get("messageId"),
            in_reply_to=data.get("inReplyTo"),
            references=data.get("references"),
            sent_at=when,
            subject=data.get("subject"),
            from_=data.get("from"),
            sender=data.get("sender"),
            reply_to=data.get("replyTo"),
            to=data.get("to"),
            cc=data.get("cc"),
            bcc=data.get("bcc"),
            body_structure=structure,
            text_body=parts("textBody"),
            html_body=parts("htmlBody"),
            attachments=parts("attachments"),
            has_attachment=bool(data.get("hasAttachment")),
            preview=str(data.get("preview") or ""),
            search_text=dict(data.get("searchText") or {}),
            truncated=bool(data.get("truncated")),
            defects=list(data.get("defects") or ()),
        )


def _sent_at(headers: list[Header]) -> datetime | None:
    values = [header.value for header in headers if header.name.lower() == "date"]
    if not values:
        return None
    when = parse_date(values[-1])
    if when is None:
        return None
    try:
        when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return when


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a message (RFC 5322, MIME) into a ParsedMessage. Never raises: malformed
    input is read as well as it can be, limits cut the structure (``truncated``)."""
    raw = bytes(raw)
    state = _State()
    try:
        structure = _parse_structure(raw, state)
    except Exception:  # a bug, not the input: still store the message, as text
        logger.exception("MIME structure parse failed")
        state.defect("internal parser error")
        structure = _fallback_structure(raw, state)
    headers = structure.headers
    parsed = ParsedMessage(headers=headers, size=len(raw), truncated=state.truncated, defects=state.defects)
    try:
        _fill(parsed, raw, structure)
    except Exception:
        logger.exception("message property extraction failed")
        parsed.defects.append("internal parser error")
    return parsed


def _fallback_structure(raw: bytes, state: _State) -> BodyPart:
    try:
        headers, body_start = _read_headers(raw, 0, None, state)
    except Exception:
        headers, body_start = [], 0
    part = BodyPart(part_id="1", type="text/plain", headers=headers, charset="us-ascii")
    part.body_start, part.body_end = body_start, len(raw)
    part.size = len(raw) - body_start
    return part


def _fill(parsed: ParsedMessage, raw: bytes, structure: BodyPart) -> None:
    headers = parsed.headers
    # RFC 8621 §4.1.3 convenience properties: the last instance of each field.
    parsed.message_id = header_value(headers, "Message-ID", "MessageIds")
    parsed.in_reply_to = header_value(headers, "In-Reply-To", "MessageIds")
    parsed.references = header_value(headers, "References", "MessageIds")
    parsed.subject = header_value(headers, "Subject", "Text")
    parsed.sent_at = _sent_at(headers)
    parsed.from_ = _addresses_or_none(headers, "From")
    parsed.sender = _addresses_or_none(headers, "Sender")
    parsed.reply_to = _addresses_or_none(headers, "Reply-To")
    parsed.to = _addresses_or_none(headers, "To")
    parsed.cc = _addresses_or_none(headers, "Cc")
    parsed.bcc = _addresses_or_none(headers, "Bcc")

    parsed.body_structure = structure
    # Sizes: the decoded length of every leaf (RFC 8621 §4.1.4 size); the text of
    # text parts is kept for the preview and the index.
    texts: dict[int, str] = {}
    for part in structure.walk():
        if part.sub_parts is not None:
            part.size = max(part.body_end - part.body_start, 0)
            continue
        data, _problem = _content(raw, part)
        part.size = len(data)
        if part.type.startswith("text/"):
            text, _ = decode_charset(data, part.charset)
            texts[id(part)] = readable = html_to_text(text) if part.type == "text/html" else _tidy(text)
            if part.part_id is not None:
                parsed.texts[part.part_id] = (text, readable)

    text_body, html_body, attachments = classify_parts(structure)
    parsed.text_body, parsed.html_body, parsed.attachments = text_body, html_body, attachments

    # hasAttachment (RFC 8621 §4.1.4): an attachment that isn't inline, leaving out
    # images an HTML body shows through cid: links.
    referenced: set[str] = set()
    for part in html_body:
        if part.type == "text/html":
            data = raw[part.body_start : part.body_end]
            if b"cid:" in data or b"CID:" in data or part.encoding not in _IDENTITY_ENCODINGS:
                source, _ = decode_charset(_content(raw, part)[0], part.charset)
                referenced.update(reference.lower() for reference in _CID_REFERENCE.findall(source))
    parsed.has_attachment = any(
        part.disposition != "inline" and not (part.cid and part.cid.lower() in referenced) for part in attachments
    )

    body_texts = [texts[id(part)] for part in text_body if id(part) in texts]
    parsed.preview = _preview([text for text in body_texts if text])
    attachment_texts = [part.name for part in attachments if part.name]
    attachment_texts += [texts[id(part)] for part in attachments if id(part) in texts]
    parsed.search_text = {
        "subject": parsed.subject or "",
        "from": _address_text(parsed.from_),
        "to": _address_text(parsed.to),
        "cc": _address_text(parsed.cc),
        "bcc": _address_text(parsed.bcc),
        "body": _limit("\n".join(body_texts)),
        "attachments": _limit("\n".join(attachment_texts)),
        "headers": _headers_text(headers),
    }


def _headers_text(headers: list[Header]) -> str:
    lines: list[str] = []
    length = 0
    for header in headers:
        if length >= SEARCH_TEXT_LIMIT:
            break
        line = f"{header.name}: {as_text(header.value)}"
        lines.append(line)
        length += len(line) + 1
    return _limit("\n".join(lines))
