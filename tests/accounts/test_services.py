"""Account services: users, credentials, domains and aliases."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services
from accounts.credentials import app_password_canonical
from accounts.models import Account, Alias, ApiToken, AppPassword, Domain, User
from tests.conftest import PASSWORD

# --- Users --------------------------------------------------------------------------------


def test_user_create_makes_personal_account(db):
    user = services.user_create(email="  carol@EXAMPLE.com ", password=PASSWORD, name="Carol")
    assert user.email == "carol@example.com"  # the domain part is normalised
    assert user.check_password(PASSWORD)
    account = services.primary_account(user)
    assert account is not None and account.is_personal and account.name == user.email
    assert [access.account for access in services.accessible_accounts(user)] == [account]
    assert services.accessible_accounts(user)[0].is_read_only is False


def test_user_create_without_password(db):
    user = services.user_create(email="nopw@example.com")
    assert not user.has_usable_password()


def test_user_create_runs_provisioners_in_the_transaction(db, monkeypatch):
    seen: list[Account] = []
    monkeypatch.setattr(services, "ACCOUNT_PROVISIONERS", [seen.append])
    user = services.user_create(email="prov@example.com", password=PASSWORD)
    assert seen == [services.primary_account(user)]


def test_user_create_rolls_back_when_a_provisioner_fails(db, monkeypatch):
    def failing(account: Account) -> None:
        raise RuntimeError("no")

    monkeypatch.setattr(services, "ACCOUNT_PROVISIONERS", [failing])
    with pytest.raises(RuntimeError):
        services.user_create(email="prov@example.com", password=PASSWORD)
    assert not User.objects.filter(email="prov@example.com").exists()
    assert not Account.objects.filter(name="prov@example.com").exists()


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@example.com", "Alice@Example.Com"])
def test_user_create_refuses_duplicate_in_any_case(user, email):
    with pytest.raises(ValidationError) as error:
        services.user_create(email=email, password=PASSWORD)
    assert "already exists" in str(error.value)
    assert User.objects.count() == 1


@pytest.mark.parametrize("email", ["", "not-an-email", "a@", "@example.com", "a b@example.com"])
def test_user_create_refuses_invalid_email(db, email):
    with pytest.raises(ValidationError):
        services.user_create(email=email, password=PASSWORD)
    assert not User.objects.exists()


def test_database_refuses_case_variant_duplicates(user):
    # The case-insensitive unique index holds even when validation is bypassed.
    with pytest.raises(IntegrityError), transaction.atomic():
        User(email="ALICE@EXAMPLE.COM").save()


def test_manager_create_user_goes_through_the_service(db):
    user = User.objects.create_superuser("root@example.com", PASSWORD)
    assert user.is_staff and user.is_superuser
    assert services.primary_account(user) is not None


def test_user_set_password(user):
    services.user_set_password(user=user, password="something else entirely")
    user.refresh_from_db()
    assert user.check_password("something else entirely")
    assert not user.check_password(PASSWORD)
    services.user_set_password(user=user, password=None)
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_user_disable_and_enable(user):
    services.user_disable(user=user)
    user.refresh_from_db()
    assert not user.is_active
    services.user_enable(user=user)
    user.refresh_from_db()
    assert user.is_active


# --- App passwords ------------------------------------------------------------------------


def test_app_password_create(user):
    record, plaintext = services.app_password_create(user=user, name=" phone ")
    assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", plaintext)
    canonical = plaintext.replace("-", "")
    assert record.digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert record.name == "phone"
    assert record.user == user and record.revoked is None
    stored = AppPassword.objects.get(pk=record.pk)
    assert plaintext not in str(stored.__dict__) and canonical not in str(stored.__dict__)


def test_app_passwords_are_unique(user):
    plaintexts = {services.app_password_create(user=user, name=f"n{i}")[1] for i in range(20)}
    assert len(plaintexts) == 20


def test_app_password_canonical():
    assert app_password_canonical("ABCD-efgh ijkl-mnop") == "abcdefghijklmnop"
    assert app_password_canonical("abcd-efgh-ijkl") is None
    assert app_password_canonical("abcd-efgh-ijkl-mnö0") is None
    assert app_password_canonical(PASSWORD) is None


def test_app_password_revoke_is_idempotent(user):
    record, _ = services.app_password_create(user=user, name="phone")
    services.app_password_revoke(app_password=record)
    first = AppPassword.objects.get(pk=record.pk).revoked
    assert first is not None
    services.app_password_revoke(app_password=record)
    assert AppPassword.objects.get(pk=record.pk).revoked == first


def test_app_password_name_required(user):
    with pytest.raises(ValidationError):
        services.app_password_create(user=user, name="  ")


# --- API tokens ---------------------------------------------------------------------------


def test_api_token_create(user):
    record, plaintext = services.api_token_create(user=user, name="cli")
    assert plaintext.startswith("gw_")
    assert len(plaintext) >= 3 + 43  # 32 random bytes, URL-safe base64
    assert record.prefix == plaintext[:8]
    assert record.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert record.expires is None
    assert ApiToken.objects.get(pk=record.pk).digest == record.digest


def test_api_token_with_expiry(user):
    expires = timezone.now() + timedelta(days=30)
    record, _ = services.api_token_create(user=user, name="cli", expires=expires)
    assert ApiToken.objects.get(pk=record.pk).expires == expires


def test_api_token_expiry_must_be_in_the_future(user):
    with pytest.raises(ValidationError):
        services.api_token_create(user=user, name="cli", expires=timezone.now() - timedelta(seconds=1))
    assert not ApiToken.objects.exists()


def test_api_token_revoke(user):
    record, _ = services.api_token_create(user=user, name="cli")
    services.api_token_revoke(api_token=record)
    first = ApiToken.objects.get(pk=record.pk).revoked
    assert first is not None
    services.api_token_revoke(api_token=record)
    assert ApiToken.objects.get(pk=record.pk).revoked == first


# --- Domains and aliases ------------------------------------------------------------------


def test_domain_create_normalises(db):
    domain = services.domain_create(name=" Example.COM. ")
    assert domain.name == "example.com" and domain.is_active


def test_domain_create_idn(db):
    assert services.domain_create(name="Bücher.example").name == "bücher.example"


@pytest.mark.parametrize("name", ["", "exa mple.com", "-bad-.com", "a" * 64 + ".com", "example..com"])
def test_domain_create_refuses_invalid(db, name):
    with pytest.raises(ValidationError):
        services.domain_create(name=name)


def test_domain_create_refuses_duplicate(db):
    services.domain_create(name="example.com")
    with pytest.raises(ValidationError):
        services.domain_create(name="EXAMPLE.com")


@pytest.fixture
def domain(db) -> Domain:
    return services.domain_create(name="example.com")


def test_alias_create(user, domain):
    alias = services.alias_create(user=user, address="Sales@Example.COM")
    assert alias.address == "sales@example.com"
    assert alias.user == user


def test_alias_catch_all(user, domain):
    alias = services.alias_create(user=user, address="@EXAMPLE.com")
    assert alias.address == "@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "sales@unknown.example",  # not a domain of this server
        "@unknown.example",
        "sales",
        "sales@",
        "",
        "a b@example.com",
        "alice@example.com",  # a user's own address
        "ALICE@example.com",
    ],
)
def test_alias_create_refuses(user, domain, address):
    with pytest.raises(ValidationError):
        services.alias_create(user=user, address=address)
    assert not Alias.objects.exists()


def test_alias_create_refuses_duplicate_in_any_case(user, other_user, domain):
    services.alias_create(user=user, address="sales@example.com")
    with pytest.raises(ValidationError):
        services.alias_create(user=other_user, address="SALES@example.com")


def test_login_lookup_uses_the_case_insensitive_index(user):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("index use is checked on PostgreSQL")
    queryset = User.objects.filter(email__iexact="ALICE@example.com").order_by()
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would otherwise be scanned
        cursor.execute("EXPLAIN " + sql, params)
        plan = " ".join(row[0] for row in cursor.fetchall())
    assert "accounts_user_email_ci_unique" in plan
