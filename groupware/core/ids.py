"""Object ids (RFC 8620 §1.2): short, URL-safe, never all digits, never reused.

Rows have integer primary keys; the JMAP id is a one-letter type prefix and the key in
base 32 (lower-case letters and digits), so ids are compact and cheap to map back.
"""

from __future__ import annotations

import re

_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def encode(prefix: str, number: int) -> str:
    if number < 0:
        raise ValueError("ids are non-negative")
    digits = []
    while True:
        number, rest = divmod(number, 32)
        digits.append(_ALPHABET[rest])
        if number == 0:
            break
    return prefix + "".join(reversed(digits))


def decode(prefix: str, value: object) -> int | None:
    """The integer behind an id of this prefix, or None for anything else."""
    if not isinstance(value, str) or not value.startswith(prefix) or len(value) > 14:
        return None
    body = value[len(prefix) :]
    if not body or (len(body) > 1 and body[0] == "0"):
        return None
    try:
        return int(body, 32) if all(c in _ALPHABET for c in body) else None
    except ValueError:
        return None


def is_valid_id(value: object) -> bool:
    """RFC 8620 §1.2: 1-255 octets from the URL-safe base64 alphabet."""
    return isinstance(value, str) and _VALID_ID.match(value) is not None


def account_id(pk: int) -> str:
    return encode("a", pk)


def account_pk(value: object) -> int | None:
    return decode("a", value)
