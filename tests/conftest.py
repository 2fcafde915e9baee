"""Shared fixtures: users with JMAP accounts and an HTTP client speaking JMAP."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from django.test import Client

from accounts.services import user_create

CORE = "urn:ietf:params:jmap:core"
PASSWORD = "correct horse battery staple"


def basic(email: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()


class CallAssertions:
    """``ok``/``error`` for test API helpers whose ``call(name, arguments)`` answers one call."""

    def call(self, name: str, arguments: dict) -> list:
        raise NotImplementedError

    def ok(self, name: str, arguments: dict) -> dict:
        response = self.call(name, arguments)
        assert response[0] == name, response
        return response[1]

    def error(self, name: str, arguments: dict) -> dict:
        response = self.call(name, arguments)
        assert response[0] == "error", response
        return response[1]


class JmapClient:
    """Drives the real API view through Django's test client with Basic auth."""

    def __init__(self, user, password: str = PASSWORD) -> None:
        self.user = user
        self.http = Client()
        self.auth = basic(user.email, password)
        self.account_id = user.jmap_accounts.get(is_personal=True).jmap_id

    def post(self, body: bytes | dict, *, content_type: str = "application/json"):
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.post("/jmap/api/", data, content_type=content_type, HTTP_AUTHORIZATION=self.auth)

    def request(self, calls: list, using: list[str] | None = None, **extra: Any) -> dict:
        body = {"using": using or [CORE], "methodCalls": calls, **extra}
        response = self.post(body)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        return orjson.loads(response.content)

    def call(self, name: str, arguments: dict, using: list[str] | None = None) -> list:
        """One method call; returns [name, arguments, callId] of the first response."""
        return self.request([[name, arguments, "c0"]], using=using)["methodResponses"][0]

    def session(self) -> dict:
        response = self.http.get("/.well-known/jmap", HTTP_AUTHORIZATION=self.auth)
        assert response.status_code == 200, response.content
        return orjson.loads(response.content)


@pytest.fixture
def user(db):
    return user_create(email="alice@example.com", password=PASSWORD, name="Alice")


@pytest.fixture
def other_user(db):
    return user_create(email="bob@example.org", password=PASSWORD, name="Bob")


@pytest.fixture
def jmap(user) -> JmapClient:
    return JmapClient(user)


@pytest.fixture
def other_jmap(other_user) -> JmapClient:
    return JmapClient(other_user)
