"""Push subscriptions (RFC 8620 §7.2) and the VAPID key (RFC 9749): the writes."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.credentials import Credential, credential_valid
from accounts.models import User
from groupware.push.models import PushSubscription, VapidKey


class PushRefused(Exception):
    """A subscription can't be created or changed; ``kind`` is the SetError type."""

    def __init__(self, kind: str, description: str, properties: list[str] | None = None) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.properties = properties


# --- Push URLs: no server-side request forgery (RFC 8620 §9.3) ---------------------------


def push_url_problem(url: str) -> str | None:
    """Why the server must not POST to this URL, or None if it may.

    The URL must be https and every address its host resolves to must be public: no
    loopback, private, link-local, shared, multicast or reserved ranges (also when written
    as an IPv4-mapped IPv6 address). WEB_PUSH_ALLOW_LOOPBACK (tests only) admits http and
    loopback addresses, and nothing else that is internal.
    """
    allow_loopback = settings.WEB_PUSH_ALLOW_LOOPBACK
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL does not parse"
    if parts.scheme != "https" and not (allow_loopback and parts.scheme == "http"):
        return "the URL must begin with https://"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return "the URL must name a host and no credentials"
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return "the host does not resolve"
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if allow_loopback and address.is_loopback:
            continue
        if not address.is_global or address.is_multicast:
            return "the host resolves to an internal address"
    return None


# --- Subscriptions -----------------------------------------------------------------------


def _bounded_expiry(expires: datetime | None) -> datetime:
    # RFC 8620 §7.2: Basic and token credentials aren't time-bounded, so bound the expiry.
    latest = timezone.now() + timedelta(days=settings.PUSH_SUBSCRIPTION_MAX_DAYS)
    return latest if expires is None or expires > latest else expires


def _check_keys(keys: dict[str, str] | None) -> tuple[str, str]:
    if keys is None:
        return "", ""
    try:
        p256dh = base64.urlsafe_b64decode(keys["p256dh"] + "=" * (-len(keys["p256dh"]) % 4))
        auth = base64.urlsafe_b64decode(keys["auth"] + "=" * (-len(keys["auth"]) % 4))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except (ValueError, KeyError, TypeError):
        raise PushRefused("invalidProperties", "keys.p256dh must be a P-256 public key", ["keys"]) from None
    if len(auth) != 16:  # RFC 8291 §3.2: a 16-octet authentication secret
        raise PushRefused("invalidProperties", "keys.auth must be 16 octets", ["keys"])
    return keys["p256dh"], keys["auth"]


def push_subscription_create(
    *,
    user: User,
    device_client_id: str,
    url: str,
    keys: dict[str, str] | None,
    expires: datetime | None,
    types: list[str] | None,
    credential: Credential | None,
) -> PushSubscription:
    """Store a subscription and send it (and only it) its PushVerification, after commit.

    ``credential`` authenticated the request: the subscription lives only as long as it
    does (RFC 8620 §7.2; ``push_subscriptions_prune``). None is refused."""
    if credential is None:
        raise PushRefused("forbidden", "Push subscriptions need a request authenticated by a credential.")
    p256dh, auth = _check_keys(keys)
    problem = push_url_problem(url)
    if problem is not None:
        raise PushRefused("invalidProperties", f"url: {problem}", ["url"])
    with transaction.atomic():
        # RFC 8620 §9.3: cap the number per user and the rate of creation.
        User.objects.select_for_update().filter(pk=user.pk).first()
        mine = PushSubscription.objects.filter(user=user)
        if mine.count() >= settings.PUSH_SUBSCRIPTIONS_PER_USER:
            raise PushRefused("overQuota", "Too many push subscriptions; destroy one first.")
        hour_ago = timezone.now() - timedelta(hours=1)
        if mine.filter(created__gte=hour_ago).count() >= settings.PUSH_SUBSCRIPTIONS_PER_HOUR:
            raise PushRefused("rateLimit", "Too many push subscriptions created recently; try again later.")
        subscription = PushSubscription.objects.create(
            user=user,
            device_client_id=device_client_id,
            url=url,
            p256dh=p256dh,
            auth=auth,
            verification_code=secrets.token_hex(32),  # 256 bits: no brute force
            expires=_bounded_expiry(expires),
            types=types,
            credential_kind=credential.kind,
            credential_pk=credential.pk,
            credential_fingerprint=credential.fingerprint,
        )
        from groupware.push.webpush import send_verification

        subscription_pk = subscription.pk
        transaction.on_commit(lambda: send_verification(subscription_pk))
    return subscription


def push_subscription_update(
    *,
    subscription: PushSubscription,
    verification_code: str | None = None,
    expires: datetime | None = None,
    set_expires: bool = False,
    types: list[str] | None = None,
    set_types: bool = False,
) -> list[str]:
    """Apply an update; returns the properties whose value differs from what was asked."""
    adjusted = []
    fields = []
    if verification_code is not None:
        if not secrets.compare_digest(verification_code, subscription.verification_code):
            raise PushRefused("invalidProperties", "The verification code is wrong.", ["verificationCode"])
        subscription.verified = True
        fields.append("verified")
    if set_expires:
        subscription.expires = _bounded_expiry(expires)
        fields.append("expires")
        if expires is None or subscription.expires != expires:
            adjusted.append("expires")
    if set_types:
        subscription.types = types
        fields.append("types")
    if fields:
        with transaction.atomic():
            subscription.save(update_fields=fields)
    return adjusted


def push_subscription_destroy(*, subscription: PushSubscription) -> None:
    # RFC 8620 §7.2: the URL and keys are erased with the row. One DELETE statement (no
    # cascade to collect): Web Push threads call this beside requests.
    PushSubscription.objects.filter(pk=subscription.pk).delete()


def push_subscriptions_purge_expired() -> int:
    return PushSubscription.objects.filter(expires__lte=timezone.now()).delete()[0]


def push_subscriptions_prune(*, user_pk: int) -> int:
    """Destroy the user's subscriptions whose credential no longer authenticates them
    (revoked or expired app password or token, changed password, disabled user): RFC 8620
    §7.2 "the push subscription MUST be destroyed". Run when a user's credentials change
    and before each push is sent."""
    subscriptions = list(PushSubscription.objects.filter(user_id=user_pk))
    if not subscriptions:  # most users have none: no need to look at their credentials
        return 0
    user = User.objects.filter(pk=user_pk).first()
    # One check per credential, not per subscription (a device may hold several).
    valid = {c: user is not None and credential_valid(user, c) for c in {s.credential for s in subscriptions}}
    dead = [s.pk for s in subscriptions if not valid[s.credential]]
    if dead:
        PushSubscription.objects.filter(pk__in=dead).delete()
    return len(dead)


# --- VAPID key (RFC 9749) ----------------------------------------------------------------


def _new_key_pair() -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return pem, base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def vapid_key_current() -> VapidKey:
    """The key in use; generated and stored on first use."""
    key = VapidKey.objects.first()
    if key is not None:
        return key
    pem, public = _new_key_pair()
    try:
        with transaction.atomic():
            return VapidKey.objects.create(generation=1, private_pem=pem, public_key=public)
    except IntegrityError:  # another process made it first: use theirs
        return VapidKey.objects.get(generation=1)


def vapid_key_rotate() -> tuple[VapidKey, int]:
    """A new key pair; every push subscription is destroyed (returns how many).

    RFC 9749 §5: subscriptions made with the old key can't be used with the new one; the
    session state changes (the advertised applicationServerKey did), so clients notice and
    subscribe again.
    """
    pem, public = _new_key_pair()
    with transaction.atomic():
        current = VapidKey.objects.select_for_update().first()
        generation = (current.generation if current else 0) + 1
        key = VapidKey.objects.create(generation=generation, private_pem=pem, public_key=public)
        removed = PushSubscription.objects.all().delete()[0]
        User.objects.update(session_generation=F("session_generation") + 1)
    return key, removed
