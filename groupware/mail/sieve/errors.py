"""Errors raised while parsing or running a Sieve script."""

from __future__ import annotations


class SieveParseError(Exception):
    """A script that is not valid Sieve (RFC 5228 §2.10.6: reported before the script is used)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class SieveRuntimeError(Exception):
    """A failure while running a script; the interpreter falls back to implicit keep."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message
