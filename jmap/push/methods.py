"""Push capabilities and PushSubscription/get, /set (RFC 8620 §7.2, RFC 8887, RFC 9749).

PushSubscription has no accountId: a subscription belongs to the user. ``url`` and
``keys`` are never returned (§7.2.1), and ``verificationCode`` only once the subscription is
verified, so a client can't read the code instead of receiving it at its URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from groupware.core.ids import decode, is_valid_id
from groupware.push.models import PushSubscription
from groupware.push.services import (
    PushRefused,
    push_subscription_create,
    push_subscription_destroy,
    push_subscription_update,
    vapid_key_current,
)
from jmap.args import arg, creation_id_key, id_, list_of, map_of, nullable, obj, parse, string
from jmap.context import CallContext
from jmap.email import parse_utc_date, utc_date
from jmap.errors import MethodError
from jmap.registry import CORE, Capability, registry
from jmap.session import WEBSOCKET

WEBPUSH_VAPID = "urn:ietf:params:jmap:webpush-vapid"

# RFC 8887 §4.1: "url" is filled in per request by the session resource (it depends on the host).
registry.add_capability(Capability(urn=WEBSOCKET, session_value=lambda: {"url": None, "supportsPush": True}))
# RFC 9749 §3: the VAPID public key a client hands to its push service.
registry.add_capability(
    Capability(urn=WEBPUSH_VAPID, session_value=lambda: {"applicationServerKey": vapid_key_current().public_key})
)

PROPERTIES = ("id", "deviceClientId", "verificationCode", "expires", "types")
PRIVATE = ("url", "keys")
MUTABLE = ("verificationCode", "expires", "types")


def _to_json(subscription: PushSubscription, properties: tuple[str, ...]) -> dict[str, Any]:
    values = {
        "id": subscription.jmap_id,
        "deviceClientId": subscription.device_client_id,
        "verificationCode": subscription.verification_code if subscription.verified else None,
        "expires": utc_date(subscription.expires),
        "types": subscription.types,
    }
    return {name: values[name] for name in properties}


@registry.method("PushSubscription/get", capability=CORE)
def push_subscription_get(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    args = parse(
        [arg("ids", nullable(list_of(id_)), None), arg("properties", nullable(list_of(string)), None)], arguments
    )
    properties = args["properties"]
    if properties is None:
        wanted = PROPERTIES
    else:
        if any(name in PRIVATE for name in properties):
            raise MethodError("forbidden", "url and keys are never returned.")
        unknown = [name for name in properties if name not in PROPERTIES]
        if unknown:
            raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
        wanted = tuple(dict.fromkeys(["id", *properties]))
    mine = PushSubscription.objects.filter(user=call.user)
    ids = args["ids"]
    if ids is None:
        return {"list": [_to_json(s, wanted) for s in mine], "notFound": []}
    ids = list(dict.fromkeys(ids))
    pks = {value: decode("P", value) for value in ids}
    found = {s.jmap_id: s for s in mine.filter(pk__in=[pk for pk in pks.values() if pk is not None])}
    return {
        "list": [_to_json(found[value], wanted) for value in ids if value in found],
        "notFound": [value for value in ids if value not in found],
    }


def _check_expires(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = parse_utc_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise PushRefused("invalidProperties", "expires must be a UTCDate", ["expires"])
    return parsed


def _check_types(value: Any) -> list[str] | None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(t, str) and t for t in value)):
        raise PushRefused("invalidProperties", "types must be null or an array of type names", ["types"])
    return value


def _check_keys(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"p256dh", "auth"}
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise PushRefused("invalidProperties", "keys must be null or {p256dh, auth}", ["keys"])
    return value


def _create(call: CallContext, values: dict[str, Any]) -> dict[str, Any]:
    unknown = [
        name for name in values if name not in ("deviceClientId", "url", "keys", "verificationCode", "expires", "types")
    ]
    if unknown:
        raise PushRefused("invalidProperties", "unknown or server-set properties", unknown)
    device = values.get("deviceClientId")
    if not isinstance(device, str) or not 0 < len(device) <= 255:
        raise PushRefused(
            "invalidProperties", "deviceClientId must be a String of 1 to 255 characters", ["deviceClientId"]
        )
    url = values.get("url")
    if not isinstance(url, str) or len(url) > 2048:
        raise PushRefused("invalidProperties", "url must be an https URL", ["url"])
    if values.get("verificationCode") is not None:
        raise PushRefused("invalidProperties", "verificationCode must be null on create", ["verificationCode"])
    expires = _check_expires(values.get("expires"))
    subscription = push_subscription_create(
        user=call.user,
        device_client_id=device,
        url=url,
        keys=_check_keys(values.get("keys")),
        expires=expires,
        types=_check_types(values.get("types")),
        credential=call.user.credential,
    )
    created: dict[str, Any] = {"id": subscription.jmap_id}
    if expires is None or subscription.expires != expires:
        created["expires"] = utc_date(subscription.expires)
    return created


def _update(subscription: PushSubscription, patch: dict[str, Any]) -> dict[str, Any] | None:
    immutable = {
        "deviceClientId": subscription.device_client_id,
        "url": subscription.url,
    }
    bad = [
        name
        for name, value in patch.items()
        if name not in MUTABLE and not (name in immutable and immutable[name] == value)
    ]
    if bad:
        raise PushRefused("invalidProperties", "only verificationCode, expires and types can change", bad)
    code = patch.get("verificationCode")
    if code is not None and not isinstance(code, str):
        raise PushRefused("invalidProperties", "verificationCode must be a String", ["verificationCode"])
    adjusted = push_subscription_update(
        subscription=subscription,
        verification_code=code,
        expires=_check_expires(patch.get("expires")),
        set_expires="expires" in patch,
        types=_check_types(patch.get("types")),
        set_types="types" in patch,
    )
    return {"expires": utc_date(subscription.expires)} if adjusted else None


@registry.method("PushSubscription/set", capability=CORE, writes=True)
def push_subscription_set(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    args = parse(
        [
            arg("create", nullable(map_of(obj, creation_id_key)), None),
            arg("update", nullable(map_of(obj, id_)), None),
            arg("destroy", nullable(list_of(id_)), None),
        ],
        arguments,
    )
    result: dict[str, Any] = {
        "created": None, "updated": None, "destroyed": None,
        "notCreated": None, "notUpdated": None, "notDestroyed": None,
    }  # fmt: skip
    for creation_id, values in (args["create"] or {}).items():
        try:
            created = _create(call, values)
        except PushRefused as refused:
            result["notCreated"] = {**(result["notCreated"] or {}), creation_id: _refusal(refused)}
            continue
        result["created"] = {**(result["created"] or {}), creation_id: created}
        call.add_created_id(creation_id, created["id"])
    mine = PushSubscription.objects.filter(user=call.user)
    touched = [value for value in [*(args["update"] or {}), *(args["destroy"] or [])] if is_valid_id(value)]
    wanted = [pk for pk in (decode("P", value) for value in touched) if pk is not None]
    found = {s.jmap_id: s for s in mine.filter(pk__in=wanted)} if wanted else {}
    for object_id, patch in (args["update"] or {}).items():
        subscription = found.get(object_id)
        if subscription is None:
            result["notUpdated"] = {**(result["notUpdated"] or {}), object_id: {"type": "notFound"}}
            continue
        try:
            changed = _update(subscription, patch)
        except PushRefused as refused:
            result["notUpdated"] = {**(result["notUpdated"] or {}), object_id: _refusal(refused)}
            continue
        result["updated"] = {**(result["updated"] or {}), object_id: changed}
    for object_id in args["destroy"] or []:
        subscription = found.get(object_id)
        if subscription is None or subscription.pk is None:
            result["notDestroyed"] = {**(result["notDestroyed"] or {}), object_id: {"type": "notFound"}}
            continue
        push_subscription_destroy(subscription=subscription)
        result["destroyed"] = [*(result["destroyed"] or []), object_id]
    return result


def _refusal(refused: PushRefused) -> dict[str, Any]:
    error: dict[str, Any] = {"type": refused.kind, "description": refused.description}
    if refused.properties:
        error["properties"] = refused.properties
    return error
