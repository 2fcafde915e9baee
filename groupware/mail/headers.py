"""Header field parsed forms of RFC 8621 §4.1.2 over raw header values.

Every function takes the Raw form of one header field value: the octets after the colon
up to (excluding) the field's final line end, decoded as UTF-8 with U+FFFD for invalid
octets and NUL dropped (``decode_raw``), folding kept. None of them raises: invalid input
degrades the way §4.1.2 asks (null, best-effort addresses, undecoded encoded-words).

``header_value`` implements the ``header:{name}:as{Form}[:all]`` properties (§4.1.3) and
``form_allowed`` says which forms a field may be fetched or set in (§4.1.2: anything
else is the caller's invalidArguments / invalidProperties).
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "HEADER_FORMS",
    "Header",
    "as_addresses",
    "as_date",
    "as_grouped_addresses",
    "as_message_ids",
    "as_raw",
    "as_text",
    "as_urls",
    "charset_codec",
    "decode_encoded_words",
    "decode_raw",
    "form_allowed",
    "header_value",
    "parse_date",
    "parse_form",
    "unfold",
]

# RFC 8621 §4.1.2: the parsed forms, as they appear in ``header:{name}:as{Form}``.
HEADER_FORMS: tuple[str, ...] = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")

# Parsed forms read at most this many characters of a value: no real field comes near
# it, and it bounds the work a hostile multi-megabyte field can cause.
MAX_PARSED_LENGTH = 100_000

Address = dict[str, Any]  # EmailAddress: {"name": str | None, "email": str}
AddressGroup = dict[str, Any]  # EmailAddressGroup: {"name": str | None, "addresses": [Address]}


class Header(NamedTuple):
    """One header field: its name as written and its value in Raw form (RFC 8621 §4.1.3
    EmailHeader). A tuple, so ``name, value = header`` works too."""

    name: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value}


# -- Raw octets and unfolding ---------------------------------------------------------------


def decode_raw(data: bytes) -> str:
    """The Raw form of header octets (RFC 8621 §4.1.2.1): UTF-8 (RFC 6532), every octet
    run that isn't UTF-8 replaced by U+FFFD, NUL dropped. Never fails."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "") if "\x00" in text else text


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_STRAY_EOL = re.compile(r"[\r\n]")


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3: remove every line end followed by white space (the white space
    stays). Stray line ends that don't fold (malformed input) are dropped too."""
    if "\n" not in value and "\r" not in value:
        return value
    return _STRAY_EOL.sub("", _FOLD.sub("", value))


def as_raw(value: str) -> str:
    """RFC 8621 §4.1.2.1 Raw: the value as stored."""
    return value


# -- Character sets --------------------------------------------------------------------------

# Labels seen in mail that Python doesn't know, or knows as a narrower set than the
# senders meant (the WHATWG Encoding Standard makes the same substitutions).
_CHARSET_ALIASES = {
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "big5": "cp950",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-6-i": "iso8859-6",
    "iso-8859-6-e": "iso8859-6",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-8-e": "iso8859-8",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-user-defined": "cp1252",
}
# Text codecs that aren't character sets: never decode mail with them.
_NOT_CHARSETS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"})
_CHARSET_NAME = re.compile(r"^[A-Za-z0-9._:+()-]{1,40}$")


@lru_cache(maxsize=512)
def charset_codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label (RFC 2978), or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip('"').strip().lower()
    if not _CHARSET_NAME.match(label):
        return None
    label = _CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


# -- RFC 2047 encoded-words ------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ENCODED_RUN = re.compile(r"(?:=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)+")
_WSP_SPLIT = re.compile(r"([ \t]+)")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_REPLACEMENT = "\ufffd"


def _b64_lenient(text: bytes) -> bytes | None:
    data = _NOT_BASE64.sub(b"", text.split(b"=", 1)[0])
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return None


_NON_ASCII_RUN = re.compile(r"([^\x00-\x7f]+)")
Segment = tuple[str, bytes | str | None]  # (codec, octets | literal text | None: undecodable)


def _word_segments(word: str) -> list[Segment] | None:
    """[(codec, octets)] of a word made only of encoded-words, or None if it isn't one
    or names an unknown charset (RFC 8621 §4.1.2.2: only encoded sections "with a known
    character set" are decoded). Raw 8-bit text inside a Q word (seen in the wild) is
    kept as it was read."""
    if not _ENCODED_RUN.fullmatch(word):
        return None
    segments: list[Segment] = []
    for match in _ENCODED_WORD.finditer(word):
        # RFC 2231 §5: "charset*language" in an encoded-word.
        codec = charset_codec(match.group(1).split("*", 1)[0])
        if codec is None:
            return None
        text = match.group(3)
        if match.group(2) in "bB":
            segments.append((codec, _b64_lenient(text.encode("ascii", "ignore"))))
            continue
        for index, piece in enumerate(_NON_ASCII_RUN.split(text)):
            if index % 2:
                segments.append(("", piece))
            elif piece:
                segments.append((codec, binascii.a2b_qp(piece.encode("ascii"), header=True)))
    return segments


def _decode_segments(segments: list[Segment]) -> str:
    # Adjacent words in one charset are decoded together: senders split multi-octet
    # characters across encoded-words (not allowed by RFC 2047 §5, common in the wild).
    out: list[str] = []
    index = 0
    while index < len(segments):
        codec, data = segments[index]
        index += 1
        if data is None:
            out.append(_REPLACEMENT)
            continue
        if isinstance(data, str):
            out.append(data)
            continue
        chunk = bytearray(data)
        while index < len(segments) and segments[index][0] == codec and isinstance(segments[index][1], bytes):
            chunk += segments[index][1]  # type: ignore[operator]
            index += 1
        # RFC 8621 §4.1.2.2: NUL and control characters that were encoded are dropped.
        out.append(_CONTROLS.sub("", bytes(chunk).decode(codec, "replace")))
    return "".join(out)


def decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded-words in unstructured text (RFC 2047 §5(1), §6.2).

    A word is decoded only when it is made entirely of encoded-words and delimited by
    white space or the ends of the value (text that merely looks like an encoded-word
    is kept, RFC 8621 §4.1.2.2); white space between two decoded words is dropped.
    Directly adjacent encoded-words (no white space) are decoded too.
    """
    if "=?" not in value:
        return value
    pieces = _WSP_SPLIT.split(value)
    out: list[str] = []
    run: list[Segment] = []
    pending_space = ""
    for index, piece in enumerate(pieces):
        if index % 2:
            pending_space = piece
            continue
        segments = _word_segments(piece) if piece else None
        if segments is not None:
            if not run:
                out.append(pending_space)
            run.extend(segments)
        else:
            if run:
                out.append(_decode_segments(run))
                run = []
            out.append(pending_space)
            out.append(piece)
        pending_space = ""
    if run:
        out.append(_decode_segments(run))
    out.append(pending_space)
    return "".join(out)


def _nfc(value: str) -> str:
    return value if value.isascii() else unicodedata.normalize("NFC", value)


# -- Text ------------------------------------------------------------------------------------


def as_text(value: str) -> str:
    """RFC 8621 §4.1.2.2 Text: unfolded, encoded-words decoded, NFC, trimmed."""
    value = value[:MAX_PARSED_LENGTH]
    return _nfc(decode_encoded_words(unfold(value))).strip(" \t")


# -- Structured-field tokens (RFC 5322 §3.2) ------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "ws", "atom", "qs", "comment", "angle", "special"
    text: str  # atom text, unescaped qs/comment/angle content, or the special


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)(?:"|\\?\Z)', re.S)
# Always matches (at least "<"): an angle-addr runs to its ">" or the end of the value.
_ANGLE = re.compile(r'<((?:[^>"\\]|\\.|\\\Z|"(?:[^"\\]|\\.)*(?:"|\\?\Z))*)>?', re.S)
_ATOMISH = re.compile(r'[^ \t\r\n"(<,:;]+')
_WS = re.compile(r"[ \t\r\n]+")
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def _unescape(text: str) -> str:
    return _QUOTED_PAIR.sub(r"\1", text) if "\\" in text else text


_PAREN_OR_PAIR = re.compile(r"\\.|[()]", re.S)


def _comment_ends(value: str) -> dict[int, int]:
    """For every "(" that opens a comment closed later (RFC 5322 §3.2.2, nested, with
    quoted-pairs), the index after its ")": one pass, so that many unclosed "(" cost
    no more than one."""
    ends: dict[int, int] = {}
    opened: list[int] = []
    for match in _PAREN_OR_PAIR.finditer(value):
        char = match.group()
        if char == "(":
            opened.append(match.start())
        elif char == ")" and opened:
            ends[opened.pop()] = match.end()
    return ends


def _tokenize(value: str) -> list[_Token]:
    """Structured-field tokens, best effort (RFC 8621 §4.1.2.3): an unterminated angle
    bracket runs to the end of the value, an unterminated quote or comment is text."""
    tokens: list[_Token] = []
    comment_ends: dict[int, int] | None = None

    def _comment_end(start: int) -> int:
        nonlocal comment_ends
        if comment_ends is None:
            comment_ends = _comment_ends(value)
        return comment_ends.get(start, 0)

    pos = 0
    length = len(value)
    while pos < length:
        char = value[pos]
        if char in " \t\r\n":
            end = _WS.match(value, pos).end()  # type: ignore[union-attr]
            tokens.append(_Token("ws", value[pos:end]))
        elif char == '"' and (match := _QUOTED.match(value, pos)) is not None and match.group().endswith('"'):
            end = match.end()
            tokens.append(_Token("qs", _unescape(match.group(1))))
        elif char == "(" and (end := _comment_end(pos)):
            tokens.append(_Token("comment", _unescape(value[pos + 1 : end - 1])))
        elif char in '"(':
            # Unterminated: the quote or parenthesis is taken as an ordinary character,
            # so what follows (often the address itself) is still read.
            end = pos + 1
            tokens.append(_Token("atom", char))
        elif char == "<":
            match = _ANGLE.match(value, pos)
            assert match is not None
            end = match.end()
            tokens.append(_Token("angle", match.group(1)))
        elif char in ",:;":
            end = pos + 1
            tokens.append(_Token("special", char))
        else:
            match = _ATOMISH.match(value, pos)
            end = match.end() if match else pos + 1
            tokens.append(_Token("atom", value[pos:end]))
        pos = max(end, pos + 1)
    return tokens


def _phrase(tokens: Iterable[_Token]) -> str | None:
    """A display-name (RFC 5322 §3.2.5 phrase) as RFC 8621 §4.1.2.3 wants it: quotes
    removed, quoted-pairs decoded, encoded-words decoded, white space trimmed."""
    words: list[str] = []
    joined = False  # the previous token was a word, with nothing in between
    for token in tokens:
        if token.kind in ("atom", "qs"):
            if joined:
                words[-1] += token.text
            else:
                words.append(token.text)
            joined = True
        else:
            joined = False
    if not words:
        return None
    # Encoded-words inside quoted-strings are decoded too: RFC 2047 §5 forbids them
    # there, but mailers write them and every reader decodes them.
    name = _nfc(decode_encoded_words(unfold(" ".join(words)))).strip()
    return name or None


def _comment_text(text: str) -> str | None:
    name = _nfc(decode_encoded_words(unfold(text))).strip()
    return name or None


def _angle_address(text: str) -> str:
    """The addr-spec inside <...>: CFWS removed, an obsolete route (RFC 5322 §4.4) too."""
    parts: list[str] = []
    for token in _tokenize(text):
        if token.kind in ("ws", "comment"):
            continue
        if token.kind == "qs":
            parts.append('"' + token.text.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif token.kind == "angle":
            parts.append(token.text)
        else:
            parts.append(token.text)
    address = "".join(parts)
    if address.startswith("@") and ":" in address:
        address = address.split(":", 1)[1]
    return _nfc(address)


def _mailbox(tokens: list[_Token]) -> Address | None:
    """One mailbox (RFC 5322 §3.4) from the tokens between commas, best effort."""
    meaningful = [token for token in tokens if token.kind != "ws"]
    if not any(token.kind in ("atom", "qs", "angle") for token in meaningful):
        return None
    for index, token in enumerate(tokens):
        if token.kind == "angle":
            name = _phrase(tokens[:index])
            if name is None:
                # §4.1.2.3: no display-name, but a comment right after the address.
                after = [t for t in tokens[index + 1 :] if t.kind != "ws"]
                if after and after[0].kind == "comment":
                    name = _comment_text(after[0].text)
            return {"name": name, "email": _angle_address(token.text)}
    # No angle-addr: a bare addr-spec, maybe with a comment naming it.
    words: list[list[_Token]] = [[]]
    comment: str | None = None
    for token in tokens:
        if token.kind == "ws":
            if words[-1]:
                words.append([])
        elif token.kind == "comment":
            if comment is None and any(words):
                comment = _comment_text(token.text)
            if words[-1]:
                words.append([])
        else:
            words[-1].append(token)
    words = [word for word in words if word]

    def spell(word: list[_Token]) -> str:
        return "".join(
            '"' + t.text.replace("\\", "\\\\").replace('"', '\\"') + '"' if t.kind == "qs" else t.text for t in word
        )

    spelled = [spell(word) for word in words]
    with_at = [index for index, text in enumerate(spelled) if "@" in text.strip("@")]
    if len(with_at) == 1 and len(spelled) > 1 and spelled[with_at[0]].count("@") == 1:
        # "John Smith john@example.com": the word with the "@" is the address.
        at = with_at[0]
        name = _phrase([t for word in words[:at] for t in (*word, _Token("ws", " "))])
        return {"name": name or comment, "email": _nfc(spelled[at])}
    if any("@" in text for text in spelled):
        email = "".join(spelled)  # obsolete CFWS around "." and "@" (RFC 5322 §4.4)
    else:
        email = " ".join(spelled)  # not an address at all (a half-typed draft)
    return {"name": comment, "email": _nfc(email)}


def _groups(value: str) -> list[tuple[bool, str | None, list[Address]]]:
    """(is a group, group name, mailboxes) in order, from an address-list."""
    result: list[tuple[bool, str | None, list[Address]]] = []
    current: list[_Token] = []
    addressy = False  # current has an angle-addr or an "@": a ":" in it isn't a group's
    group: tuple[str | None, list[Address]] | None = None

    def flush() -> None:
        nonlocal addressy
        mailbox = _mailbox(current)
        current.clear()
        addressy = False
        if mailbox is None:
            return
        if group is not None:
            group[1].append(mailbox)
        elif result and not result[-1][0]:
            result[-1][2].append(mailbox)
        else:
            result.append((False, None, [mailbox]))

    for token in _tokenize(unfold(value[:MAX_PARSED_LENGTH])):
        if token.kind == "special" and token.text == ",":
            flush()
        elif token.kind == "special" and token.text == ":":
            if group is None and not addressy:
                group = (_phrase(current), [])
                current.clear()
            else:
                current.append(_Token("atom", ":"))
        elif token.kind == "special" and token.text == ";":
            flush()
            if group is not None:
                result.append((True, group[0], group[1]))
                group = None
        else:
            current.append(token)
            addressy = addressy or token.kind == "angle" or (token.kind == "atom" and "@" in token.text)
    flush()
    if group is not None:  # a group missing its ";"
        result.append((True, group[0], group[1]))
    return result


def as_grouped_addresses(value: str) -> list[AddressGroup]:
    """RFC 8621 §4.1.2.4 GroupedAddresses: mailboxes outside groups are collected,
    consecutive ones together, under a group named null."""
    return [{"name": name, "addresses": addresses} for _is_group, name, addresses in _groups(value)]


def as_addresses(value: str) -> list[Address]:
    """RFC 8621 §4.1.2.3 Addresses: every mailbox of the address-list, groups dropped."""
    return [address for _is_group, _name, addresses in _groups(value) for address in addresses]


# -- MessageIds, URLs --------------------------------------------------------------------------

_ID_JUNK = re.compile(r"[\s<>]")


def as_message_ids(value: str) -> list[str] | None:
    """RFC 8621 §4.1.2.5 MessageIds: the msg-ids (RFC 5322 §3.6.4) without CFWS and
    angle brackets, or null if there are none or one is malformed. Phrases between ids
    are skipped (the obsolete In-Reply-To/References syntax of RFC 5322 §4.5.4)."""
    tokens = _tokenize(unfold(value[:MAX_PARSED_LENGTH]))
    ids: list[str] = []
    bare: list[str] = []
    for token in tokens:
        if token.kind == "angle":
            identifier = _angle_address(token.text)
            if not identifier or _ID_JUNK.search(identifier):
                return None
            ids.append(identifier)
        elif token.kind == "atom":
            bare.append(token.text)
    if ids:
        return ids
    # A lone id without its brackets ("Message-ID: abc@host"): common enough to accept.
    if len(bare) == 1 and "@" in bare[0] and not any(t.kind in ("qs", "special") for t in tokens):
        return [bare[0]]
    return None


def as_urls(value: str) -> list[str] | None:
    """RFC 8621 §4.1.2.7 URLs: the <...> URLs of an RFC 2369 list, comments and white
    space removed, or null if there are none."""
    tokens = _tokenize(unfold(value[:MAX_PARSED_LENGTH]))
    urls = ["".join(token.text.split()) for token in tokens if token.kind == "angle"]
    urls = [url for url in urls if url]
    return urls or None


# -- Date ------------------------------------------------------------------------------------

_MONTHS = {
    name: index
    for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# RFC 5322 §4.3 obs-zone; military letters are treated as -0000 (they were misused).
_ZONES = {"ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5}
_ZONES |= {"mst": -7, "mdt": -6, "pst": -8, "pdt": -7}
_DATE = re.compile(
    r"^\s*(?:[A-Za-z]+\s*,?\s*)?"  # day-of-week, checked loosely
    r"(?P<day>\d{1,2})\s*[-\s]\s*(?P<month>[A-Za-z]{3,})\.?\s*[-\s]\s*(?P<year>\d{2,4})\s+"
    r"(?P<hour>\d{1,2})\s*:\s*(?P<minute>\d{2})(?:\s*:\s*(?P<second>\d{2}))?"
    r"(?:\s*(?P<zone>[+-]\d{4}|[A-Za-z]{1,5})\b)?"
)


def _strip_comments(value: str) -> str:
    out: list[str] = []
    for token in _tokenize(value):
        if token.kind in ("comment", "ws"):
            out.append(" ")
        elif token.kind == "angle":
            out.append(f"<{token.text}>")
        else:
            out.append(token.text)
    return "".join(out)


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 §3.3 date-time (obsolete forms of §4.3 included) as an aware datetime
    with the field's own offset (-0000 and unknown zones read as UTC), or None."""
    if len(value) > 1000:  # a date-time is some 40 characters, comments included
        return None
    text = _strip_comments(unfold(value))
    match = _DATE.match(text)
    try:
        if match is not None:
            month = _MONTHS.get(match.group("month")[:3].lower())
            if month is None:
                return None
            year_text = match.group("year")
            year = int(year_text)
            if len(year_text) == 2:  # RFC 5322 §4.3: 00-49 is 20xx, 50-99 is 19xx
                year += 2000 if year < 50 else 1900
            elif len(year_text) == 3:
                year += 1900
            second = int(match.group("second") or 0)
            offset = _zone_offset(match.group("zone"))
            if offset is None:
                return None
            return datetime(
                year,
                month,
                int(match.group("day")),
                int(match.group("hour")),
                int(match.group("minute")),
                min(second, 59),  # a leap second (60) isn't representable
                tzinfo=timezone(offset),
            )
        # Other shapes in the wild (asctime-like): the standard library's lenient parser.
        parsed = parsedate_tz(text)
        if parsed is None:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        seconds = parsed[9] or 0
        if abs(seconds) >= 86400:
            return None
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone(timedelta(seconds=seconds)))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def _zone_offset(zone: str | None) -> timedelta | None:
    if zone is None:
        return timedelta(0)
    if zone[0] in "+-":
        hours, minutes = int(zone[1:3]), int(zone[3:5])
        if hours > 23 or minutes > 59:
            return None
        delta = timedelta(hours=hours, minutes=minutes)
        return -delta if zone[0] == "-" else delta
    return timedelta(hours=_ZONES.get(zone.lower(), 0))


def format_date(value: datetime) -> str:
    """RFC 8620 §1.4 Date (RFC 3339 date-time) keeping the offset; "Z" for UTC."""
    text = value.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def as_date(value: str) -> str | None:
    """RFC 8621 §4.1.2.6 Date: the date-time in RFC 3339 form with the field's own
    offset, or null if it doesn't parse."""
    parsed = parse_date(value)
    if parsed is None:
        return None
    try:
        parsed.astimezone(UTC)  # representable in UTC at all (year 1 / 9999 edges)?
    except (OverflowError, ValueError):
        return None
    return format_date(parsed)


# -- Forms and header properties --------------------------------------------------------------------

_FORM_PARSERS: dict[str, Callable[[str], Any]] = {
    "Raw": as_raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}

_ADDRESS_FIELDS = frozenset(
    {"from", "sender", "reply-to", "to", "cc", "bcc"}
    | {"resent-from", "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc"}
)
_MESSAGE_ID_FIELDS = frozenset({"message-id", "in-reply-to", "references", "resent-message-id"})
_DATE_FIELDS = frozenset({"date", "resent-date"})
_URL_FIELDS = frozenset({"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive"})
_TEXT_FIELDS = frozenset({"subject", "comments", "keywords", "list-id"})
# The fields RFC 5322 and RFC 2369 define: only the forms listed for them are allowed.
# Return-Path and Received are Raw only. (Resent-Reply-To is listed by RFC 8621.)
_DEFINED_FIELDS = (
    _ADDRESS_FIELDS
    | _MESSAGE_ID_FIELDS
    | _DATE_FIELDS
    | _URL_FIELDS
    | frozenset({"subject", "comments", "keywords", "return-path", "received"})
)
_ALLOWED = {
    "Text": _TEXT_FIELDS,
    "Addresses": _ADDRESS_FIELDS,
    "GroupedAddresses": _ADDRESS_FIELDS,
    "MessageIds": _MESSAGE_ID_FIELDS,
    "Date": _DATE_FIELDS,
    "URLs": _URL_FIELDS,
}


def canonical_form(form: str) -> str | None:
    """The form if it is one of HEADER_FORMS (spelt exactly: JSON property names are
    case-sensitive), else None."""
    return form if form in _FORM_PARSERS else None


def form_allowed(name: str, form: str) -> bool:
    """Whether header field ``name`` may be fetched or set in ``form`` (RFC 8621
    §4.1.2: each form lists its fields, plus any field not defined in RFC 5322 or
    RFC 2369). Raw is always allowed; an unknown form never is."""
    canonical = canonical_form(form)
    if canonical is None:
        return False
    if canonical == "Raw":
        return True
    lowered = name.lower()
    if lowered not in _DEFINED_FIELDS:
        return True
    return lowered in _ALLOWED[canonical]


def parse_form(value: str, form: str) -> Any:
    """One raw value in a parsed form (HEADER_FORMS); ValueError for an unknown form."""
    canonical = canonical_form(form)
    if canonical is None:
        raise ValueError(f"unknown header form {form!r}")
    return _FORM_PARSERS[canonical](value)


def _pairs(headers: Iterable[Any]) -> Iterable[tuple[str, str]]:
    for header in headers:
        if isinstance(header, dict):
            yield str(header.get("name", "")), str(header.get("value", ""))
        elif isinstance(header, (tuple, list)) and len(header) >= 2:
            yield str(header[0]), str(header[1])
        else:
            yield str(getattr(header, "name", "")), str(getattr(header, "value", ""))


def header_value(headers: Iterable[Any], name: str, form: str = "Raw", all_: bool = False) -> Any:
    """``header:{name}:as{form}[:all]`` (RFC 8621 §4.1.3) over headers given as
    (name, raw value) pairs, Header tuples or {"name", "value"} dicts.

    Names match case-insensitively. Without ``all_``: the last instance's value, or
    None when there is none; with it: every instance's value in order ([] if none).
    Check ``form_allowed`` first: this doesn't refuse forbidden forms.
    """
    wanted = name.lower()
    values = [value for field, value in _pairs(headers) if field.lower() == wanted]
    if all_:
        return [parse_form(value, form) for value in values]
    return parse_form(values[-1], form) if values else None
