"""DKIM keys in the admin: generated per domain, the TXT record shown; signatures verify."""

from __future__ import annotations

import dkim

from accounts import services
from groupware.mail.submission.dkim_keys import dkim_key_generate, dkim_public_key_b64, dkim_sign, dkim_txt_record
from groupware.mail.submission.models import DkimKey, OutboundMessage, SenderPolicy
from tests.accounts.test_admin import admin_client

__all__ = ["admin_client"]  # the fixture, shared with the accounts admin tests


def test_admin_generates_key_and_shows_txt_record(admin_client):
    domain = services.domain_create(name="example.net")
    response = admin_client.post(
        "/admin/submission/dkimkey/add/", {"domain": domain.pk, "selector": "mail1", "is_active": "on"}
    )
    assert response.status_code == 302, response.content
    key = DkimKey.objects.get(domain=domain)
    assert key.selector == "mail1"
    assert key.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    page = admin_client.get(f"/admin/submission/dkimkey/{key.pk}/change/").content.decode()
    assert "mail1._domainkey.example.net" in page
    assert f"v=DKIM1; k=rsa; p={dkim_public_key_b64(key)}" in page
    listing = admin_client.get("/admin/submission/dkimkey/").content.decode()
    assert "mail1._domainkey.example.net" in listing


def test_admin_pages_load(admin_client, user):
    SenderPolicy.objects.create(user=user, messages_per_hour=5)
    for path in (
        "/admin/submission/senderpolicy/",
        "/admin/submission/senderpolicy/add/",
        f"/admin/submission/senderpolicy/{SenderPolicy.objects.get().pk}/change/",
        "/admin/submission/outboundmessage/",
        "/admin/submission/dkimkey/add/",
    ):
        assert admin_client.get(path).status_code == 200, path
    assert OutboundMessage.objects.count() == 0


def test_signature_verifies_and_breaks_when_tampered(db):
    key = dkim_key_generate(domain=services.domain_create(name="example.com"), selector="s1")
    name, record = dkim_txt_record(key)
    assert name == "s1._domainkey.example.com"
    message = b"From: a@example.com\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"
    signed = dkim_sign(message, key)

    def dns(qname, timeout=5):
        assert qname == b"s1._domainkey.example.com."
        return record.encode()

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Subject: hi", b"Subject: ho"), dnsfunc=dns)
