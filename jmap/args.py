"""Method arguments declared as types and checked once, at the boundary.

Each method declares its arguments with ``Arg`` specs; ``parse`` checks a call's
arguments against them and turns every failure into ``invalidArguments`` naming the
argument. JMAP's Int and UnsignedInt are limited to ±(2^53-1) (RFC 8620 §1.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from groupware.core.ids import is_valid_id
from jmap.errors import MethodError

MAX_SAFE_INT = 2**53 - 1
_REQUIRED = object()

Check = Callable[[Any, str], Any]


def _bad(name: str, expected: str) -> MethodError:
    return MethodError("invalidArguments", f"{name} must be {expected}")


def id_(value: Any, name: str) -> str:
    if not is_valid_id(value):
        raise _bad(name, "an Id")
    return value


def string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(name, "a String")
    # U+0000 is valid JSON, but PostgreSQL text can't hold it: refused on every backend alike.
    if "\x00" in value:
        raise _bad(name, "a String without U+0000 characters")
    return value


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "a Boolean")
    return value


def integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise _bad(name, "an Int")
    return value


def unsigned(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INT:
        raise _bad(name, "an UnsignedInt")
    return value


def positive(value: Any, name: str) -> int:
    value = unsigned(value, name)
    if value == 0:
        raise _bad(name, "a positive UnsignedInt")
    return value


def obj(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(name, "an Object")
    return value


def anything(value: Any, name: str) -> Any:
    return value


def list_of(item: Check) -> Check:
    def check(value: Any, name: str) -> list:
        if not isinstance(value, list):
            raise _bad(name, "an array")
        return [item(element, f"{name}[{index}]") for index, element in enumerate(value)]

    return check


def map_of(item: Check, key: Check = string) -> Check:
    def check(value: Any, name: str) -> dict:
        if not isinstance(value, dict):
            raise _bad(name, "an Object")
        return {key(k, f"{name} key"): item(v, f"{name}/{k}") for k, v in value.items()}

    return check


def nullable(check: Check) -> Check:
    def wrapped(value: Any, name: str) -> Any:
        return None if value is None else check(value, name)

    return wrapped


def creation_id_key(value: Any, name: str) -> str:
    # Creation ids follow the Id syntax (RFC 8620 §5.3 "create: Id[Object]").
    if not is_valid_id(value):
        raise _bad(name, "a creation id in Id syntax")
    return value


@dataclass(frozen=True)
class Arg:
    name: str
    check: Check
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def arg(name: str, check: Check, default: Any = _REQUIRED) -> Arg:
    return Arg(name, check, default)


def parse(specs: tuple[Arg, ...] | list[Arg], arguments: dict[str, Any]) -> dict[str, Any]:
    """Check call arguments against specs; unknown arguments are refused."""
    known = {spec.name for spec in specs}
    unknown = [key for key in arguments if key not in known]
    if unknown:
        raise MethodError("invalidArguments", f"unknown argument(s): {', '.join(sorted(unknown))}")
    parsed: dict[str, Any] = {}
    for spec in specs:
        if spec.name in arguments:
            value = arguments[spec.name]
            # null stands for the default wherever the default is null (RFC 8620 §3.5).
            if value is None and spec.default is None:
                parsed[spec.name] = None
            else:
                parsed[spec.name] = spec.check(value, spec.name)
        elif spec.required:
            raise MethodError("invalidArguments", f"missing argument: {spec.name}")
        else:
            parsed[spec.name] = spec.default() if callable(spec.default) else spec.default
    return parsed
