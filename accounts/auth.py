"""API authentication: HTTP Basic (RFC 7617) and Bearer tokens (RFC 6750).

The API looks only at the ``Authorization`` header, never at a session cookie: a cookie
would be sent by the browser on cross-site requests too (CSRF), and JMAP clients don't
keep one anyway.

Verifying an account password means running PBKDF2, which is deliberately slow. Clients
send the same Basic credentials on every request, so a verified pair is remembered in
process memory for ``AUTH_CACHE_SECONDS`` under a keyed digest (never the password itself),
together with the password hash it was verified against. Every cache hit reloads the user
(one query, needed anyway) and is accepted only while the user is active and their
password hash is unchanged, so a password change or a disabled user takes effect at once,
in every process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, NoReturn, TypeVar

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.credentials import (
    API_TOKEN,
    APP_PASSWORD,
    Credential,
    app_password_canonical,
    password_credential,
    secret_digest,
)
from accounts.models import ApiToken, AppPassword, User
from groupware.core import sql
from jmap.jsonio import dumps

logger = logging.getLogger("accounts.auth")
_M = TypeVar("_M", bound=models.Model)

REALM = "JMAP"
# last_used is informative (which client is still in use); writing it on every request
# would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
CREDENTIAL_CACHE_SIZE = 10_000

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*", flags=re.ASCII)
_MAX_TOKEN_LENGTH = 512
# RFC 7617 §2: the user-id must not contain control characters (nor a colon).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_TITLES = {401: "Unauthorized", 429: "Too Many Requests"}


class AuthenticationFailed(Exception):
    """The request is not authenticated; ``response()`` is what to answer."""

    def __init__(
        self, detail: str, status: int = 401, *, retry_after: int | None = None, bearer_error: str | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.bearer_error = bearer_error

    def response(self) -> HttpResponse:
        # RFC 7807 problem details.
        body = {
            "type": "about:blank",
            "status": self.status,
            "title": _TITLES.get(self.status, "Unauthorized"),
            "detail": self.detail,
        }
        response = HttpResponse(dumps(body), status=self.status, content_type="application/problem+json")
        if self.status == 401:
            response["WWW-Authenticate"] = self.challenge()
        if self.retry_after is not None:
            response["Retry-After"] = str(self.retry_after)  # RFC 9110 §10.2.3 (seconds)
        response["Cache-Control"] = "no-store"
        return response

    def challenge(self) -> str:
        # RFC 7235 §4.1: one header may carry several challenges, comma-separated.
        # RFC 7617 §2.1: charset="UTF-8" says credentials are encoded as UTF-8.
        # RFC 6750 §3: an error code only when a token was presented (§3.1).
        bearer = f'Bearer realm="{REALM}"'
        if self.bearer_error:
            bearer += f', error="{self.bearer_error}"'
        return f'Basic realm="{REALM}", charset="UTF-8", {bearer}'


# --- Remembered Basic credentials ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verified:
    user_pk: int
    password_hash: str
    expires: float  # time.monotonic()


class CredentialCache:
    """Verified (login, password) pairs, in process memory, least recently used evicted first."""

    def __init__(self, max_entries: int = CREDENTIAL_CACHE_SIZE) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(login: str, password: str) -> bytes:
        # Keyed with SECRET_KEY so the cache holds nothing that could be tested offline
        # against guessed passwords. The login can't contain NUL (checked when parsing),
        # so "login\0password" is unambiguous.
        message = f"{login}\0{password}".encode()
        return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()

    def get(self, key: bytes) -> _Verified | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, *, user_pk: int, password_hash: str, ttl: float) -> None:
        entry = _Verified(user_pk, password_hash, time.monotonic() + ttl)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


credential_cache = CredentialCache()


# --- Failed-login rate limiting -----------------------------------------------------------


def client_address(request: HttpRequest | None) -> str | None:
    """The address failures are counted against.

    An IPv6 client usually controls a whole /64, so counting per /128 would let it rotate
    addresses for free; IPv6 addresses are counted per /64.
    """
    if request is None:
        return None
    raw = request.META.get("REMOTE_ADDR")
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailureLimiter:
    """Counts failed logins per login name and per client address in Django's cache.

    Windows are fixed and aligned (``time // window``), so one cache key per subject and
    window is enough and Retry-After is exact. Success is never counted and never resets a
    counter (resetting would let an attacker with one valid account clear their address).
    """

    prefix = "auth-fail"

    def _keys(self, login: str | None, address: str | None, window: int, now: float) -> list[str]:
        bucket = int(now // window)
        keys = []
        if login is not None:
            # casefold: "Alice@" and "alice@" are the same login, so the same counter.
            subject = hashlib.sha256(login.strip().casefold().encode()).hexdigest()[:32]
            keys.append(f"{self.prefix}:user:{bucket}:{subject}")
        if address is not None:
            subject = hashlib.sha256(address.encode()).hexdigest()[:32]
            keys.append(f"{self.prefix}:addr:{bucket}:{subject}")
        return keys

    def retry_after(self, *, login: str | None, address: str | None) -> int | None:
        """Seconds until another attempt is allowed, or None if one is allowed now."""
        window = settings.AUTH_FAILURE_WINDOW
        now = time.time()
        keys = self._keys(login, address, window, now)
        if not keys:
            return None
        try:
            counts = cache.get_many(keys)
        except Exception:
            # The cache (Redis) being down must not take the API down with it; the password
            # hash still makes guessing slow. Fail open, loudly.
            logger.exception("rate limit cache unavailable")
            return None
        if any(int(count) >= settings.AUTH_FAILURE_LIMIT for count in counts.values()):
            return max(1, math.ceil(window - now % window))
        return None

    def record(self, *, login: str | None, address: str | None) -> None:
        window = settings.AUTH_FAILURE_WINDOW
        for key in self._keys(login, address, window, time.time()):
            try:
                cache.add(key, 0, timeout=window)
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, timeout=window)
            except Exception:
                logger.exception("rate limit cache unavailable")

    def clear(self, *, login: str | None, address: str | None) -> None:
        """Forget the current window's failures (an administrator unlocking someone)."""
        window = settings.AUTH_FAILURE_WINDOW
        cache.delete_many(self._keys(login, address, window, time.time()))


failure_limiter = FailureLimiter()


# --- Authentication ------------------------------------------------------------------------


def authenticate_api(request: HttpRequest) -> User:
    """The user a JMAP request is made by, from its Authorization header alone."""
    return authenticate_authorization(request.META.get("HTTP_AUTHORIZATION"), address=client_address(request))


def authenticate_authorization(authorization: str | None, *, address: str | None) -> User:
    """Check an ``Authorization`` header value (also for transports without an HttpRequest).

    Raises AuthenticationFailed (401, or 429 when too many attempts failed).
    """
    if not authorization or not authorization.strip():
        # Not a failed attempt: clients commonly ask first and answer the challenge.
        raise AuthenticationFailed("Authentication required.")
    # RFC 7235 §2.1: the scheme is case-insensitive; one or more spaces follow it.
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "basic":
        return _authenticate_basic(credentials, address)
    if scheme == "bearer":
        return _authenticate_bearer(credentials, address)
    raise AuthenticationFailed("Unsupported authentication scheme: use Basic or Bearer.")


def parse_basic(credentials: str) -> tuple[str, str] | None:
    """(user-id, password) from Basic credentials (RFC 7617 §2), or None if malformed."""
    try:
        # The header arrives as latin-1 text; anything outside ASCII can't be base64.
        raw = base64.b64decode(credentials.encode("ascii"), validate=True)
        # RFC 7617 §2.1: the server announced charset="UTF-8", so decode as UTF-8.
        text = raw.decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    login, colon, password = text.partition(":")
    if not colon or not login or _CONTROL.search(login):
        return None
    return login, password


def _rate_limited(login: str | None, address: str | None) -> None:
    wait = failure_limiter.retry_after(login=login, address=address)
    if wait is not None:
        # The credentials are not even looked at: no guess can be confirmed while limited.
        raise AuthenticationFailed("Too many failed login attempts; try again later.", status=429, retry_after=wait)


def _fail(detail: str, *, login: str | None, address: str | None, bearer_error: str | None = None) -> NoReturn:
    failure_limiter.record(login=login, address=address)
    logger.info("authentication failed for %r from %s", login, address)
    raise AuthenticationFailed(detail, bearer_error=bearer_error)


def _authenticate_basic(credentials: str, address: str | None) -> User:
    parsed = parse_basic(credentials)
    if parsed is None:
        _rate_limited(None, address)
        _fail("Malformed Basic credentials.", login=None, address=address)
    login, password = parsed
    # Credentials verified moments ago are no guess: they skip the failure-limit lookup
    # (a cache round trip on every request otherwise).
    user = _cached_basic(login, password)
    if user is not None:
        return user
    _rate_limited(login, address)
    user = verify_basic(login, password)
    if user is None:
        # Unknown login, wrong password and disabled user look the same (no user enumeration).
        _fail("Invalid credentials.", login=login, address=address)
    return user


def _cached_basic(login: str, password: str) -> User | None:
    """The user, if these exact credentials were verified within AUTH_CACHE_SECONDS and the
    user's password hash and active flag are unchanged (one primary-key lookup)."""
    if settings.AUTH_CACHE_SECONDS <= 0 or _CONTROL.search(login):
        return None
    key = CredentialCache.key(login, password)
    entry = credential_cache.get(key)
    if entry is None:
        return None
    user = _user_by_pk(entry.user_pk)
    if user is not None and user.is_active and hmac.compare_digest(user.password, entry.password_hash):
        user.credential = password_credential(user)
        return user
    # Changed password or disabled user: forget it; the caller checks from scratch (the
    # password may also have been set to the same value again).
    credential_cache.discard(key)
    return None


def _user_by_pk(pk: int) -> User | None:
    """A User by primary key in plain SQL (groupware.core.sql): this runs on every cached
    request, where building the query through the ORM cost more than the round trip."""
    query = f"SELECT {sql.columns(User)[0]} FROM accounts_user WHERE id = %s"  # noqa: S608 (column names)
    found = sql.instances(User, query, [pk])
    return found[0] if found else None


def verify_basic(login: str, password: str) -> User | None:
    """The active user for this login and account password or app password, else None."""
    if _CONTROL.search(login):  # RFC 7617 §2; also keeps the cache key unambiguous
        return None
    cached = _cached_basic(login, password)
    if cached is not None:
        return cached
    # Concurrent requests with the same new credentials (a client opening several
    # connections at start-up) wait for the first one's password hash instead of each
    # running it: one PBKDF2 per credential, not one per connection.
    with _verification_lock(login, password):
        cached = _cached_basic(login, password)
        if cached is not None:
            return cached
        return _verify_uncached(login, password)


_verification_locks: dict[bytes, threading.Lock] = {}
_verification_locks_guard = threading.Lock()


@contextmanager
def _verification_lock(login: str, password: str) -> Iterator[None]:
    key = CredentialCache.key(login, password)
    with _verification_locks_guard:
        lock = _verification_locks.setdefault(key, threading.Lock())
    try:
        with lock:
            yield
    finally:
        with _verification_locks_guard:
            if not lock.locked():
                _verification_locks.pop(key, None)


def _verify_uncached(login: str, password: str) -> User | None:
    ttl = settings.AUTH_CACHE_SECONDS
    key = CredentialCache.key(login, password) if ttl > 0 else None

    canonical = app_password_canonical(password)
    if canonical is not None:
        app_password = _unique(AppPassword.objects.select_related("user").filter(digest=secret_digest(canonical)))
        if (
            app_password is not None
            and app_password.revoked is None
            and app_password.user.is_active
            and app_password.user.email.casefold() == login.casefold()
        ):
            _touch(AppPassword, app_password)
            app_password.user.credential = Credential(APP_PASSWORD, app_password.pk)
            return app_password.user
        # Otherwise it may still be an account password that happens to look like one.

    try:
        user = User._default_manager.get_by_natural_key(login)
    except User.DoesNotExist:
        # Run the hasher anyway so the response time doesn't reveal which logins exist.
        User().set_password(password)
        return None
    # check_password() may upgrade the stored hash; the cache keeps the upgraded one.
    if not user.check_password(password) or not user.is_active:
        return None
    if key is not None:
        credential_cache.put(key, user_pk=user.pk, password_hash=user.password, ttl=ttl)
    user.credential = password_credential(user)
    return user


def _authenticate_bearer(credentials: str, address: str | None) -> User:
    invalid = "The access token is invalid, expired or revoked."
    if len(credentials) <= _MAX_TOKEN_LENGTH and _B64TOKEN.fullmatch(credentials) is not None:
        found = _token_by_digest(secret_digest(credentials))
        if found is not None:
            user, token_pk, revoked, expires, last_used = found
            if revoked is None and (expires is None or expires > timezone.now()) and user.is_active:
                # A valid token is a 256-bit secret, not a guess: the failure limiter is
                # consulted only when a token fails (it costs a cache round trip).
                token = ApiToken(pk=token_pk, last_used=last_used)
                _touch(ApiToken, token)
                user.credential = Credential(API_TOKEN, token_pk)
                return user
    _rate_limited(None, address)
    _fail(invalid, login=None, address=address, bearer_error="invalid_token")


_token_select: dict[str, tuple[str, list[str]]] = {}


def _token_by_digest(digest: str) -> tuple[User, int, Any, Any, Any] | None:
    """(user, token pk, revoked, expires, last_used) for a token digest: one prepared join."""
    from django.db import connections, router

    alias = router.db_for_read(ApiToken)
    connection = connections[alias]
    prepared = _token_select.get(connection.vendor)
    if prepared is None:
        quote = connection.ops.quote_name
        user_fields = User._meta.concrete_fields
        columns = [f"u.{quote(field.column)}" for field in user_fields]
        columns += [f"t.{quote(name)}" for name in ("id", "revoked", "expires", "last_used")]
        # Identifiers come from the model definitions; the digest is a bound parameter.
        sql = (
            f"SELECT {', '.join(columns)} FROM {quote(ApiToken._meta.db_table)} t "  # noqa: S608
            f"JOIN {quote(User._meta.db_table)} u ON u.{quote(User._meta.pk.column)} = t.{quote('user_id')} "
            f"WHERE t.{quote('digest')} = %s"
        )
        prepared = _token_select[connection.vendor] = (sql, [field.attname for field in user_fields])
    sql, attnames = prepared
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    count = len(attnames)
    user = User.from_db(alias, attnames, row[:count])
    token_pk, revoked, expires, last_used = row[count:]
    # Raw cursors return what the backend gives; normalise the datetimes like the ORM does.
    revoked, expires, last_used = (_as_datetime(connection, value) for value in (revoked, expires, last_used))
    return user, token_pk, revoked, expires, last_used


def _as_datetime(connection: Any, value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value if value is None or timezone.is_aware(value) else timezone.make_aware(value, UTC)
    from django.utils.dateparse import parse_datetime

    parsed = parse_datetime(value)
    return parsed if parsed is None or timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _unique(queryset: QuerySet[_M]) -> _M | None:
    """The row a lookup on a unique column finds, if any (no ORDER BY, LIMIT 1)."""
    rows = list(queryset.order_by()[:1])
    return rows[0] if rows else None


def _touch(model: type[models.Model], credential: AppPassword | ApiToken) -> None:
    now = timezone.now()
    if credential.last_used is None or now - credential.last_used >= LAST_USED_RESOLUTION:
        model._default_manager.filter(pk=credential.pk).update(last_used=now)
        credential.last_used = now


class EmailBackend(ModelBackend):
    """Password login for the Django admin: the email matches case-insensitively.

    ``get_by_natural_key`` is ``email__iexact``; this adds the same failed-login limits as
    the API, so the admin login is no easier to brute-force.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        address = client_address(request)
        if failure_limiter.retry_after(login=username, address=address) is not None:
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            failure_limiter.record(login=username, address=address)
        return user
