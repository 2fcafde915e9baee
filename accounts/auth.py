"""API authentication (placeholder: replaced by the full implementation)."""

from __future__ import annotations

import base64

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from jmap.jsonio import dumps


class EmailBackend(ModelBackend):
    pass


class AuthenticationFailed(Exception):
    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status

    def response(self) -> HttpResponse:
        body = {"type": "about:blank", "status": self.status, "title": "Unauthorized", "detail": self.detail}
        response = HttpResponse(dumps(body), status=self.status, content_type="application/problem+json")
        response["WWW-Authenticate"] = 'Basic realm="JMAP", charset="UTF-8", Bearer realm="JMAP"'
        return response


def authenticate_api(request: HttpRequest) -> User:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic "):
        raise AuthenticationFailed("Authentication required.")
    email, _, password = base64.b64decode(header[6:]).decode().partition(":")
    user = User.objects.filter(email__iexact=email).first()
    if user is None or not user.check_password(password):
        raise AuthenticationFailed("Invalid credentials.")
    return user
