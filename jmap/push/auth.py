"""Authentication for the push transports.

Clients with headers authenticate as on the API (Basic or Bearer). A browser's
``EventSource`` and ``WebSocket`` cannot send headers, so they may instead pass
``access_token=`` in the query string: a short-lived token made by ``POST /jmap/push-token/``
that is good for nothing but opening push connections (it is signed with its own salt and
is refused as a Bearer token on the API).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from accounts.credentials import Credential, credential_valid
from accounts.models import User
from jmap.http import authenticated, json_response, method_not_allowed

_SALT = "groupware.push.access-token"


def push_token_create(user: User) -> str:
    # Stateless and short-lived (PUSH_TOKEN_SECONDS): it only has to outlive the moment
    # between asking for it and opening the connection.
    # The credential that asked for it goes along, so what the token opens ends with it too.
    credential = user.credential
    carried = None if credential is None else [credential.kind, credential.pk, credential.fingerprint]
    return signing.dumps({"u": user.pk, "c": carried}, salt=_SALT, compress=False)


def push_token_user(token: str) -> User | None:
    """The active user a push access token was made for, or None if invalid or expired."""
    try:
        payload: Any = signing.loads(token, salt=_SALT, max_age=settings.PUSH_TOKEN_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = User.objects.filter(pk=payload["u"], is_active=True).first()
    carried = payload.get("c")
    if user is not None and isinstance(carried, list) and len(carried) == 3:
        user.credential = Credential(*carried)
        if not credential_valid(user, user.credential):
            return None
    return user


@authenticated
def push_token_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_not_allowed(["POST"])
    response = json_response(
        {"accessToken": push_token_create(request.jmap_user), "expiresIn": settings.PUSH_TOKEN_SECONDS}
    )
    response["Cache-Control"] = "no-store"
    return response
