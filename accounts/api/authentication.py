"""Authentication of the provisioning API: a Bearer API token (RFC 6750) of a staff user.

The token is an ordinary ``ApiToken`` (made in the admin, with ``manage.py create_user
--token``, or through this API), checked by the same code as the JMAP API (expiry,
revocation, last use, the failure limiter); the permission class then requires
``is_staff``. No session cookie is accepted, so the API needs no CSRF token.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.auth import REALM, AuthenticationFailed, authenticate_authorization, client_address
from accounts.models import User


class StaffTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.strip().lower().startswith("bearer "):
            return None  # -> 401 with the challenge below
        try:
            user = authenticate_authorization(header, address=client_address(request._request))
        except AuthenticationFailed as error:
            if error.status == 429:
                raise exceptions.Throttled(wait=error.retry_after, detail=error.detail) from None
            raise exceptions.AuthenticationFailed(error.detail) from None
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{REALM}"'


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.StaffTokenAuthentication"
    name = "staffToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token of a staff user (Authorization: Bearer <token>).",
        }
