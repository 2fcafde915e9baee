"""Services that own writes to users, accounts, domains, aliases and credentials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator, EmailValidator
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.credentials import (
    API_TOKEN_PREFIX_LENGTH,
    api_token_generate,
    app_password_canonical,
    app_password_generate,
    secret_digest,
)
from accounts.models import Account, AccountGrant, Alias, ApiToken, AppPassword, Domain, User
from groupware.core import sql
from jmap.context import AccountAccess

# Called with the new user's personal Account inside the creating transaction, so later
# data types (mail, contacts...) can provision their defaults (e.g. the standard mailboxes).
ACCOUNT_PROVISIONERS: list[Callable[[Account], object]] = []


# --- Users -------------------------------------------------------------------------------


def user_create(
    *, email: str, password: str | None = None, name: str = "", is_staff: bool = False, is_superuser: bool = False
) -> User:
    """Create a user with their personal JMAP account.

    Raises ValidationError for an invalid address or one already taken (in any letter case).
    """
    email = User.objects.normalize_email(email.strip())
    with transaction.atomic():
        user = User(email=email, name=name, is_staff=is_staff, is_superuser=is_superuser)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save()
        account = Account.objects.create(owner=user, name=email, is_personal=True)
        for provision in ACCOUNT_PROVISIONERS:
            provision(account)
    return user


def user_set_password(*, user: User, password: str | None) -> None:
    """Set (or, with None, remove) the account password.

    Remembered Basic credentials are checked against the stored hash on every use
    (accounts.auth), so the old password stops working at once, in every process. App
    passwords and tokens are separate credentials and stay valid.
    """
    with transaction.atomic():
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(update_fields=["password"])
        _access_changed(user)  # push subscriptions made with the old password end


def user_disable(*, user: User) -> None:
    """Stop the user from logging in by any means; their data is kept."""
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        _access_changed(user)


def user_enable(*, user: User) -> None:
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])


# Who may see an account (the other side of accessible_accounts): its owner and its
# grantees. A SQL sub-select with two parameters, both the account's id.
ACCOUNT_READERS_SQL = (
    "SELECT owner_id FROM accounts_account WHERE id = %s"
    " UNION SELECT user_id FROM accounts_accountgrant WHERE account_id = %s"
)


def accessible_accounts(user: User) -> list[AccountAccess]:
    """Every account the user may see, with their rights; other accounts don't exist to them.

    One query: owned accounts and accounts granted to the user (a LEFT JOIN on the grant).
    """
    # Plain SQL (groupware.core.sql): every API request starts here.
    query = (
        f"SELECT {sql.columns(Account, 'a')[0]}, g.may_write FROM accounts_account a"  # noqa: S608 (column names only)
        " LEFT JOIN accounts_accountgrant g ON g.account_id = a.id AND g.user_id = %s"
        " WHERE a.owner_id = %s OR g.id IS NOT NULL ORDER BY a.id"
    )
    found = sql.instances(Account, query, [user.pk, user.pk], extra=1)
    return [
        AccountAccess(account=account, is_read_only=account.owner_id != user.pk and not may_write)
        for account, (may_write,) in found
    ]


def account_grant(*, account: Account, user: User, may_write: bool = False) -> AccountGrant:
    """Let ``user`` see (and, with may_write, change) ``account``."""
    with transaction.atomic():
        grant, _ = AccountGrant.objects.update_or_create(account=account, user=user, defaults={"may_write": may_write})
        _session_changed(user)
    return grant


def account_revoke(*, account: Account, user: User) -> None:
    with transaction.atomic():
        AccountGrant.objects.filter(account=account, user=user).delete()
        _session_changed(user)


def _session_changed(user: User) -> None:
    # The session resource lists accounts: its state string must change (RFC 8620 §2).
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    user.refresh_from_db(fields=["session_generation"])
    _access_changed(user)


def _access_changed(user: User) -> None:
    # Open push connections re-check which accounts they may report on (after commit).
    from groupware.core import events

    user_pk = user.pk
    transaction.on_commit(lambda: events.publish_access_change(user_pk))


def primary_account(user: User) -> Account | None:
    return Account.objects.filter(owner=user, is_personal=True).order_by("pk").first()


# --- Credentials -------------------------------------------------------------------------


def app_password_create(*, user: User, name: str) -> tuple[AppPassword, str]:
    """A new app password for one client; the plaintext is returned once and never stored."""
    plaintext = app_password_generate()
    canonical = app_password_canonical(plaintext)
    assert canonical is not None  # generated in the canonical shape
    with transaction.atomic():
        app_password = AppPassword(user=user, name=name.strip(), digest=secret_digest(canonical))
        app_password.full_clean(exclude=["user"])
        app_password.save()
    return app_password, plaintext


def app_password_revoke(*, app_password: AppPassword) -> None:
    """Stop an app password from working; the row stays so the admin shows when and what."""
    with transaction.atomic():
        if app_password.revoked is None:
            app_password.revoked = timezone.now()
            app_password.save(update_fields=["revoked"])
            _access_changed(app_password.user)


def api_token_create(*, user: User, name: str, expires: datetime | None = None) -> tuple[ApiToken, str]:
    """A new Bearer token (RFC 6750); the plaintext is returned once and never stored."""
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": "The expiry must be in the future."})
    plaintext = api_token_generate()
    with transaction.atomic():
        token = ApiToken(
            user=user,
            name=name.strip(),
            digest=secret_digest(plaintext),
            prefix=plaintext[:API_TOKEN_PREFIX_LENGTH],
            expires=expires,
        )
        token.full_clean(exclude=["user"])
        token.save()
    return token, plaintext


def api_token_revoke(*, api_token: ApiToken) -> None:
    with transaction.atomic():
        if api_token.revoked is None:
            api_token.revoked = timezone.now()
            api_token.save(update_fields=["revoked"])
            _access_changed(api_token.user)


# --- Domains and aliases -----------------------------------------------------------------


def domain_normalize(name: str) -> str:
    """Domains compare case-insensitively (RFC 4343); a trailing root dot is dropped."""
    return name.strip().rstrip(".").lower()


def domain_check(name: str) -> str:
    """The stored form of a domain name, checked; raises ValidationError."""
    name = domain_normalize(name)
    try:
        DomainNameValidator()(name)
    except ValidationError:
        raise ValidationError({"name": "Enter a valid domain name."})
    return name


def domain_create(*, name: str, is_active: bool = True) -> Domain:
    name = domain_check(name)
    with transaction.atomic():
        domain = Domain(name=name, is_active=is_active)
        domain.full_clean()
        domain.save()
    return domain


def alias_normalize(address: str) -> str:
    """The stored form of an alias address, checked; raises ValidationError.

    The domain must be one this server knows (a Domain), and the address must not be a
    user's own login, which already delivers to that user.
    """
    address = address.strip()
    local, at, domain_part = address.rpartition("@")
    if not at or not domain_part:
        raise ValidationError({"address": "Enter an address like name@example.com, or @example.com for all."})
    domain_name = domain_normalize(domain_part)
    # Local parts are matched case-insensitively in practice (RFC 5321 §2.4 leaves it to the
    # receiving server), so aliases are stored in lower case and compare exactly.
    address = f"{local.lower()}@{domain_name}"
    if local:
        try:
            EmailValidator()(address)
        except ValidationError:
            raise ValidationError({"address": "Enter a valid email address."})
    if not Domain.objects.filter(name=domain_name).exists():
        raise ValidationError({"address": f"{domain_name} is not a domain of this server."})
    if local and User.objects.filter(email__iexact=address).exists():
        raise ValidationError({"address": "This address is a user's own address."})
    return address


def alias_create(*, user: User, address: str) -> Alias:
    """Deliver mail for ``address`` to ``user``; ``@domain`` catches every unknown local part."""
    address = alias_normalize(address)
    with transaction.atomic():
        alias = Alias(user=user, address=address)
        alias.full_clean(exclude=["user"])
        alias.save()
    return alias
