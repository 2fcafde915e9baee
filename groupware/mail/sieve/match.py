"""Comparators (RFC 4790 via RFC 5228 §2.7.3), match types (§2.7.1), relational (RFC 5231), regex."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import regex

from .errors import SieveRuntimeError

ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
MAX_REGEX_LENGTH = 4096
MATCH_TYPES = (":is", ":contains", ":matches", ":regex", ":count", ":value")


def ascii_fold(value: str) -> str:
    """A-Z to a-z, nothing else (i;ascii-casemap). In UTF-8 every byte of a non-ASCII
    character is >= 0x80, which bytes.lower() leaves alone: the same result as
    ``translate(ASCII_LOWER)``, in C, for message bodies of any size."""
    if value.isascii():
        return value.lower()
    return value.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def numeric_value(value: str) -> int | None:
    """i;ascii-numeric: the leading digits; a string without them is positive infinity (None)."""
    end = 0
    while end < len(value) and "0" <= value[end] <= "9":
        end += 1
    return int(value[:end]) if end else None


def _numeric_compare(left: str, right: str) -> int:
    a, b = numeric_value(left), numeric_value(right)
    if a == b:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    return -1 if a < b else 1


def compare(comparator: str, left: str, right: str) -> int:
    """Ordering used by :value and :count (RFC 5231 §4)."""
    if comparator == "i;ascii-numeric":
        return _numeric_compare(left, right)
    if comparator == "i;ascii-casemap":
        left, right = ascii_fold(left), ascii_fold(right)
    return (left > right) - (left < right)


RELATIONS: dict[str, Callable[[int], bool]] = {
    "gt": lambda order: order > 0,
    "ge": lambda order: order >= 0,
    "lt": lambda order: order < 0,
    "le": lambda order: order <= 0,
    "eq": lambda order: order == 0,
    "ne": lambda order: order != 0,
}


# -- :matches glob (RFC 5228 §2.7.1) with the captures of RFC 5229 §3.2 ---------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of the pattern between two '*': literal pieces and the offsets of '?'."""

    length: int
    pieces: tuple[tuple[int, str], ...]  # (offset, literal text)
    wildcards: tuple[int, ...]  # offsets of "?"

    def at(self, text: str, start: int) -> bool:
        if start < 0 or start + self.length > len(text):
            return False
        return all(text.startswith(literal, start + offset) for offset, literal in self.pieces)

    def find(self, text: str, begin: int, last: int, deadline: float | None) -> int:
        """Leftmost start in [begin, last] where the segment matches, or -1."""
        if begin > last:
            return -1
        if not self.pieces:
            return begin
        offset, literal = max(self.pieces, key=lambda piece: (len(piece[1]), piece[0]))
        position = begin
        steps = 0
        while position <= last:
            found = text.find(literal, position + offset, last + offset + len(literal))
            if found < 0:
                return -1
            start = found - offset
            if self.at(text, start):
                return start
            position = start + 1
            steps += 1
            if deadline is not None and steps % 1024 == 0 and time.monotonic() > deadline:
                raise SieveRuntimeError("match took too long")
        return -1


@lru_cache(maxsize=512)
def _glob_segments(pattern: str) -> tuple[_Segment, ...]:
    segments: list[_Segment] = []
    chars: list[str | None] = []  # None stands for "?"

    def close() -> None:
        pieces: list[tuple[int, str]] = []
        wildcards: list[int] = []
        run_start, run = 0, ""
        for offset, char in enumerate(chars):
            if char is None:
                if run:
                    pieces.append((run_start, run))
                wildcards.append(offset)
                run = ""
            else:
                if not run:
                    run_start = offset
                run += char
        if run:
            pieces.append((run_start, run))
        segments.append(_Segment(len(chars), tuple(pieces), tuple(wildcards)))
        chars.clear()

    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            chars.append(pattern[index + 1])
            index += 2
            continue
        if char == "*":
            close()
        else:
            chars.append(None if char == "?" else char)
        index += 1
    close()
    return tuple(segments)


def glob_match(pattern: str, text: str, casefold: bool, deadline: float | None = None) -> list[str] | None:
    """Return the wildcard captures ([whole, first wildcard, ...]) or None.

    Each "*" takes as little text as possible. Taking the leftmost match of every middle
    segment is always a valid choice, so there is no backtracking to blow up.
    """
    original = text
    if casefold:
        pattern, text = ascii_fold(pattern), ascii_fold(text)
    segments = _glob_segments(pattern)
    captures: list[str] = [original]

    def question_marks(segment: _Segment, start: int) -> None:
        captures.extend(original[start + offset] for offset in segment.wildcards)

    first = segments[0]
    if len(segments) == 1:
        if first.length != len(text) or not first.at(text, 0):
            return None
        question_marks(first, 0)
        return captures
    if not first.at(text, 0):
        return None
    question_marks(first, 0)
    position = first.length
    last = segments[-1]
    last_start = len(text) - last.length
    if last_start < position:
        return None
    for segment in segments[1:-1]:
        found = segment.find(text, position, last_start - segment.length, deadline)
        if found < 0:
            return None
        captures.append(original[position:found])
        question_marks(segment, found)
        position = found + segment.length
    if not last.at(text, last_start):
        return None
    captures.append(original[position:last_start])
    question_marks(last, last_start)
    return captures


# -- :regex (draft-ietf-sieve-regex) ---------------------------------------------------------


@lru_cache(maxsize=256)
def compile_regex(pattern: str, casefold: bool) -> regex.Pattern[str]:
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError("pattern too long")
    try:
        return regex.compile(pattern, (regex.IGNORECASE if casefold else 0) | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(str(exc)) from None


def regex_search(pattern: str, text: str, casefold: bool, timeout: float) -> list[str] | None:
    try:
        compiled = compile_regex(pattern, casefold)
    except ValueError as exc:
        raise SieveRuntimeError(f"invalid regular expression '{pattern}': {exc}") from None
    try:
        found = compiled.search(text, timeout=timeout)
    except TimeoutError:
        # A pattern that backtracks catastrophically must not stall delivery.
        raise SieveRuntimeError(f"regular expression '{pattern}' took too long") from None
    if found is None:
        return None
    return [found.group(0)] + [group or "" for group in found.groups()]


@dataclass(slots=True)
class Matcher:
    """One test's MATCH-TYPE and COMPARATOR (RFC 5228 §2.7)."""

    match_type: str = ":is"
    relation: str = "eq"
    comparator: str = "i;ascii-casemap"
    regex_timeout: float = 0.1
    deadline: float | None = None  # time.monotonic() value after which matching stops

    @classmethod
    def from_tags(cls, tags: dict[str, object], regex_timeout: float, deadline: float | None = None) -> Matcher:
        matcher = cls(regex_timeout=regex_timeout, deadline=deadline)
        matcher.comparator = str(tags.get(":comparator", "i;ascii-casemap"))
        for tag in MATCH_TYPES:
            if tag in tags:
                matcher.match_type = tag
                if tag in (":count", ":value"):
                    matcher.relation = str(tags[tag]).lower()
                break
        return matcher

    def one(self, value: str, key: str) -> list[str] | bool | None:
        """Match one value against one key; captures for :matches/:regex, else a bool."""
        comparator = self.comparator
        kind = self.match_type
        if kind == ":is":
            if comparator == "i;ascii-numeric":
                return _numeric_compare(value, key) == 0
            if comparator == "i;ascii-casemap":
                return ascii_fold(value) == ascii_fold(key)
            return value == key
        if kind == ":contains":
            if comparator == "i;ascii-casemap":
                return ascii_fold(key) in ascii_fold(value)
            return key in value
        if kind == ":matches":
            return glob_match(key, value, comparator == "i;ascii-casemap", self.deadline)
        if kind == ":regex":
            return regex_search(key, value, comparator == "i;ascii-casemap", self.regex_timeout)
        if kind == ":value":
            return RELATIONS[self.relation](compare(comparator, value, key))
        raise AssertionError(kind)

    def test(self, values: Sequence[str], keys: Sequence[str]) -> tuple[bool, list[str] | None]:
        """True when any value matches any key; also the captures of the first match."""
        if self.match_type == ":count":
            count = str(len(values))
            matched = any(RELATIONS[self.relation](compare(self.comparator, count, key)) for key in keys)
            return matched, None
        steps = 0
        for value in values:
            for key in keys:
                steps += 1
                if self.deadline is not None and steps % 256 == 0 and time.monotonic() > self.deadline:
                    raise SieveRuntimeError("script ran too long")
                result = self.one(value, key)
                if result is True:
                    return True, None
                if isinstance(result, list):
                    return True, result
        return False, None
