"""PatchObject (RFC 8620 §5.3): JSON Pointer paths (implicit leading "/") to new values."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from jmap.errors import SetError, invalid_properties
from jmap.standard.datatype import Prop


def _tokens(path: str) -> list[str]:
    # RFC 6901: "~1" is "/", "~0" is "~" (in that order).
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")]


def apply_patch(current: dict[str, Any], patch: dict[str, Any], properties: dict[str, Prop]) -> dict[str, Any]:
    """The object after the patch; SetError invalidPatch or invalidProperties otherwise."""
    paths: list[tuple[list[str], Any]] = []
    for key, value in patch.items():
        if not isinstance(key, str) or key == "":
            raise SetError("invalidPatch", "a patch path must be a non-empty String")
        paths.append((_tokens(key), value))
    ordered = sorted(paths, key=lambda item: item[0])
    for (shorter, _), (longer, _) in itertools.pairwise(ordered):
        if longer[: len(shorter)] == shorter:
            raise SetError("invalidPatch", f"{'/'.join(shorter)} is a prefix of {'/'.join(longer)}")
    unknown = [tokens[0] for tokens, _ in paths if tokens[0] not in properties]
    if unknown:
        raise invalid_properties(unknown, "unknown properties")
    result = dict(current)
    copied: set[str] = set()
    for tokens, value in paths:
        name = tokens[0]
        if len(tokens) == 1:
            if value is None:
                prop = properties[name]
                value = prop.default_value() if prop.has_default else None
            result[name] = value
            continue
        if name not in copied:
            result[name] = copy.deepcopy(result.get(name))
            copied.add(name)
        parent = result[name]
        for token in tokens[1:-1]:
            if not isinstance(parent, dict):
                raise SetError("invalidPatch", f"{'/'.join(tokens)}: cannot patch inside an array or a value")
            if token not in parent:
                raise SetError("invalidPatch", f"{'/'.join(tokens)}: {token!r} does not exist")
            parent = parent[token]
        if not isinstance(parent, dict):
            raise SetError("invalidPatch", f"{'/'.join(tokens)}: cannot patch inside an array or a value")
        last = tokens[-1]
        if value is None:
            parent.pop(last, None)
        else:
            parent[last] = value
    return result
