"""Syntax tree for RFC 5228 §8.2: commands, tests and their arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SieveParseError
from .lexer import Token, tokenize


@dataclass(slots=True)
class Tag:
    name: str  # with the leading ":" e.g. ":contains"
    line: int
    column: int


@dataclass(slots=True)
class Number:
    value: int
    line: int
    column: int


@dataclass(slots=True)
class StringList:
    values: list[str]
    is_list: bool  # written with brackets
    line: int
    column: int


Argument = Tag | Number | StringList


@dataclass(slots=True)
class Test:
    name: str
    arguments: list[Argument]
    tests: list[Test]
    line: int
    column: int
    # Filled in by the semantic checker (spec.py).
    tags: dict[str, object] = field(default_factory=dict)
    positional: list[object] = field(default_factory=list)


@dataclass(slots=True)
class Command:
    name: str
    arguments: list[Argument]
    tests: list[Test]
    block: list[Command] | None
    line: int
    column: int
    tags: dict[str, object] = field(default_factory=dict)
    positional: list[object] = field(default_factory=list)


class Parser:
    def __init__(self, tokens: list[Token], max_nesting: int) -> None:
        self.tokens = tokens
        self.index = 0
        self.max_nesting = max_nesting
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def error(self, message: str, token: Token | None = None) -> SieveParseError:
        token = token or self.current
        return SieveParseError(token.line, token.column, message)

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        if self.current.kind != kind:
            found = "end of script" if self.current.kind == "eof" else repr(self.current.value)
            raise self.error(f"expected {what}, found {found}")
        return self.advance()

    def commands(self, top: bool) -> list[Command]:
        result: list[Command] = []
        while True:
            kind = self.current.kind
            if kind == "eof":
                if not top:
                    raise self.error("missing '}'")
                return result
            if kind == "}":
                if top:
                    raise self.error("unexpected '}'")
                return result
            result.append(self.command())

    def command(self) -> Command:
        name = self.expect("identifier", "a command name")
        arguments, tests = self.arguments()
        block = None
        if self.current.kind == "{":
            self.depth += 1
            if self.depth > self.max_nesting:
                raise self.error("blocks nested too deeply")
            self.advance()
            block = self.commands(top=False)
            self.expect("}", "'}'")
            self.depth -= 1
        else:
            self.expect(";", "';'")
        return Command(str(name.value), arguments, tests, block, name.line, name.column)

    def arguments(self) -> tuple[list[Argument], list[Test]]:
        arguments: list[Argument] = []
        while True:
            token = self.current
            if token.kind == "tag":
                self.advance()
                arguments.append(Tag(":" + str(token.value), token.line, token.column))
            elif token.kind == "number":
                self.advance()
                arguments.append(Number(int(token.value), token.line, token.column))
            elif token.kind == "string":
                self.advance()
                arguments.append(StringList([str(token.value)], False, token.line, token.column))
            elif token.kind == "[":
                arguments.append(self.string_list())
            else:
                break
        tests: list[Test] = []
        if self.current.kind == "(":
            self.advance()
            tests.append(self.test())
            while self.current.kind == ",":
                self.advance()
                tests.append(self.test())
            self.expect(")", "')' or ','")
        elif self.current.kind == "identifier":
            tests.append(self.test())
        return arguments, tests

    def string_list(self) -> StringList:
        start = self.advance()
        values = [str(self.expect("string", "a string").value)]
        while self.current.kind == ",":
            self.advance()
            values.append(str(self.expect("string", "a string").value))
        self.expect("]", "']' or ','")
        return StringList(values, True, start.line, start.column)

    def test(self) -> Test:
        name = self.expect("identifier", "a test name")
        self.depth += 1
        if self.depth > self.max_nesting:
            raise self.error("tests nested too deeply", name)
        arguments, tests = self.arguments()
        self.depth -= 1
        return Test(str(name.value), arguments, tests, name.line, name.column)


def parse_tree(text: str, max_nesting: int = 32) -> list[Command]:
    return Parser(tokenize(text), max_nesting).commands(top=True)
