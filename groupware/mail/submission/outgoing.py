"""The octets that leave the server: line ends, Bcc removal, limits, DKIM.

Checks here run before anything is queued (RFC 8621 §7.5: the Bcc header field is
removed during delivery; RFC 5322 §2.1.1: lines of at most 998 octets; CR and LF only
as the CRLF line end, so nothing can smuggle extra header fields or SMTP commands).
"""

from __future__ import annotations

import re

from groupware.mail.submission.dkim_keys import dkim_key_for, dkim_sign

MAX_LINE = 998
_LINE_END = re.compile(rb"\r\n|\n")


class OutgoingError(Exception):
    """The message can't be sent as it is; ``kind`` is the SetError type."""

    def __init__(self, kind: str, description: str, **extra: object) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.extra = extra


def split_header(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (CRLF-terminated, as given) and the body after the blank line."""
    lines: list[bytes] = []
    position = 0
    while position < len(raw):
        end = raw.find(b"\n", position)
        end = len(raw) if end == -1 else end + 1
        line = raw[position:end]
        position = end
        if line in (b"\r\n", b"\n"):
            return lines, raw[position:]
        lines.append(line)
    return lines, b""


def normalize_line_ends(raw: bytes) -> bytes:
    """Every line end CRLF; a CR that isn't part of one is refused (header injection)."""
    text = _LINE_END.sub(b"\r\n", raw)
    if b"\r" in text.replace(b"\r\n", b""):
        raise OutgoingError("invalidEmail", "the message has a CR that does not end a line", properties=["headers"])
    if b"\x00" in text:
        raise OutgoingError("invalidEmail", "the message contains NUL octets", properties=["bodyStructure"])
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def without_fields(header_lines: list[bytes], names: set[bytes]) -> list[bytes]:
    """The header lines without the named fields (and their folded continuation lines)."""
    kept: list[bytes] = []
    dropping = False
    for line in header_lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name in names
        if not dropping:
            kept.append(line)
    return kept


def outgoing_message(raw: bytes, *, from_address: str | None, max_size: int) -> bytes:
    """The message as it is sent: CRLF, no Bcc, DKIM-signed when the From domain has a key."""
    text = normalize_line_ends(raw)
    header, body = split_header(text)
    if not header:
        raise OutgoingError("invalidEmail", "the message has no header fields", properties=["headers"])
    for line in header:
        if line[:1] not in (b" ", b"\t") and b":" not in line:
            raise OutgoingError("invalidEmail", "a header line is not a field", properties=["headers"])
    if any(len(line.rstrip(b"\r")) > MAX_LINE for line in text.split(b"\n")):
        raise OutgoingError("invalidEmail", f"a line is longer than {MAX_LINE} octets", properties=["bodyStructure"])
    message = b"".join(without_fields(header, {b"bcc"})) + b"\r\n" + body
    if from_address:
        key = dkim_key_for(from_address)
        if key is not None:
            message = dkim_sign(message, key)
    if len(message) > max_size:
        raise OutgoingError("tooLarge", f"messages are limited to {max_size} octets", maxSize=max_size)
    return message
