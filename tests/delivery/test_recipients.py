"""Recipient resolution: users, aliases, subaddresses, catch-alls, refusals."""

from __future__ import annotations

import pytest

from accounts.services import alias_create, domain_create, user_create, user_disable
from groupware.mail.delivery.recipients import recipient_resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(db):
    return domain_create(name="example.com")


def test_user_address_case_insensitive(user):
    found = recipient_resolve("<Alice@EXAMPLE.com>")
    assert found is not None and found.user == user and found.detail is None
    assert found.account.owner == user and found.account.is_personal


def test_alias(user, domain):
    alias_create(user=user, address="sales@example.com")
    assert recipient_resolve("SALES@example.com").user == user


def test_subaddress_of_user_and_alias(user, domain):
    alias_create(user=user, address="sales@example.com")
    found = recipient_resolve("alice+lists@example.com")
    assert found.user == user and found.detail == "lists"
    assert recipient_resolve("sales+q4@example.com").detail == "q4"
    assert recipient_resolve("+x@example.com") is None


def test_catch_all_only_for_unknown_local_parts(user, other_user, domain):
    alias_create(user=other_user, address="@example.com")
    assert recipient_resolve("alice@example.com").user == user
    caught = recipient_resolve("nobody@example.com")
    assert caught.user == other_user and caught.detail is None
    assert recipient_resolve("nobody@example.org") is None


def test_unknown_malformed_and_inactive(user):
    assert recipient_resolve("nobody@example.com") is None
    assert recipient_resolve("no-at-sign") is None
    assert recipient_resolve("a b@example.com") is None
    disabled = user_create(email="gone@example.com", password="x" * 12)
    user_disable(user=disabled)
    assert recipient_resolve("gone@example.com") is None
