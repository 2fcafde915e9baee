"""Helpers for tests of the generic standard methods on the test-only Note type."""

from __future__ import annotations

import pytest

from tests.conftest import CallAssertions
from tests.jmaptest.methods import CAPABILITY

CORE = "urn:ietf:params:jmap:core"
USING = [CORE, CAPABILITY]


class NoteApi(CallAssertions):
    def __init__(self, client) -> None:
        self.client = client
        self.account_id = client.account_id

    def call(self, name: str, arguments: dict) -> list:
        arguments = {"accountId": self.account_id, **arguments}
        return self.client.call(name, arguments, using=USING)

    def create(self, **notes: dict) -> dict[str, str]:
        result = self.ok("Note/set", {"create": notes})
        assert result["notCreated"] is None, result["notCreated"]
        return {cid: created["id"] for cid, created in result["created"].items()}

    def state(self) -> str:
        return self.ok("Note/get", {"ids": []})["state"]


@pytest.fixture
def notes(jmap) -> NoteApi:
    return NoteApi(jmap)


@pytest.fixture
def other_notes(other_jmap) -> NoteApi:
    return NoteApi(other_jmap)
