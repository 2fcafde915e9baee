"""EmailSubmission/get, /changes, /query, /queryChanges and the implicit Email/set (RFC 8621 §7)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext


def test_query_filters_and_sorts(send):
    identity = send.identity_id()
    first = send.submit(send.draft(subject="one"), identity=identity)["created"]["s"]
    held = {
        "mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "300"}},
        "rcptTo": [{"email": "carol@remote.test", "parameters": None}],
    }
    second = send.submit(send.draft(subject="two"), identity=identity, envelope=held)["created"]["s"]
    state = send.ok("EmailSubmission/get", {"ids": []})["state"]
    ids = lambda **arguments: send.ok("EmailSubmission/query", arguments)["ids"]  # noqa: E731
    assert ids(sort=[{"property": "sentAt", "isAscending": False}]) == [second["id"], first["id"]]
    assert ids(sort=[{"property": "emailId"}]) == [first["id"], second["id"]]
    assert ids(filter={"after": second["sendAt"]}) == [second["id"]]
    assert ids(filter={"before": second["sendAt"]}) == [first["id"]]
    assert ids(filter={"identityIds": [identity]}, sort=[{"property": "threadId"}]) == [first["id"], second["id"]]
    email_id = send.submission(first["id"])["emailId"]
    assert ids(filter={"emailIds": [email_id]}) == [first["id"]]
    assert ids(filter={"threadIds": [first["threadId"]]}) == [first["id"]]
    assert ids(filter={"undoStatus": "pending"}, sort=[{"property": "sendAt"}]) == [first["id"], second["id"]]
    assert send.error("EmailSubmission/query", {"sort": [{"property": "subject"}]})["type"] == "unsupportedSort"
    assert send.error("EmailSubmission/query", {"filter": {"subject": "x"}})["type"] == "unsupportedFilter"

    send.ok("EmailSubmission/set", {"update": {second["id"]: {"undoStatus": "canceled"}}})
    changes = send.ok("EmailSubmission/changes", {"sinceState": state})
    assert changes["updated"] == [second["id"]] and changes["created"] == []
    query_changes = send.ok(
        "EmailSubmission/queryChanges", {"sinceQueryState": state, "filter": {"undoStatus": "pending"}}
    )
    assert query_changes["removed"] == [second["id"]]


def test_destroy_keeps_the_delivery_and_on_success_destroy_email(send):
    draft = send.draft()
    result = send.request(
        [
            [
                "EmailSubmission/set",
                {
                    "accountId": send.account_id,
                    "create": {"a": {"identityId": send.identity_id(), "emailId": draft}},
                    "onSuccessDestroyEmail": ["#a"],
                },
                "0",
            ]
        ]
    )
    assert result[1][0] == "Email/set" and result[1][1]["destroyed"] == [draft]
    submission = result[0][1]["created"]["a"]["id"]
    assert send.ok("Email/get", {"ids": [draft]})["notFound"] == [draft]
    # The submission still knows its emailId; destroying it forgets only the record.
    assert send.submission(submission)["emailId"] == draft
    assert send.ok("EmailSubmission/set", {"destroy": [submission]})["destroyed"] == [submission]
    from groupware.mail.submission.models import OutboundRecipient

    assert OutboundRecipient.objects.get().state == "queued"


def test_failed_create_triggers_no_implicit_email_set(send):
    draft = send.draft(to=None)
    result = send.request(
        [
            [
                "EmailSubmission/set",
                {
                    "accountId": send.account_id,
                    "create": {"a": {"identityId": send.identity_id(), "emailId": draft}},
                    "onSuccessUpdateEmail": {"#a": {"keywords/$draft": None}},
                },
                "0",
            ]
        ]
    )
    assert len(result) == 1
    assert result[0][1]["notCreated"]["a"]["type"] == "noRecipients"


def test_get_and_query_counts_do_not_grow(send):
    identity = send.identity_id()
    send.submit(send.draft(), identity=identity)

    def count(name: str, arguments: dict) -> int:
        with CaptureQueriesContext(connection) as queries:
            send.ok(name, arguments)
        return len(queries)

    get_few = count("EmailSubmission/get", {"ids": None})
    query_few = count("EmailSubmission/query", {"sort": [{"property": "sentAt"}]})
    for _ in range(4):
        send.submit(send.draft(), identity=identity)
    assert count("EmailSubmission/get", {"ids": None}) == get_few
    assert count("EmailSubmission/query", {"sort": [{"property": "sentAt"}]}) == query_few
    assert get_few <= 5 and query_few <= 5


def test_capabilities_in_session(send):
    session = send.client.session()
    assert "urn:ietf:params:jmap:submission" in session["capabilities"]
    assert "urn:ietf:params:jmap:mdn" in session["capabilities"]
    account = session["accounts"][send.account_id]["accountCapabilities"]
    assert account["urn:ietf:params:jmap:submission"]["maxDelayedSend"] == 7 * 24 * 3600
    assert set(account["urn:ietf:params:jmap:submission"]["submissionExtensions"]) == {"FUTURERELEASE", "SIZE"}
    assert account["urn:ietf:params:jmap:mdn"] == {}


def test_create_email_and_send_in_one_request(send, sink):
    """The usual client flow: Email/set create, then EmailSubmission/set referencing it by
    creation id, moving it to Sent on success (RFC 8621 §7.5 example)."""
    from groupware.mail.submission.relay import relay_due

    draft = {
        "mailboxIds": {send.mailbox_id("drafts"): True},
        "keywords": {"$draft": True},
        "from": [{"name": "Alice", "email": "alice@example.com"}],
        "to": [{"name": None, "email": "carol@remote.test"}],
        "subject": "One round trip",
        "bodyStructure": {"type": "text/plain", "partId": "1"},
        "bodyValues": {"1": {"value": "Hi"}},
    }
    responses = send.request(
        [
            ["Email/set", {"accountId": send.account_id, "create": {"draft": draft}}, "0"],
            [
                "EmailSubmission/set",
                {
                    "accountId": send.account_id,
                    "create": {"send": {"identityId": send.identity_id(), "emailId": "#draft"}},
                    "onSuccessUpdateEmail": {
                        "#send": {
                            f"mailboxIds/{send.mailbox_id('drafts')}": None,
                            f"mailboxIds/{send.mailbox_id('sent')}": True,
                            "keywords/$draft": None,
                        }
                    },
                },
                "1",
            ],
        ]
    )
    assert [(name, call_id) for name, _, call_id in responses] == [
        ("Email/set", "0"),
        ("EmailSubmission/set", "1"),
        ("Email/set", "1"),
    ]
    email_id = responses[0][1]["created"]["draft"]["id"]
    assert responses[2][1]["updated"] == {email_id: None}
    assert relay_due() == {"sent": 1}
    assert b"Subject: One round trip" in sink.messages[0].data
    assert send.email(email_id, properties=["mailboxIds"])["mailboxIds"] == {send.mailbox_id("sent"): True}


def test_deliver_local_resolves_aliases_once_per_account(other_send):
    from accounts.services import alias_create, domain_create
    from groupware.mail.submission.local import deliver_local

    domain_create(name="example.org")
    alias_create(user=other_send.client.user, address="robert@example.org")
    alias_create(user=other_send.client.user, address="@example.org")
    raw = b"From: x@remote.test\r\nTo: bob@example.org\r\nSubject: local\r\n\r\nhi\r\n"
    replies = deliver_local(
        raw=raw,
        mail_from="x@remote.test",
        recipients=["bob@example.org", "Robert@Example.org", "anything@example.org", "nobody@else.test"],
    )
    assert {address: str(reply) for address, reply in replies.items()} == {
        "bob@example.org": "250 2.0.0 delivered",
        "Robert@Example.org": "250 2.0.0 delivered",
        "anything@example.org": "250 2.0.0 delivered",
        "nobody@else.test": "550 5.1.1 no such recipient here",
    }
    inbox = other_send.ok("Email/query", {"filter": {"inMailbox": other_send.mailbox_id("inbox")}})["ids"]
    assert len(inbox) == 1  # one copy for the one account
