"""Strict and fast JSON for the API.

orjson parses and serialises (an order of magnitude faster than the stdlib on large
bodies). JMAP requests are I-JSON (RFC 8620 §3.1 via RFC 7493): orjson already refuses
invalid UTF-8, lone surrogates, NaN/Infinity and numbers that overflow a double; object
member names must be unique, which orjson does not check, so keys are counted in the raw
text and compared with the keys that survived parsing.

Nesting is limited to ``MAX_DEPTH`` levels (RFC 8259 §9 lets a parser set that limit):
orjson serialises at most 254 levels, and a response nests at least as deep as the
request it answers (Core/echo), so a deeper request could not be answered at all.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# Every JSON string token, scanned left to right, and whether a colon follows it (a key).
_STRING_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?', re.DOTALL)


class JSONError(ValueError):
    pass


# Objects and arrays nested deeper than this are refused (the top level is level 1).
MAX_DEPTH = 250


def _count_keys(value: Any) -> int:
    """The number of object members in a parsed document; JSONError if it nests too deep."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise JSONError(f"objects and arrays may nest at most {MAX_DEPTH} levels deep (RFC 8259 §9)")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return count


def loads_strict(data: bytes) -> Any:
    """Parse an I-JSON document; raise JSONError with a readable reason otherwise."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONError(str(exc)) from None
    parsed_keys = _count_keys(value)
    if b":" in data:
        raw_keys = 0
        for match in _STRING_TOKEN.finditer(data):
            if match.group(1) is not None:
                raw_keys += 1
        if raw_keys != parsed_keys:
            raise JSONError("duplicate member names in an object are not allowed (I-JSON, RFC 7493 §2.3)")
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
