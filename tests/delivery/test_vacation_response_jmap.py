"""VacationResponse/get and /set (RFC 8621 §8)."""

from __future__ import annotations

import pytest

from accounts.models import Account
from groupware.mail.delivery.models import OutboundMessage
from groupware.mail.delivery.services import deliver_message
from tests.conftest import CallAssertions, JmapClient
from tests.delivery.helpers import raw_message

CORE = "urn:ietf:params:jmap:core"
VACATION = "urn:ietf:params:jmap:vacationresponse"


class VacationApi(CallAssertions):
    def __init__(self, client: JmapClient) -> None:
        self.client = client

    def call(self, name: str, arguments: dict) -> list:
        return self.client.call(name, {"accountId": self.client.account_id, **arguments}, using=[CORE, VACATION])


@pytest.fixture
def api(jmap) -> VacationApi:
    return VacationApi(jmap)


def test_capability_and_default_singleton(api, jmap):
    session = jmap.session()
    assert session["capabilities"][VACATION] == {}
    assert session["accounts"][jmap.account_id]["accountCapabilities"][VACATION] == {}
    result = api.ok("VacationResponse/get", {"ids": None})
    assert result["list"] == [
        {
            "id": "singleton",
            "isEnabled": False,
            "fromDate": None,
            "toDate": None,
            "subject": None,
            "textBody": None,
            "htmlBody": None,
        }
    ]
    assert api.ok("VacationResponse/get", {"ids": ["other"]})["notFound"] == ["other"]


def test_set_then_get_and_state(api):
    state = api.ok("VacationResponse/get", {"ids": ["singleton"]})["state"]
    result = api.ok(
        "VacationResponse/set",
        {
            "ifInState": state,
            "update": {
                "singleton": {
                    "isEnabled": True,
                    "fromDate": "2026-07-01T00:00:00Z",
                    "toDate": "2026-07-15T00:00:00Z",
                    "subject": "Away",
                    "textBody": "Back on the 15th.",
                }
            },
        },
    )
    assert result["updated"] == {"singleton": None} and result["newState"] != state
    [vacation] = api.ok("VacationResponse/get", {"ids": ["singleton"], "properties": ["isEnabled", "toDate"]})["list"]
    assert vacation == {"id": "singleton", "isEnabled": True, "toDate": "2026-07-15T00:00:00Z"}
    stale = api.error("VacationResponse/set", {"ifInState": state, "update": {"singleton": {"isEnabled": False}}})
    assert stale["type"] == "stateMismatch"


def test_singleton_rules_and_validation(api):
    result = api.ok(
        "VacationResponse/set",
        {"create": {"x": {"isEnabled": True}}, "destroy": ["singleton"], "update": {"other": {"isEnabled": True}}},
    )
    assert result["notCreated"]["x"]["type"] == "singleton"
    assert result["notDestroyed"]["singleton"]["type"] == "singleton"
    assert result["notUpdated"]["other"]["type"] == "notFound"
    bad = api.ok("VacationResponse/set", {"update": {"singleton": {"fromDate": "tomorrow", "isEnabled": "yes"}}})
    assert bad["notUpdated"]["singleton"]["type"] == "invalidProperties"
    backwards = api.ok(
        "VacationResponse/set",
        {"update": {"singleton": {"fromDate": "2026-07-15T00:00:00Z", "toDate": "2026-07-01T00:00:00Z"}}},
    )
    assert backwards["notUpdated"]["singleton"]["type"] == "invalidProperties"


def test_enabled_response_answers_mail(api, user):
    api.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, "textBody": "Gone fishing."}}})
    [result] = deliver_message(raw=raw_message(), mail_from="joe@example.net", recipients=["alice@example.com"])
    assert result.code == 250
    [reply] = OutboundMessage.objects.filter(account=Account.objects.get(owner=user))
    assert b"Gone fishing." in bytes(reply.raw) and reply.recipients == ["joe@example.net"]
    api.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": False}}})
    deliver_message(raw=raw_message(message_id="<2@x>"), mail_from="ann@example.net", recipients=["alice@example.com"])
    assert OutboundMessage.objects.count() == 1
