"""Services that own writes to users, accounts and credentials."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Account, User
from jmap.context import AccountAccess

# Called with the new user's personal Account inside the creating transaction, so later
# data types (mail, contacts...) can provision their defaults (e.g. the standard mailboxes).
ACCOUNT_PROVISIONERS: list = []


def user_create(
    *, email: str, password: str | None = None, name: str = "", is_staff: bool = False, is_superuser: bool = False
) -> User:
    """Create a user with their personal JMAP account."""
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


def accessible_accounts(user: User) -> list[AccountAccess]:
    """Every account the user may see, with their rights; other accounts don't exist to them."""
    return [AccountAccess(account=account, is_read_only=False) for account in Account.objects.filter(owner=user)]


def primary_account(user: User) -> Account | None:
    return Account.objects.filter(owner=user, is_personal=True).order_by("pk").first()
