"""RFC 8621 §2 Mailbox: properties, /get, /changes (updatedProperties), /set rules."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import account_grant, primary_account
from groupware.core.models import AccountBlob, ObjectChange
from groupware.mail.models import Email, EmailMailbox, Mailbox, Thread
from groupware.mail.services.counts import COUNT_PROPERTIES, email_id, mailbox_id
from jmap.mail_capability import MAIL
from tests.conftest import CallAssertions

CORE = "urn:ietf:params:jmap:core"
USING = [CORE, MAIL]
ALL_PROPERTIES = {
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
}
RIGHTS = {
    "mayReadItems",
    "mayAddItems",
    "mayRemoveItems",
    "maySetSeen",
    "maySetKeywords",
    "mayCreateChild",
    "mayRename",
    "mayDelete",
    "maySubmit",
}


class MailboxApi(CallAssertions):
    """Mailbox calls through the HTTP API with using: [core, mail]."""

    def __init__(self, client, account_id: str | None = None) -> None:
        self.client = client
        self.account_id = account_id or client.account_id

    def call(self, name: str, arguments: dict) -> list:
        return self.client.call(name, {"accountId": self.account_id, **arguments}, using=USING)

    def request(self, calls: list) -> list:
        return self.client.request(calls, using=USING)["methodResponses"]

    def create(self, **boxes: dict) -> dict[str, str]:
        result = self.ok("Mailbox/set", {"create": boxes})
        assert result["notCreated"] is None, result["notCreated"]
        return {cid: created["id"] for cid, created in result["created"].items()}

    def not_created(self, values: dict) -> dict:
        result = self.ok("Mailbox/set", {"create": {"k": values}})
        assert result["created"] is None, result
        return result["notCreated"]["k"]

    def update(self, mailbox: str, patch: dict) -> dict:
        return self.ok("Mailbox/set", {"update": {mailbox: patch}})

    def not_updated(self, mailbox: str, patch: dict) -> dict:
        result = self.update(mailbox, patch)
        assert result["updated"] is None, result
        return result["notUpdated"][mailbox]

    def get(self, *ids: str, properties: list[str] | None = None) -> list[dict]:
        return self.ok("Mailbox/get", {"ids": list(ids) if ids else None, "properties": properties})["list"]

    def one(self, mailbox: str) -> dict:
        return self.get(mailbox)[0]

    def by_role(self, role: str) -> str:
        return next(item["id"] for item in self.get() if item["role"] == role)

    def state(self) -> str:
        return self.ok("Mailbox/get", {"ids": []})["state"]


@pytest.fixture
def api(jmap) -> MailboxApi:
    return MailboxApi(jmap)


def pk(object_id: str) -> int:
    return int(object_id[1:], 32)


# -- /get ---------------------------------------------------------------------------------------


def test_get_all_properties(api):
    listed = api.get()
    assert len(listed) == 6
    inbox = next(item for item in listed if item["role"] == "inbox")
    assert set(inbox) == ALL_PROPERTIES
    assert inbox["name"] == "Inbox" and inbox["parentId"] is None and inbox["sortOrder"] == 10
    assert [inbox[name] for name in COUNT_PROPERTIES] == [0, 0, 0, 0]
    # The owner has every right (§2 myRights) and is subscribed to their own mailboxes.
    assert inbox["myRights"] == dict.fromkeys(RIGHTS, True)
    assert inbox["isSubscribed"] is True


def test_get_some_properties(api):
    inbox = api.by_role("inbox")
    assert api.get(inbox, properties=["name", "totalEmails"]) == [{"id": inbox, "name": "Inbox", "totalEmails": 0}]
    assert api.error("Mailbox/get", {"ids": None, "properties": ["nope"]})["type"] == "invalidArguments"


def test_get_not_found_and_foreign(api, other_jmap):
    foreign = MailboxApi(other_jmap).by_role("inbox")
    result = api.ok("Mailbox/get", {"ids": [foreign, "mzz", "x1"]})
    assert result["list"] == [] and sorted(result["notFound"]) == sorted([foreign, "mzz", "x1"])


def test_get_all_query_count_is_constant(api):
    with CaptureQueriesContext(connection) as few:
        api.get()
    api.create(**{f"b{i}": {"name": f"Box {i}"} for i in range(40)})
    with CaptureQueriesContext(connection) as many:
        assert len(api.get()) == 46
    assert len(many) == len(few)
    # auth + accounts + state + mailboxes
    assert len(many.captured_queries) <= 4, [query["sql"] for query in many.captured_queries]


# -- /set create --------------------------------------------------------------------------------


def test_create_returns_defaults_and_server_set(api):
    result = api.ok("Mailbox/set", {"create": {"a": {"name": "Projects"}}})
    created = result["created"]["a"]
    assert created["parentId"] is None and created["role"] is None and created["sortOrder"] == 0
    assert created["isSubscribed"] is True
    assert [created[name] for name in COUNT_PROPERTIES] == [0, 0, 0, 0]
    assert created["myRights"] == dict.fromkeys(RIGHTS, True)
    assert "name" not in created  # stored as given
    assert api.one(created["id"])["name"] == "Projects"
    assert result["oldState"] != result["newState"]


def test_create_child_by_creation_reference(api):
    ids = api.create(parent={"name": "Work"}, child={"name": "Reports", "parentId": "#parent"})
    assert api.one(ids["child"])["parentId"] == ids["parent"]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ({"name": ""}, ["name"]),
        ({"name": "a\x07b"}, ["name"]),  # control character (Net-Unicode)
        ({"name": "line\nbreak"}, ["name"]),
        ({"name": "sep\u2028arator"}, ["name"]),
        ({"name": "\ufffe"}, ["name"]),  # non-character
        ({"name": "é" * 128}, ["name"]),  # 256 octets > maxSizeMailboxName
        ({"name": 5}, ["name"]),
        ({}, ["name"]),  # required
        ({"name": "x", "role": "Inbox"}, ["role"]),  # roles are lower-case
        ({"name": "x", "role": "noselect"}, ["role"]),  # a structural attribute, not a role
        ({"name": "x", "role": "whatever"}, ["role"]),
        ({"name": "x", "role": "inbox"}, ["role"]),  # taken
        ({"name": "x", "sortOrder": 2**31}, ["sortOrder"]),
        ({"name": "x", "sortOrder": -1}, ["sortOrder"]),
        ({"name": "x", "parentId": "m999999"}, ["parentId"]),
        ({"name": "x", "parentId": "nope"}, ["parentId"]),
        ({"name": "x", "parentId": "#nowhere"}, ["parentId"]),
        ({"name": "x", "totalEmails": 3}, ["totalEmails"]),  # server-set
        ({"name": "x", "myRights": {}}, ["myRights"]),
        ({"name": "x", "id": "m1"}, ["id"]),
        ({"name": "x", "colour": "red"}, ["colour"]),
        ({"name": "Inbox"}, ["name"]),  # a top-level sibling has the name
        ({"name": "", "role": "bogus"}, ["name", "role"]),  # every broken property is named
    ],
)
def test_create_invalid(api, values, bad):
    before = api.state()
    error = api.not_created(values)
    assert error["type"] == "invalidProperties", error
    assert error["properties"] == bad
    assert api.state() == before


def test_name_limits(api):
    longest = "é" * 127 + "a"  # 255 octets
    api.create(a={"name": longest})
    # NFC: a decomposed name is stored composed, and the response says so (RFC 8620 §5.3).
    result = api.ok("Mailbox/set", {"create": {"b": {"name": "Cafe\u0301"}}})
    assert result["created"]["b"]["name"] == "Café"
    assert api.not_created({"name": "Café"})["properties"] == ["name"]


def test_name_limit_follows_settings(api, settings):
    settings.MAIL_MAX_SIZE_MAILBOX_NAME = 120
    assert api.not_created({"name": "x" * 121})["properties"] == ["name"]
    api.create(a={"name": "x" * 120})


def test_sibling_names(api):
    ids = api.create(work={"name": "Work"}, home={"name": "Home"})
    # Same name under different parents, and names differing only in case, are fine.
    api.create(a={"name": "Notes", "parentId": ids["work"]}, b={"name": "Notes", "parentId": ids["home"]})
    api.create(c={"name": "work"})
    assert api.not_created({"name": "Notes", "parentId": ids["work"]})["properties"] == ["name"]
    # Renaming onto a sibling's name, or moving next to a namesake, is refused.
    assert api.not_updated(ids["home"], {"name": "Work"})["properties"] == ["name"]
    notes_home = next(item["id"] for item in api.get() if item["parentId"] == ids["home"])
    assert api.not_updated(notes_home, {"parentId": ids["work"]})["properties"] == ["parentId"]


def test_sequential_processing_within_one_set(api):
    # RFC 8620 §5.3: each change is checked against the state the earlier ones left.
    ids = api.create(a={"name": "A"})
    result = api.ok(
        "Mailbox/set", {"create": {"b": {"name": "A"}, "c": {"name": "C"}}, "update": {ids["a"]: {"name": "Z"}}}
    )
    # Creates run first: "A" was still taken.
    assert result["notCreated"]["b"]["properties"] == ["name"] and "c" in result["created"]
    assert result["updated"] == {ids["a"]: None}


def test_role_rules(api):
    inbox = api.by_role("inbox")
    ids = api.create(a={"name": "Mail"})
    assert api.not_updated(ids["a"], {"role": "inbox"})["properties"] == ["role"]
    # Moving a role in one call works when the old holder gives it up first.
    result = api.ok("Mailbox/set", {"update": {inbox: {"role": None}, ids["a"]: {"role": "inbox"}}})
    assert result["notUpdated"] is None
    assert api.one(ids["a"])["role"] == "inbox" and api.one(inbox)["role"] is None
    for role in ("all", "flagged", "important", "subscribed", "snoozed", "scheduled", "memos"):
        api.create(**{role: {"name": role.title(), "role": role}})


def test_rename_move_and_sort_order(api):
    ids = api.create(a={"name": "A"}, b={"name": "B"})
    result = api.update(ids["a"], {"name": "A2", "parentId": ids["b"], "sortOrder": 5})
    assert result["updated"] == {ids["a"]: None}
    item = api.one(ids["a"])
    assert (item["name"], item["parentId"], item["sortOrder"]) == ("A2", ids["b"], 5)
    api.update(ids["a"], {"parentId": None})
    assert api.one(ids["a"])["parentId"] is None


def test_update_returns_normalised_name(api):
    ids = api.create(a={"name": "A"})
    assert api.update(ids["a"], {"name": "Cafe\u0301"})["updated"] == {ids["a"]: {"name": "Café"}}


def test_no_cycles(api):
    ids = api.create(a={"name": "A"}, b={"name": "B", "parentId": "#a"}, c={"name": "C", "parentId": "#b"})
    assert api.not_updated(ids["a"], {"parentId": ids["c"]})["properties"] == ["parentId"]
    assert api.not_updated(ids["a"], {"parentId": ids["a"]})["properties"] == ["parentId"]
    assert api.not_updated(ids["b"], {"parentId": ids["c"]})["properties"] == ["parentId"]


def test_depth_limit(api, settings):
    settings.MAIL_MAX_MAILBOX_DEPTH = 3
    ids = api.create(a={"name": "A"}, b={"name": "B", "parentId": "#a"}, c={"name": "C", "parentId": "#b"})
    assert api.not_created({"name": "D", "parentId": ids["c"]})["properties"] == ["parentId"]
    # Moving a subtree of two levels under a mailbox at depth 2 would make depth 4.
    other = api.create(x={"name": "X"}, y={"name": "Y", "parentId": "#x"})
    assert api.not_updated(other["x"], {"parentId": ids["b"]})["properties"] == ["parentId"]
    api.update(other["x"], {"parentId": ids["a"]})
    assert api.one(other["y"])["parentId"] == other["x"]


def test_parent_must_be_in_the_same_account(api, other_jmap):
    foreign = MailboxApi(other_jmap).by_role("inbox")
    assert api.not_created({"name": "x", "parentId": foreign})["properties"] == ["parentId"]


def test_server_set_properties_are_immutable(api):
    inbox = api.by_role("inbox")
    for patch in ({"totalEmails": 5}, {"myRights/mayDelete": False}, {"myRights": dict.fromkeys(RIGHTS, False)}):
        assert api.not_updated(inbox, patch)["type"] == "invalidProperties"
    assert api.not_updated(inbox, {"id": "mzz"})["type"] == "invalidProperties"


def test_is_subscribed(api):
    inbox = api.by_role("inbox")
    api.update(inbox, {"isSubscribed": False})
    assert api.one(inbox)["isSubscribed"] is False
    ids = api.create(a={"name": "Quiet", "isSubscribed": False})
    assert api.one(ids["a"])["isSubscribed"] is False


# -- /set destroy ---------------------------------------------------------------------------------


def test_destroy_empty(api):
    ids = api.create(a={"name": "A"})
    result = api.ok("Mailbox/set", {"destroy": [ids["a"]]})
    assert result["destroyed"] == [ids["a"]]
    assert api.ok("Mailbox/get", {"ids": [ids["a"]]})["notFound"] == [ids["a"]]
    assert api.ok("Mailbox/set", {"destroy": [ids["a"]]})["notDestroyed"][ids["a"]]["type"] == "notFound"


def test_destroy_with_child_is_refused(api):
    ids = api.create(a={"name": "A"}, b={"name": "B", "parentId": "#a"})
    for remove in (False, True):
        result = api.ok("Mailbox/set", {"destroy": [ids["a"]], "onDestroyRemoveEmails": remove})
        assert result["notDestroyed"][ids["a"]]["type"] == "mailboxHasChild"


def test_destroy_parent_and_child_together(api):
    ids = api.create(a={"name": "A"}, b={"name": "B", "parentId": "#a"}, c={"name": "C", "parentId": "#b"})
    result = api.ok("Mailbox/set", {"destroy": [ids["a"], ids["b"], ids["c"]]})
    assert sorted(result["destroyed"]) == sorted(ids.values())
    assert result["notDestroyed"] is None


def test_destroy_with_emails(api, user):
    from tests.mail.test_counts import add_email, assert_counts_exact, counts

    account = primary_account(user)
    ids = api.create(a={"name": "Lists"})
    lists = Mailbox.objects.get(pk=pk(ids["a"]))
    inbox = Mailbox.objects.get(account=account, role="inbox")
    only_here = add_email(account, [lists])
    both = add_email(account, [lists, inbox], unread=False)
    # The thread's other email is elsewhere: the thread survives.
    add_email(account, [inbox], thread=only_here.thread, unread=False)
    result = api.ok("Mailbox/set", {"destroy": [ids["a"]]})
    assert result["notDestroyed"][ids["a"]]["type"] == "mailboxHasEmail"
    assert api.ok("Mailbox/set", {"destroy": [ids["a"]], "onDestroyRemoveEmails": False})["destroyed"] is None

    before = ObjectChange.objects.filter(account=account).order_by("-modseq").first().modseq
    result = api.ok("Mailbox/set", {"destroy": [ids["a"]], "onDestroyRemoveEmails": True})
    assert result["destroyed"] == [ids["a"]]
    # The email only in this mailbox is destroyed, the other just leaves it.
    assert not Email.objects.filter(pk=only_here.pk).exists()
    assert set(EmailMailbox.objects.filter(email=both).values_list("mailbox_id", flat=True)) == {inbox.pk}
    assert Thread.objects.filter(pk=only_here.thread_id).exists()
    assert AccountBlob.objects.get(account=account, blob_id=only_here.blob_id).refcount == 0
    changed = {
        (row.type_name, row.object_id): row.destroyed
        for row in ObjectChange.objects.filter(account=account, modseq__gt=before, type_name="Email")
    }
    assert changed == {("Email", email_id(only_here.pk)): True, ("Email", email_id(both.pk)): False}
    assert counts(inbox).total_emails == 2
    assert_counts_exact(account)


# -- /changes and updatedProperties ------------------------------------------------------------


def test_changes_counts_only(api, user):
    from tests.mail.test_counts import add_email

    account = primary_account(user)
    inbox = Mailbox.objects.get(account=account, role="inbox")
    state = api.state()
    add_email(account, [inbox])
    changes = api.ok("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [mailbox_id(inbox.pk)] and changes["created"] == changes["destroyed"] == []
    assert changes["updatedProperties"] == list(COUNT_PROPERTIES)


def test_changes_after_rename_is_null(api, user):
    from tests.mail.test_counts import add_email

    account = primary_account(user)
    inbox = Mailbox.objects.get(account=account, role="inbox")
    state = api.state()
    api.update(mailbox_id(inbox.pk), {"name": "In"})
    renamed = api.state()
    add_email(account, [inbox])
    assert api.ok("Mailbox/changes", {"sinceState": state})["updatedProperties"] is None
    # From after the rename only the counts moved.
    assert api.ok("Mailbox/changes", {"sinceState": renamed})["updatedProperties"] == list(COUNT_PROPERTIES)


@pytest.mark.parametrize("change", ["create", "destroy", "subscribe", "move", "sortOrder"])
def test_changes_other_than_counts_are_null(api, user, change):
    from tests.mail.test_counts import add_email

    account = primary_account(user)
    ids = api.create(a={"name": "A"}, b={"name": "B"})
    state = api.state()
    add_email(account, [Mailbox.objects.get(account=account, role="inbox")])
    if change == "create":
        api.create(c={"name": "C"})
    elif change == "destroy":
        api.ok("Mailbox/set", {"destroy": [ids["a"]]})
    elif change == "subscribe":
        api.update(ids["a"], {"isSubscribed": False})
    elif change == "move":
        api.update(ids["a"], {"parentId": ids["b"]})
    else:
        api.update(ids["a"], {"sortOrder": 3})
    assert api.ok("Mailbox/changes", {"sinceState": state})["updatedProperties"] is None


def test_changes_without_changes(api):
    state = api.state()
    changes = api.ok("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [] and changes["updatedProperties"] is None


def test_changes_with_max_changes(api, user):
    from tests.mail.test_counts import add_email

    account = primary_account(user)
    state = api.state()
    for role in ("inbox", "archive", "sent"):
        add_email(account, [Mailbox.objects.get(account=account, role=role)])
    first = api.ok("Mailbox/changes", {"sinceState": state, "maxChanges": 2})
    assert first["hasMoreChanges"] and len(first["updated"]) == 2
    assert first["updatedProperties"] == list(COUNT_PROPERTIES)
    rest = api.ok("Mailbox/changes", {"sinceState": first["newState"]})
    assert len(rest["updated"]) == 1 and rest["updatedProperties"] == list(COUNT_PROPERTIES)


def test_rfc_example(api, user):
    """RFC 8621 §2.6: fetch all, then an email is marked read, then rename and destroy."""
    from tests.mail.test_counts import add_email, set_unread

    account = primary_account(user)
    inbox_row = Mailbox.objects.get(account=account, role="inbox")
    email = add_email(account, [inbox_row])
    inbox = mailbox_id(inbox_row.pk)
    important = api.create(a={"name": "Important mail"})["a"]
    got = api.ok("Mailbox/get", {"ids": None})
    assert {item["id"] for item in got["list"]} >= {inbox, important}

    set_unread(email, False)  # "suppose an Email is marked read"
    responses = api.request(
        [
            ["Mailbox/changes", {"accountId": api.account_id, "sinceState": got["state"]}, "0"],
            [
                "Mailbox/get",
                {"accountId": api.account_id, "#ids": {"resultOf": "0", "name": "Mailbox/changes", "path": "/created"}},
                "1",
            ],
            [
                "Mailbox/get",
                {
                    "accountId": api.account_id,
                    "#ids": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updated"},
                    "#properties": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updatedProperties"},
                },
                "2",
            ],
        ]
    )
    changes, created, updated = (response[1] for response in responses)
    assert changes["updatedProperties"] == ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]
    assert changes["created"] == [] and changes["updated"] == [inbox] and changes["destroyed"] == []
    assert created["list"] == [] and created["notFound"] == []
    assert updated["state"] == changes["newState"]
    assert updated["list"] == [
        {"id": inbox, "totalEmails": 1, "unreadEmails": 0, "totalThreads": 1, "unreadThreads": 0}
    ]

    result = api.ok(
        "Mailbox/set",
        {"ifInState": changes["newState"], "update": {important: {"name": "Maybe important mail"}}, "destroy": [inbox]},
    )
    assert result["oldState"] == changes["newState"] and result["newState"] != result["oldState"]
    assert result["updated"] == {important: None}
    # Here the refusal is that the inbox holds an email (the RFC's is a permission).
    assert result["notDestroyed"][inbox]["type"] == "mailboxHasEmail"
    # ifInState is exact: the old state no longer matches.
    stale = api.error("Mailbox/set", {"ifInState": changes["newState"], "destroy": [important]})
    assert stale["type"] == "stateMismatch"


# -- shared accounts ------------------------------------------------------------------------------


def test_read_only_account(api, user, other_user, other_jmap):
    account_grant(account=primary_account(user), user=other_user, may_write=False)
    reader = MailboxApi(other_jmap, account_id=api.account_id)
    listed = reader.get()
    assert len(listed) == 6
    # Read-only access: only mayReadItems; shared mailboxes default to unsubscribed (§2).
    assert all(item["myRights"] == {right: right == "mayReadItems" for right in RIGHTS} for item in listed)
    assert all(item["isSubscribed"] is False for item in listed)
    denied = reader.call("Mailbox/set", {"create": {"x": {"name": "Mine"}}})
    assert denied[1]["type"] == "accountReadOnly"
    # The owner still sees their own view.
    assert all(item["isSubscribed"] for item in api.get())


def test_is_subscribed_is_per_user(api, user, other_user, other_jmap):
    account_grant(account=primary_account(user), user=other_user, may_write=True)
    writer = MailboxApi(other_jmap, account_id=api.account_id)
    inbox = api.by_role("inbox")
    writer.update(inbox, {"isSubscribed": True})
    assert writer.one(inbox)["isSubscribed"] is True
    api.update(inbox, {"isSubscribed": False})
    assert api.one(inbox)["isSubscribed"] is False and writer.one(inbox)["isSubscribed"] is True
    assert writer.one(inbox)["myRights"] == dict.fromkeys(RIGHTS, True)
    # A mailbox the other user creates is subscribed for them (and for the owner).
    created = writer.create(a={"name": "Shared work"})["a"]
    assert writer.one(created)["isSubscribed"] is True and api.one(created)["isSubscribed"] is True
    writer.update(created, {"isSubscribed": False})
    assert writer.one(created)["isSubscribed"] is False and api.one(created)["isSubscribed"] is True


# -- concurrency ----------------------------------------------------------------------------------

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks between threads need PostgreSQL (CI runs it there)"
)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_keep_sibling_names_unique():
    import threading

    from django.db import connections

    from accounts.services import user_create
    from groupware.mail.services.mailboxes import MailboxInvalid, mailbox_create

    account = primary_account(user_create(email="race@example.com", password="x" * 12))
    outcomes: list[str] = []

    def writer() -> None:
        try:
            mailbox_create(account=account, name="Same")
            outcomes.append("created")
        except MailboxInvalid:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["created", "refused", "refused", "refused", "refused"]
    assert Mailbox.objects.filter(account=account, name="Same").count() == 1
