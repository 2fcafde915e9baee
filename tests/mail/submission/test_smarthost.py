"""The smarthost connection: STARTTLS, implicit TLS (RFC 8314), AUTH, certificate checks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.core.exceptions import ImproperlyConfigured

from groupware.mail.submission.config import smarthost
from groupware.mail.submission.relay import relay_due
from tests.interop.server import free_port, make_certificates
from tests.mail.submission.smtp import Behaviour, RecordingHandler


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory) -> ssl.SSLContext:
    _ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"relay" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@contextmanager
def smtp_server(**options) -> Iterator[tuple[RecordingHandler, int]]:
    """An aiosmtpd server with AUTH (relay / s3cret) on a free loopback port."""
    handler, port = RecordingHandler(Behaviour()), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=_authenticator, **options)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_starttls_and_auth(send, settings, server_tls):
    options = {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True, "auth_required": True}
    with smtp_server(**options) as (handler, port):
        settings.SUBMISSION_SMARTHOST = smarthost(
            f"smtp://relay:s3cret@127.0.0.1:{port}?starttls=required&verify=false"
        )
        send.submit(send.draft())
        assert relay_due() == {"sent": 1}
        assert len(handler.messages) == 1
        # With the wrong password nothing is sent, and the failure is temporary.
        settings.SUBMISSION_SMARTHOST = smarthost(f"smtp://relay:wrong@127.0.0.1:{port}?starttls=true&verify=false")
        created = send.submit(send.draft())["created"]["s"]
        assert relay_due() == {"queued": 1}
        reply = send.submission(created["id"])["deliveryStatus"]["carol@remote.test"]["smtpReply"]
        assert reply == "451 4.7.0 Authentication at the relay failed: 535"


def test_certificates_are_checked_by_default(send, settings, server_tls):
    with smtp_server(tls_context=server_tls, require_starttls=True) as (handler, port):
        settings.SUBMISSION_SMARTHOST = smarthost(f"smtp://127.0.0.1:{port}?starttls=required")
        created = send.submit(send.draft())["created"]["s"]
        assert relay_due() == {"queued": 1}  # a self-signed certificate: not trusted, retried later
        reply = send.submission(created["id"])["deliveryStatus"]["carol@remote.test"]["smtpReply"]
        assert reply.startswith("451 4.4.1")
        assert handler.messages == []


def test_implicit_tls(send, settings, server_tls):
    with smtp_server(ssl_context=server_tls, auth_require_tls=False) as (handler, port):
        settings.SUBMISSION_SMARTHOST = smarthost(f"smtps://relay:s3cret@127.0.0.1:{port}?verify=false")
        send.submit(send.draft())
        assert relay_due() == {"sent": 1}
        assert len(handler.messages) == 1


def test_smarthost_setting_is_checked():
    parsed = smarthost("smtps://u%40x:p@mail.example.com")
    assert (parsed.host, parsed.port, parsed.implicit_tls, parsed.username) == ("mail.example.com", 465, True, "u@x")
    assert smarthost("smtp://mail.example.com?starttls=true").port == 587
    assert smarthost(None) is None
    for bad in ("http://x", "smtp://", "smtp://x:99999", "smtp://x?foo=1"):
        with pytest.raises(ImproperlyConfigured):
            smarthost(bad)
