"""Registers the standard methods of a data type in the method registry."""

from __future__ import annotations

from typing import Any

from jmap.context import CallContext
from jmap.registry import Method, registry
from jmap.standard.changes import standard_changes
from jmap.standard.copy import standard_copy
from jmap.standard.datatype import DataType
from jmap.standard.get import standard_get
from jmap.standard.query import standard_query, standard_query_changes
from jmap.standard.set import standard_set

_STANDARD = {
    "get": (standard_get, False),
    "changes": (standard_changes, False),
    "set": (standard_set, True),
    "copy": (standard_copy, True),
    "query": (standard_query, False),
    "queryChanges": (standard_query_changes, False),
}


def register_standard_methods(datatype: DataType, methods: tuple[str, ...] = tuple(_STANDARD)) -> None:
    """Add ``Type/get``, ``Type/set``... for each standard method name given."""
    for suffix in methods:
        implementation, writes = _STANDARD[suffix]

        def handler(call: CallContext, arguments: dict[str, Any], _impl: Any = implementation) -> dict[str, Any]:
            return _impl(datatype, call, arguments)

        registry.add_method(
            Method(name=f"{datatype.name}/{suffix}", capability=datatype.capability, handler=handler, writes=writes)
        )
