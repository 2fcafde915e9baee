"""Fixtures for the accounts tests: a clean rate-limit cache and credential cache per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from accounts.auth import credential_cache
from accounts.services import api_token_create, app_password_create


@pytest.fixture(autouse=True)
def _fresh_auth_state() -> Iterator[None]:
    # Failure counters live in Django's cache and verified credentials in process memory;
    # neither is rolled back with the test's transaction.
    cache.clear()
    credential_cache.clear()
    yield
    cache.clear()
    credential_cache.clear()


@pytest.fixture
def app_password(user):
    """(AppPassword, plaintext) for the ``user`` fixture."""
    return app_password_create(user=user, name="phone")


@pytest.fixture
def api_token(user):
    """(ApiToken, plaintext) for the ``user`` fixture."""
    return api_token_create(user=user, name="cli")
