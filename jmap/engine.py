"""The request engine (RFC 8620 §3): one Request in, one Response out.

Shared by the HTTP API view and the WebSocket consumer. Request-level problems raise
``RequestError``; each method call runs in its own transaction, and a failing call
becomes an error response for that call only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from jmap import errors
from jmap.context import CallContext, RequestContext
from jmap.errors import MethodError, RequestError
from jmap.jsonio import JSONError, loads_strict
from jmap.refs import resolve_arguments
from jmap.registry import CORE, registry

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger("jmap.engine")


def parse_request(body: bytes) -> dict[str, Any]:
    """Decode and check a Request object (RFC 8620 §3.3); raise RequestError otherwise."""
    if len(body) > settings.JMAP["maxSizeRequest"]:
        raise errors.limit("maxSizeRequest", "The request is larger than the server is willing to process.")
    try:
        request = loads_strict(body)
    except JSONError as exc:
        raise errors.not_json(f"The request did not parse as I-JSON: {exc}") from None
    return check_request(request)


def check_request(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise errors.not_request("The request must be a JSON object.")
    using = request.get("using")
    if not isinstance(using, list) or not all(isinstance(item, str) for item in using):
        raise errors.not_request("'using' must be an array of capability strings.")
    calls = request.get("methodCalls")
    if not isinstance(calls, list):
        raise errors.not_request("'methodCalls' must be an array of invocations.")
    for call in calls:
        if not (
            isinstance(call, list)
            and len(call) == 3
            and isinstance(call[0], str)
            and isinstance(call[1], dict)
            and isinstance(call[2], str)
        ):
            raise errors.not_request("Each method call must be [String name, Object arguments, String callId].")
    created_ids = request.get("createdIds")
    if created_ids is not None and (
        not isinstance(created_ids, dict) or not all(isinstance(value, str) for value in created_ids.values())
    ):
        raise errors.not_request("'createdIds' must map creation ids to ids.")
    known = registry.advertised()
    unknown = [urn for urn in using if urn not in known]
    if unknown:
        raise errors.unknown_capability(
            f"The request used capabilities this server does not support: {', '.join(unknown)}."
        )
    if CORE not in using:
        raise errors.unknown_capability(f"'using' must include {CORE}.")
    if len(calls) > settings.JMAP["maxCallsInRequest"]:
        raise errors.limit("maxCallsInRequest", "The request has more method calls than the server accepts.")
    return request


def process(user: User, request: dict[str, Any], *, session_state: str) -> dict[str, Any]:
    """Run the method calls of a checked Request in order and build the Response."""
    created_ids = request.get("createdIds")
    context = RequestContext(
        user=user,
        using=frozenset(request["using"]),
        created_ids=dict(created_ids) if created_ids is not None else {},
    )
    for name, arguments, call_id in request["methodCalls"]:
        context.responses.extend(run_call(context, name, arguments, call_id))
    response: dict[str, Any] = {"methodResponses": context.responses, "sessionState": session_state}
    if created_ids is not None:
        response["createdIds"] = context.created_ids
    return response


def run_call(context: RequestContext, name: str, arguments: dict[str, Any], call_id: str) -> list[list[Any]]:
    method = registry.methods.get(name)
    if method is None or not _enabled(method, context.using):
        return [["error", {"type": "unknownMethod"}, call_id]]
    call = CallContext(request=context, method=method, call_id=call_id)
    saved_ids = dict(context.created_ids)
    try:
        resolved = resolve_arguments(arguments, context.responses)
        if method.writes:
            # One transaction per call: an error leaves the server's state as it was (§3.6.2).
            with transaction.atomic():
                result = method.handler(call, resolved)
        else:
            # Read-only methods need no transaction (and on SQLite would otherwise queue
            # for the write lock that BEGIN IMMEDIATE takes).
            result = method.handler(call, resolved)
    except MethodError as exc:
        context.created_ids.clear()
        context.created_ids.update(saved_ids)
        return [["error", exc.arguments(), call_id]]
    except Exception:
        context.created_ids.clear()
        context.created_ids.update(saved_ids)
        logger.exception("method %s failed", name)
        return [["error", {"type": "serverFail", "description": "An internal error occurred."}, call_id]]
    return [[name, result, call_id], *call.extra_responses]


def _enabled(method: Any, using: frozenset[str]) -> bool:
    return method.capability in using or any(urn in using for urn in method.also_enabled_by)


__all__ = ["RequestError", "check_request", "parse_request", "process", "run_call"]
