"""Identity services (RFC 8621 §6): every write to an Identity goes through here."""

from __future__ import annotations

from typing import Any

from accounts.models import Account, User
from groupware.core.changes import Change, account_changes
from groupware.core.ids import encode
from groupware.mail.submission.addresses import address_valid, has_control, sender_addresses
from groupware.mail.submission.models import Identity

IDENTITY_TYPE = "Identity"
IDENTITY_ID_PREFIX = "i"


class IdentityError(Exception):
    """The protocol layer maps ``kind`` to a SetError type."""

    def __init__(self, kind: str, description: str, properties: list[str] | None = None) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.extra = {"properties": properties} if properties else {}


def identity_id(pk: int) -> str:
    return encode(IDENTITY_ID_PREFIX, pk)


def _check_text(values: dict[str, Any]) -> None:
    # Name and addresses end up in header fields: CR/LF would inject new fields.
    bad = [name for name in ("name", "email") if isinstance(values.get(name), str) and has_control(values[name])]
    for name in ("reply_to", "bcc"):
        for address in values.get(name) or []:
            if has_control(str(address.get("name") or "")) or not address_valid(address.get("email")):
                bad.append(name)
                break
    if bad:
        raise IdentityError("invalidProperties", "control characters or invalid addresses", bad)


def identity_create(*, account: Account, user: User, values: dict[str, Any]) -> Identity:
    """A new Identity; ``forbiddenFrom`` unless the user owns its email (RFC 8621 §6.3)."""
    email = values["email"].strip()
    _check_text({**values, "email": email})
    plain = email[2:] if email.startswith("*@") else email
    check = f"x@{plain.rpartition('@')[2]}" if email.startswith("*@") else plain
    if not address_valid(check):
        raise IdentityError("invalidProperties", "email is not a valid address", ["email"])
    if not sender_addresses(user).allows_identity_email(email):
        raise IdentityError("forbiddenFrom", f"you may not send from {email}")
    with account_changes(account.pk) as changes:
        identity = Identity.objects.create(
            account=account,
            name=values.get("name", ""),
            email=email,
            reply_to=values.get("reply_to"),
            bcc=values.get("bcc"),
            text_signature=values.get("text_signature", ""),
            html_signature=values.get("html_signature", ""),
            may_delete=values.get("may_delete", True),
        )
        changes.record(IDENTITY_TYPE, identity_id(identity.pk), Change.CREATED)
    return identity


def identity_update(*, identity: Identity, values: dict[str, Any]) -> Identity:
    """Change name, replyTo, bcc or the signatures (email is immutable)."""
    _check_text(values)
    with account_changes(identity.account_id) as changes:
        for field, value in values.items():
            setattr(identity, field, value)
        identity.save(update_fields=list(values))
        changes.record(IDENTITY_TYPE, identity_id(identity.pk), Change.UPDATED)
    return identity


def identity_destroy(*, identity: Identity) -> None:
    if not identity.may_delete:
        raise IdentityError("forbidden", "this identity may not be deleted (mayDelete is false)")
    with account_changes(identity.account_id) as changes:
        pk = identity.pk
        identity.delete()
        changes.record(IDENTITY_TYPE, identity_id(pk), Change.DESTROYED)


def identity_provision_default(account: Account) -> Identity | None:
    """The owner's login as an Identity of a new personal account (ACCOUNT_PROVISIONERS)."""
    if not account.is_personal:
        return None
    owner = account.owner
    with account_changes(account.pk) as changes:
        identity = Identity.objects.create(account=account, name=owner.name, email=owner.email, may_delete=False)
        changes.record(IDENTITY_TYPE, identity_id(identity.pk), Change.CREATED)
    return identity


def identity_ensure_default(account: Account) -> None:
    """Accounts made before sending existed get their default Identity on first use."""
    if not account.is_personal or Identity.objects.filter(account_id=account.pk, may_delete=False).exists():
        return
    with account_changes(account.pk):  # the account lock: one default, however many callers
        if not Identity.objects.filter(account_id=account.pk, may_delete=False).exists():
            identity_provision_default(account)
