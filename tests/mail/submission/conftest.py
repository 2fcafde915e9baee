"""Fixtures for sending: SMTP servers on loopback, the smarthost pointing at them, a
domain with a DKIM key, and helpers to compose and submit an Email."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from accounts.services import domain_create
from groupware.mail.submission.config import Smarthost
from groupware.mail.submission.dkim_keys import dkim_key_generate
from groupware.mail.submission.identities import identity_id
from groupware.mail.submission.models import Identity
from tests.mail.factories import MailApi
from tests.mail.submission.smtp import Behaviour, SmtpServer

# aiosmtpd logs every command at INFO; keep failing tests' output readable.
logging.getLogger("mail.log").setLevel(logging.WARNING)

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
MDN = "urn:ietf:params:jmap:mdn"
USING = [CORE, MAIL, SUBMISSION, MDN]


class SendApi(MailApi):
    """The JMAP API with mail, submission and mdn."""

    using = USING

    def identity_id(self, email: str | None = None) -> str:
        identities = self.ok("Identity/get", {"ids": None})["list"]
        wanted = email or self.client.user.email
        return next(item["id"] for item in identities if item["email"] == wanted)

    def draft(self, **values: Any) -> str:
        body = values.pop("body", "Hello there.\n")
        email = {
            "mailboxIds": {self.mailbox_id("drafts"): True},
            "keywords": {"$draft": True, "$seen": True},
            "from": [{"name": "Alice", "email": self.client.user.email}],
            "to": [{"name": "Remote", "email": "carol@remote.test"}],
            "subject": "Plans",
            "bodyStructure": {"type": "text/plain", "partId": "1"},
            "bodyValues": {"1": {"value": body}},
            **values,
        }
        result = self.ok("Email/set", {"create": {"d": email}})
        assert result["notCreated"] is None, result["notCreated"]
        return result["created"]["d"]["id"]

    def submit(self, email_id: str, *, identity: str | None = None, **extra: Any) -> dict:
        item = {"identityId": identity or self.identity_id(), "emailId": email_id, **extra}
        return self.ok("EmailSubmission/set", {"create": {"s": item}})

    def submit_error(self, email_id: str, **extra: Any) -> dict:
        result = self.submit(email_id, **extra)
        assert result["created"] is None, result
        return result["notCreated"]["s"]

    def submission(self, submission_id: str) -> dict:
        found = self.ok("EmailSubmission/get", {"ids": [submission_id]})["list"]
        assert len(found) == 1
        return found[0]


@pytest.fixture
def send(jmap) -> SendApi:
    return SendApi(jmap)


@pytest.fixture
def other_send(other_jmap) -> SendApi:
    return SendApi(other_jmap)


@pytest.fixture
def sink(settings):
    with SmtpServer() as server:
        settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=server.port)
        yield server


@pytest.fixture
def flaky(settings):
    with SmtpServer(Behaviour(temporary_failures=1)) as server:
        settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=server.port)
        yield server


@pytest.fixture
def rejecting(settings):
    with SmtpServer(Behaviour(reject={"nobody@remote.test"})) as server:
        settings.SUBMISSION_SMARTHOST = Smarthost(host="127.0.0.1", port=server.port)
        yield server


@pytest.fixture
def dkim_domain(db):
    domain = domain_create(name="example.com")
    return dkim_key_generate(domain=domain, selector="test")


def default_identity(account) -> str:
    return identity_id(Identity.objects.get(account=account, may_delete=False).pk)
