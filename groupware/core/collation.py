"""Collations for sorting strings (RFC 4790, RFC 5051), computed in Python so results
are identical on every database backend."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

_ASCII_UPPER = {code: code - 32 for code in range(ord("a"), ord("z") + 1)}


def ascii_casemap(value: str) -> str:
    # RFC 4790 §9.2: a-z folded to A-Z, then octet order (code point order is the same).
    return value.translate(_ASCII_UPPER)


def unicode_casemap(value: str) -> str:
    # RFC 5051: titlecase each character, decompose (NFKD), compare octets.
    return unicodedata.normalize("NFKD", "".join(char.title() for char in value))


def ascii_numeric(value: str) -> tuple[int, int]:
    # RFC 4790 §9.1: the leading decimal digits as a number; no leading digit = infinity.
    digits = 0
    while digits < len(value) and value[digits] in "0123456789":
        digits += 1
    if digits == 0:
        return (1, 0)
    return (0, int(value[:digits]))


def octet(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


COLLATIONS: dict[str, Callable[[str], Any]] = {
    "i;ascii-casemap": ascii_casemap,
    "i;unicode-casemap": unicode_casemap,
    "i;ascii-numeric": ascii_numeric,
    "i;octet": octet,
}
DEFAULT_COLLATION = "i;unicode-casemap"
