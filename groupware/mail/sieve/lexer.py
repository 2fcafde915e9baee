"""Tokenizer for the RFC 5228 §8.1 lexical grammar."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .errors import SieveParseError

SPECIALS = frozenset(";,()[]{}")
QUANTIFIERS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "identifier", "tag", "number", "string", or one of SPECIALS, or "eof"
    value: str | int
    line: int
    column: int


IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER_RE = re.compile(r"([0-9]+)([KkMmGg]?)")
SPACE_RE = re.compile(r"[ \t\r\n]+")
# RFC 5228 §2.4.2: "\\" and "\"" are the escapes; a backslash before any other character
# is dropped (the character stands for itself).
QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def error(self, message: str, pos: int | None = None) -> SieveParseError:
        line, column = self._position(self.pos if pos is None else pos)
        return SieveParseError(line, column, message)

    def _position(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        text = self.text
        length = len(text)
        while True:
            self._skip_space_and_comments()
            if self.pos >= length:
                line, column = self._position(self.pos)
                result.append(Token("eof", "", line, column))
                return result
            start = self.pos
            char = text[start]
            line, column = self._position(start)
            if char in SPECIALS:
                self.pos += 1
                result.append(Token(char, char, line, column))
            elif char == '"':
                result.append(Token("string", self._quoted_string(), line, column))
            elif char == ":":
                self.pos += 1
                name = self._identifier()
                if not name:
                    raise self.error("expected a tag name after ':'", start)
                result.append(Token("tag", name.lower(), line, column))
            elif "0" <= char <= "9":
                result.append(Token("number", self._number(), line, column))
            elif (name := self._identifier()) != "":
                if name.lower() == "text" and self.pos < length and text[self.pos] == ":":
                    self.pos += 1
                    result.append(Token("string", self._multiline(start), line, column))
                else:
                    result.append(Token("identifier", name.lower(), line, column))
            else:
                raise self.error(f"unexpected character {char!r}")

    def _skip_space_and_comments(self) -> None:
        text = self.text
        length = len(text)
        while self.pos < length:
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos = SPACE_RE.match(text, self.pos).end()  # type: ignore[union-attr]
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = length if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment")
                self.pos = end + 2
            else:
                return

    def _identifier(self) -> str:
        match = IDENTIFIER_RE.match(self.text, self.pos)
        if match is None:
            return ""
        self.pos = match.end()
        return match.group(0)

    def _number(self) -> int:
        match = NUMBER_RE.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()
        value = int(match.group(1))
        if match.group(2):
            value *= QUANTIFIERS[match.group(2).upper()]
        if IDENTIFIER_RE.match(self.text, self.pos) or (self.pos < len(self.text) and self.text[self.pos].isdigit()):
            raise self.error("invalid number")
        return value

    def _quoted_string(self) -> str:
        match = QUOTED_RE.match(self.text, self.pos)
        if match is None:
            raise self.error("unterminated string")
        self.pos = match.end()
        value = match.group(1)
        return ESCAPE_RE.sub(r"\1", value) if "\\" in value else value

    def _multiline(self, start: int) -> str:
        # RFC 5228 §2.4.2 / §8.1: "text:" [spaces] [hash-comment] CRLF, lines, "." CRLF;
        # a line starting with "." has that dot removed (dot-stuffing).
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t":
            self.pos += 1
        if self.pos < len(text) and text[self.pos] == "#":
            end = text.find("\n", self.pos)
            self.pos = len(text) if end < 0 else end
        if text.startswith("\r\n", self.pos):
            self.pos += 2
        elif text.startswith("\n", self.pos):
            self.pos += 1
        else:
            raise self.error("expected a line break after 'text:'")
        lines: list[str] = []
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated multi-line string", start)
            end = text.find("\n", self.pos)
            if end < 0:
                end = len(text)
                if text[self.pos :].rstrip("\r") != ".":
                    raise self.error("unterminated multi-line string", start)
            line = text[self.pos : end]
            self.pos = end + 1
            if line.endswith("\r"):
                line = line[:-1]
            if line == ".":
                return "".join(item + "\r\n" for item in lines)
            if line.startswith("."):
                line = line[1:]
            lines.append(line)


def tokenize(text: str) -> list[Token]:
    return Lexer(text).tokens()
