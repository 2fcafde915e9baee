"""Generated secrets (app passwords, API tokens) and how they are digested for storage.

Both kinds are long random strings made by the server, so there is no dictionary to attack:
a single fast SHA-256 is enough to keep a database dump from being usable, and, unlike a
salted slow hash, it lets authentication find the credential with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

# 4 groups of 4 from 36 symbols: 16 * log2(36) ≈ 82.7 bits of entropy.
APP_PASSWORD_ALPHABET = string.ascii_lowercase + string.digits
APP_PASSWORD_GROUPS = 4
APP_PASSWORD_GROUP_LENGTH = 4
_APP_PASSWORD_CANONICAL = re.compile(rf"[a-z0-9]{{{APP_PASSWORD_GROUPS * APP_PASSWORD_GROUP_LENGTH}}}", flags=re.ASCII)
_APP_PASSWORD_SEPARATORS = re.compile(r"[\s-]+")

# A recognisable prefix lets secret scanners and people tell what a leaked string is.
API_TOKEN_PREFIX = "gw_"
API_TOKEN_BYTES = 32  # 256 bits
API_TOKEN_PREFIX_LENGTH = 8  # stored in clear so a token can be recognised in the admin


def secret_digest(secret: str) -> str:
    """The stored form of a generated secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def app_password_generate() -> str:
    """A new app password as shown to the user, e.g. ``k3fa-9xq2-mmb7-0pzt``."""
    groups = (
        "".join(secrets.choice(APP_PASSWORD_ALPHABET) for _ in range(APP_PASSWORD_GROUP_LENGTH))
        for _ in range(APP_PASSWORD_GROUPS)
    )
    return "-".join(groups)


def app_password_canonical(text: str) -> str | None:
    """The digested form of something typed as an app password, or None if it can't be one.

    People retype app passwords, so case, spaces and dashes don't matter. Anything that
    doesn't have the shape of an app password is rejected here, so ordinary account
    passwords never cost a database lookup.
    """
    canonical = _APP_PASSWORD_SEPARATORS.sub("", text).lower()
    if _APP_PASSWORD_CANONICAL.fullmatch(canonical) is None:
        return None
    return canonical


def api_token_generate() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(API_TOKEN_BYTES)


# -- Which credential authenticated a request ----------------------------------------------------

PASSWORD = "password"
APP_PASSWORD = "app_password"
API_TOKEN = "token"


@dataclass(frozen=True)
class Credential:
    """What authenticated a request (``User.credential`` after accounts.auth): the account
    password (with a fingerprint of its stored hash, which any password change alters), an
    app password or an API token (by pk). Things tied to a credential, like push
    subscriptions (RFC 8620 §7.2), end with it."""

    kind: str
    pk: int | None = None
    fingerprint: str = ""


def password_credential(user: Any) -> Credential:
    fingerprint = hashlib.sha256(str(user.password).encode()).hexdigest()[:32]
    return Credential(PASSWORD, None, fingerprint)


def credential_valid(user: Any, credential: Credential) -> bool:
    """Whether the credential still authenticates the user (not revoked, not expired, the
    password not changed, the user active)."""
    from django.db.models import Q
    from django.utils import timezone

    from accounts.models import ApiToken, AppPassword

    if not user.is_active:
        return False
    if credential.kind == PASSWORD:
        return password_credential(user).fingerprint == credential.fingerprint and user.has_usable_password()
    if credential.kind == APP_PASSWORD:
        return AppPassword.objects.filter(pk=credential.pk, user_id=user.pk, revoked__isnull=True).exists()
    if credential.kind == API_TOKEN:
        live = Q(expires__isnull=True) | Q(expires__gt=timezone.now())
        return ApiToken.objects.filter(live, pk=credential.pk, user_id=user.pk, revoked__isnull=True).exists()
    return False
