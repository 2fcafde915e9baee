"""Identity/get, /changes, /set (RFC 8621 §6)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import alias_create, domain_create
from groupware.core.models import ObjectChange
from groupware.mail.submission.models import Identity, SenderPolicy


def test_every_user_has_a_default_identity(send):
    result = send.ok("Identity/get", {"ids": None})
    assert result["list"] == [
        {
            "id": result["list"][0]["id"],
            "name": "Alice",
            "email": "alice@example.com",
            "replyTo": None,
            "bcc": None,
            "textSignature": "",
            "htmlSignature": "",
            "mayDelete": False,
        }
    ]
    error = send.ok("Identity/set", {"destroy": [result["list"][0]["id"]]})["notDestroyed"]
    assert error[result["list"][0]["id"]]["type"] == "forbidden"


def test_default_identity_is_made_lazily_for_existing_users(send):
    # An account from before sending existed: no Identity, no change records of one.
    Identity.objects.all().delete()
    ObjectChange.objects.filter(type_name="Identity").delete()
    state = send.ok("Identity/get", {"ids": []})["state"]
    identities = send.ok("Identity/get", {"ids": None})["list"]
    assert [item["email"] for item in identities] == ["alice@example.com"]
    changes = send.ok("Identity/changes", {"sinceState": "0"})
    assert changes["created"] == [identities[0]["id"]]
    assert send.ok("Identity/get", {"ids": []})["state"] == state


def test_create_for_alias_and_update(send):
    domain_create(name="example.net")
    alias_create(user=send.client.user, address="al@example.net")
    state = send.ok("Identity/get", {"ids": []})["state"]
    result = send.ok(
        "Identity/set",
        {
            "create": {
                "i": {
                    "name": "Al",
                    "email": "al@example.net",
                    "replyTo": [{"name": "Desk", "email": "desk@example.net"}],
                    "textSignature": "-- \nAl",
                }
            }
        },
    )
    created = result["created"]["i"]
    assert created["mayDelete"] is True
    assert created["bcc"] is None and created["htmlSignature"] == ""
    changes = send.ok("Identity/changes", {"sinceState": state})
    assert changes["created"] == [created["id"]]
    updated = send.ok("Identity/set", {"update": {created["id"]: {"name": "Al B.", "bcc": [{"email": "a@x.test"}]}}})
    assert updated["updated"] == {created["id"]: None}
    got = send.ok("Identity/get", {"ids": [created["id"]]})["list"][0]
    assert got["name"] == "Al B." and got["bcc"] == [{"name": None, "email": "a@x.test"}]
    # email is immutable
    refused = send.ok("Identity/set", {"update": {created["id"]: {"email": "alice@example.com"}}})["notUpdated"]
    assert refused[created["id"]]["type"] == "invalidProperties"
    assert send.ok("Identity/set", {"destroy": [created["id"]]})["destroyed"] == [created["id"]]


@pytest.mark.parametrize("email", ["bob@example.org", "root@example.com", "*@example.com"])
def test_forbidden_from(send, other_send, email):
    result = send.ok("Identity/set", {"create": {"i": {"email": email}}})
    assert result["notCreated"]["i"]["type"] == "forbiddenFrom"


def test_wildcard_for_domain_owners(send):
    domain = domain_create(name="example.net")
    assert send.ok("Identity/set", {"create": {"i": {"email": "*@example.net"}}})["notCreated"]["i"]["type"] == (
        "forbiddenFrom"
    )
    # The admin makes Alice the owner of the domain...
    policy = SenderPolicy.objects.create(user=send.client.user)
    policy.owned_domains.add(domain)
    assert send.ok("Identity/set", {"create": {"i": {"email": "*@example.net"}}})["created"]["i"]["id"]
    # ...or a catch-all alias does.
    domain_create(name="example.info")
    alias_create(user=send.client.user, address="@example.info")
    created = send.ok("Identity/set", {"create": {"i": {"email": "*@example.info"}}})["created"]["i"]
    # Sending from any address of that domain with the wildcard identity works.
    draft = send.draft(**{"from": [{"name": "Any", "email": "sales@example.info"}]})
    assert send.submit(draft, identity=created["id"])["created"]["s"]["envelope"]["mailFrom"]["email"] == (
        "sales@example.info"
    )


@pytest.mark.parametrize(
    "values",
    [
        {"name": "Alice\r\nBcc: victim@example.org", "email": "alice@example.com"},
        {"email": "alice@example.com", "replyTo": [{"name": "x", "email": "not-an-address"}]},
        {"email": "alice@example.com", "bcc": [{"name": "x\nTo: y@z.test", "email": "a@b.test"}]},
        {"email": "alice@example.com", "replyTo": "alice@example.com"},
    ],
)
def test_header_injection_is_refused(send, values):
    error = send.ok("Identity/set", {"create": {"i": values}})["notCreated"]["i"]
    assert error["type"] == "invalidProperties"


def test_other_users_identities_are_not_found(send, other_send):
    theirs = other_send.identity_id()
    assert send.ok("Identity/get", {"ids": [theirs]})["notFound"] == [theirs]
    assert send.ok("Identity/set", {"destroy": [theirs]})["notDestroyed"][theirs]["type"] == "notFound"


def test_get_query_count_does_not_grow(send):
    send.ok("Identity/get", {"ids": None})  # the default exists

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            send.ok("Identity/get", {"ids": None})
        return len(queries)

    few = count()
    domain_create(name="example.net")
    for n in range(5):
        alias_create(user=send.client.user, address=f"a{n}@example.net")
        send.ok("Identity/set", {"create": {"i": {"email": f"a{n}@example.net"}}})
    assert count() == few
    assert few <= 6
