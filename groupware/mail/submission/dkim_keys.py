"""DKIM (RFC 6376): per-domain RSA keys, the DNS record to publish, and signing."""

from __future__ import annotations

import base64
import logging

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import transaction
from django.utils import timezone

from accounts.models import Domain
from groupware.mail.submission.addresses import address_domain
from groupware.mail.submission.models import DkimKey

logger = logging.getLogger(__name__)
KEY_BITS = 2048
# What is signed: the fields a forger would change (RFC 6376 §5.4.1), plus the MIME ones.
SIGNED_HEADERS = [
    b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"in-reply-to", b"references",
]  # fmt: skip


def dkim_key_generate(*, domain: Domain, selector: str | None = None) -> DkimKey:
    """A new RSA key for the domain (replacing any previous one); publish its TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    selector = selector or timezone.now().strftime("gw%Y%m")
    with transaction.atomic():
        DkimKey.objects.filter(domain=domain).delete()
        return DkimKey.objects.create(domain=domain, selector=selector, private_key=pem)


def dkim_public_key_b64(key: DkimKey) -> str:
    private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def dkim_txt_record(key: DkimKey) -> tuple[str, str]:
    """(DNS name, TXT value) to publish for the key (RFC 6376 §3.6.1)."""
    return f"{key.selector}._domainkey.{key.domain.name}", f"v=DKIM1; k=rsa; p={dkim_public_key_b64(key)}"


def dkim_key_for(address: str) -> DkimKey | None:
    """The active key of the From address's domain, if the server has one."""
    domain = address_domain(address)
    return (
        DkimKey.objects.filter(domain__name=domain, domain__is_active=True, is_active=True)
        .select_related("domain")
        .first()
    )


def dkim_sign(message: bytes, key: DkimKey) -> bytes:
    """The message with a DKIM-Signature field prepended (relaxed/relaxed, rsa-sha256)."""
    signature = dkim.sign(
        message,
        key.selector.encode(),
        key.domain.name.encode(),
        key.private_key.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=SIGNED_HEADERS,
    )
    return signature + message
