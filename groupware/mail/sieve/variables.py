"""Strings: encoded-character (RFC 5228 §2.4.2.4) and variables (RFC 5229)."""

from __future__ import annotations

import re

from .errors import SieveRuntimeError

ENCODED_RE = re.compile(r"\$\{(hex|unicode):([^}]*)\}", re.IGNORECASE)
HEX_PAIRS_RE = re.compile(r"^[ \t\r\n]*(?:[0-9a-fA-F]{1,2}(?:[ \t\r\n]+|$))*$")
UNICODE_RE = re.compile(r"^[ \t\r\n]*(?:[0-9a-fA-F]+(?:[ \t\r\n]+|$))*$")
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
VARIABLE_REF_RE = re.compile(r"\$\{(" + IDENTIFIER + r"(?:\." + IDENTIFIER + r")*|[0-9]+)\}")
VARIABLE_NAME_RE = re.compile(r"^" + IDENTIFIER + r"$")
REGEX_SPECIALS_RE = re.compile(r"([\\^$.\[\]|()?*+{}])")
WILDCARD_RE = re.compile(r"([*?\\])")


def decode_encoded_characters(value: str) -> str:
    """Replace ${hex:..} and ${unicode:..}; malformed sequences stay as written (§2.4.2.4)."""
    if "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        kind, body = match.group(1).lower(), match.group(2)
        items = body.split()
        if not items:
            return match.group(0)
        if kind == "hex":
            if not HEX_PAIRS_RE.match(body):
                return match.group(0)
            return bytes(int(item, 16) for item in items).decode("utf-8", errors="replace")
        if not UNICODE_RE.match(body):
            return match.group(0)
        chars = []
        for item in items:
            code = int(item, 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise ValueError(f"invalid unicode character {item}")
            chars.append(chr(code))
        return "".join(chars)

    return ENCODED_RE.sub(replace, value)


def is_variable_name(name: str) -> bool:
    return bool(VARIABLE_NAME_RE.match(name))


class Variables:
    """Variable store: names are case-insensitive; ${0}..${9} are the match variables (§3.2)."""

    def __init__(self, max_size: int, max_count: int, max_expanded: int = 1 << 20) -> None:
        self.values: dict[str, str] = {}
        self.match: list[str] = []
        self.max_size = max_size
        self.max_count = max_count
        self.max_expanded = max_expanded

    def get(self, name: str) -> str:
        if name.isdigit():
            index = int(name)
            return self.match[index] if index < len(self.match) else ""
        return self.values.get(name.lower(), "")

    def set(self, name: str, value: str) -> None:
        key = name.lower()
        if key not in self.values and len(self.values) >= self.max_count:
            raise SieveRuntimeError("too many variables")
        self.values[key] = value[: self.max_size]

    def set_match(self, values: list[str]) -> None:
        self.match = [value[: self.max_size] for value in values[:10]]

    def expand(self, value: str) -> str:
        if "${" not in value:
            return value

        budget = [max(self.max_expanded, len(value))]

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            # No namespaces are supported; a reference to an unknown one expands to nothing.
            result = "" if "." in name else self.get(name)
            budget[0] -= len(result)
            if budget[0] < 0:
                raise SieveRuntimeError("string too long after variable expansion")
            return result

        return VARIABLE_REF_RE.sub(replace, value)


def apply_modifiers(value: str, modifiers: dict[str, object]) -> str:
    """RFC 5229 §4.1: modifiers apply from the highest precedence (40) to the lowest (10)."""
    if ":lower" in modifiers:
        value = value.lower()
    elif ":upper" in modifiers:
        value = value.upper()
    if ":lowerfirst" in modifiers:
        value = value[:1].lower() + value[1:]
    elif ":upperfirst" in modifiers:
        value = value[:1].upper() + value[1:]
    if ":quotewildcard" in modifiers:
        value = WILDCARD_RE.sub(r"\\\1", value)
    elif ":quoteregex" in modifiers:
        value = REGEX_SPECIALS_RE.sub(r"\\\1", value)
    if ":length" in modifiers:
        value = str(len(value))
    return value
