"""Which web origins may open push connections (a browser sends Origin; others don't)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """No Origin (a non-browser client), the server's own origin, or one configured.

    A browser may attach remembered Basic credentials to a cross-site WebSocket handshake,
    so a page from elsewhere must not get a connection in the user's name.
    """
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    allowed = {value.lower().rstrip("/") for value in settings.PUSH_ALLOWED_ORIGINS}
    if settings.PUBLIC_URL:
        public = urlsplit(settings.PUBLIC_URL)
        allowed.add(f"{public.scheme}://{public.netloc}".lower())
    if origin in allowed:
        return True
    # Same origin: the Origin's host and port are the Host the request was sent to.
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()
