"""Sending settings read from the environment (called from groupware/settings.py).

``SUBMISSION_SMARTHOST`` is a URL: ``smtp://[user:password@]host[:port]`` (plain, or
STARTTLS with ``?starttls=true``; ``?starttls=required`` refuses to send without it) or
``smtps://[user:password@]host[:port]`` (implicit TLS, RFC 8314). Unset: direct delivery
to each domain's MX hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from groupware.config import env_int, env_str


@dataclass(frozen=True)
class Smarthost:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "no"  # "no" | "opportunistic" | "required"
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True


def smarthost(raw: str | None) -> Smarthost | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"SUBMISSION_SMARTHOST must be smtp://host[:port] or smtps://host[:port], got {raw!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("SUBMISSION_SMARTHOST has an invalid port") from None
    options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    unknown = set(options) - {"starttls", "verify"}
    if unknown:
        raise ImproperlyConfigured(f"SUBMISSION_SMARTHOST has unknown options: {', '.join(sorted(unknown))}")
    starttls = {"true": "opportunistic", "yes": "opportunistic", "1": "opportunistic", "required": "required"}.get(
        options.get("starttls", "no"), "no"
    )
    implicit = parts.scheme == "smtps"
    return Smarthost(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls="no" if implicit else starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        verify_tls=options.get("verify", "true") not in {"false", "no", "0"},
    )


def submission_settings() -> dict:
    """Every sending setting, checked (the keys become Django settings)."""
    return {
        "SUBMISSION_SMARTHOST": smarthost(env_str("SUBMISSION_SMARTHOST")),
        "SUBMISSION_HELO_NAME": env_str("SUBMISSION_HELO_NAME"),
        "SUBMISSION_MAX_DELAYED_SEND": env_int("SUBMISSION_MAX_DELAYED_SEND", 7 * 24 * 3600),
        "SUBMISSION_MAX_RECIPIENTS": env_int("SUBMISSION_MAX_RECIPIENTS", 100, minimum=1),
        "SUBMISSION_MAX_MESSAGE_SIZE": env_int("SUBMISSION_MAX_MESSAGE_SIZE", 25_000_000, minimum=1024),
        "SUBMISSION_MESSAGES_PER_HOUR": env_int("SUBMISSION_MESSAGES_PER_HOUR", 200, minimum=1),
        "SUBMISSION_RECIPIENTS_PER_DAY": env_int("SUBMISSION_RECIPIENTS_PER_DAY", 2000, minimum=1),
        "SUBMISSION_RETRY_FOR": env_int("SUBMISSION_RETRY_FOR", 5 * 24 * 3600, minimum=60),
        "SUBMISSION_RETRY_BASE": env_int("SUBMISSION_RETRY_BASE", 60, minimum=1),
        "SUBMISSION_RETRY_MAX_INTERVAL": env_int("SUBMISSION_RETRY_MAX_INTERVAL", 3600, minimum=1),
        "SUBMISSION_SMTP_TIMEOUT": env_int("SUBMISSION_SMTP_TIMEOUT", 60, minimum=1),
        "SUBMISSION_SWEEP_INTERVAL": env_int("SUBMISSION_SWEEP_INTERVAL", 10, minimum=1),
        "SUBMISSION_MX_PORT": env_int("SUBMISSION_MX_PORT", 25, minimum=1, maximum=65535),
        "SUBMISSION_DNS_SERVER": dns_server(env_str("SUBMISSION_DNS_SERVER")),
    }


def dns_server(raw: str | None) -> tuple[str, int] | None:
    """``ip[:port]`` of the resolver for MX lookups (unset: the system's resolvers)."""
    if raw is None:
        return None
    host, _, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "53")
    import ipaddress

    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ImproperlyConfigured(f"SUBMISSION_DNS_SERVER must be an IP address[:port], got {raw!r}") from None
    if not 0 < number < 65536:
        raise ImproperlyConfigured(f"SUBMISSION_DNS_SERVER has an invalid port: {raw!r}")
    return host, number
