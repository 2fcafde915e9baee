"""Result references (RFC 8620 §3.7): JSON Pointer with the ``*`` array mapping."""

from __future__ import annotations

import re
from typing import Any

from jmap.errors import MethodError

_MISSING = object()
_BAD_ESCAPE = re.compile(r"~(?![01])")


def _fail(detail: str) -> MethodError:
    return MethodError("invalidResultReference", detail)


def _unescape(token: str) -> str:
    # RFC 6901 §4: ~1 first, then ~0.
    return token.replace("~1", "/").replace("~0", "~")


def evaluate_pointer(document: Any, path: str) -> Any:
    if path == "":
        return document
    if not path.startswith("/"):
        raise _fail(f"path {path!r} must be empty or start with /")
    if _BAD_ESCAPE.search(path):
        # RFC 6901 §3: "~" is only ever the start of "~0" or "~1".
        raise _fail(f"path {path!r} has a ~ that is not ~0 or ~1")
    return _walk(document, [_unescape(token) for token in path[1:].split("/")], path)


def _walk(value: Any, tokens: list[str], path: str) -> Any:
    for position, token in enumerate(tokens):
        if isinstance(value, list):
            if token == "*":
                rest = tokens[position + 1 :]
                mapped: list[Any] = []
                for item in value:
                    result = _walk(item, rest, path)
                    if isinstance(result, list):
                        mapped.extend(result)
                    else:
                        mapped.append(result)
                return mapped
            if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
                raise _fail(f"{path}: {token!r} is not an array index")
            index = int(token)
            if index >= len(value):
                raise _fail(f"{path}: index {index} is beyond the array")
            value = value[index]
        elif isinstance(value, dict):
            if token not in value:
                raise _fail(f"{path}: no member {token!r}")
            value = value[token]
        else:
            raise _fail(f"{path}: cannot descend into a {type(value).__name__}")
    return value


def resolve(reference: Any, responses: list[list[Any]]) -> Any:
    """The value a ResultReference points at in earlier responses of the request."""
    if not isinstance(reference, dict):
        raise _fail("a result reference must be an object")
    result_of, name, path = reference.get("resultOf"), reference.get("name"), reference.get("path")
    if not all(isinstance(item, str) for item in (result_of, name, path)) or len(reference) != 3:
        raise _fail("a result reference has exactly the String members resultOf, name and path")
    for response_name, arguments, call_id in responses:
        if call_id == result_of:
            if response_name != name:
                raise _fail(f"the response to {result_of!r} is {response_name!r}, not {name!r}")
            return evaluate_pointer(arguments, path)
    raise _fail(f"no earlier response has the call id {result_of!r}")


def resolve_arguments(arguments: dict[str, Any], responses: list[list[Any]]) -> dict[str, Any]:
    """Replace every ``#name`` argument by the value it references."""
    if not any(key.startswith("#") for key in arguments):
        return arguments
    resolved: dict[str, Any] = {}
    for key, value in arguments.items():
        if key.startswith("#"):
            plain = key[1:]
            if plain in arguments:
                raise MethodError("invalidArguments", f"{plain} is given both directly and as a reference")
            resolved[plain] = resolve(value, responses)
        else:
            resolved[key] = value
    return resolved
