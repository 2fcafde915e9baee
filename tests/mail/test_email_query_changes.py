"""RFC 8621 §4.5 Email/queryChanges (RFC 8620 §5.6): replaying removed/added onto the old
results gives the new results, for plain and collapsed queries, filters and sorts on
mutable properties and on threads; upToId, maxChanges, totals and query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groupware.core.changes import type_state
from groupware.mail import query as engine
from groupware.mail.models import Mailbox, Thread
from groupware.mail.services.emails import email_destroy, email_update
from tests.mail.factories import mail_fixture, other_mail_fixture  # noqa: F401 (fixtures)
from tests.mail.test_email_query_helpers import QueryApi, corpus_fixture, store_email, when  # noqa: F401


def replay(old: list[str], removed: list[str], added: list[dict]) -> list[str]:
    """The client's algorithm (RFC 8620 §5.6): splice out removed, splice in added by index."""
    gone = set(removed)
    new = [item for item in old if item not in gone]
    indexes = [item["index"] for item in added]
    assert indexes == sorted(indexes), "added must be sorted by index"
    for item in added:
        new.insert(item["index"], item["id"])
    return new


def mailbox_pk(api: QueryApi, role: str) -> int:
    return Mailbox.objects.get(account=api.account, role=role).pk


def make_changes(api: QueryApi) -> None:
    """Keywords, moves, a destroy, a new email in an old thread and one in a new thread."""
    emails = api.emails
    email_update(email=emails["m3"], keywords={"$seen": True})
    email_update(email=emails["m1"], keywords={"$seen": True, "$flagged": True})
    email_update(email=emails["m4"], mailbox_ids=[mailbox_pk(api, "inbox"), mailbox_pk(api, "archive")])
    email_update(email=emails["m6"], mailbox_ids=[mailbox_pk(api, "inbox")])
    email_destroy(email=emails["m7"])
    quarterly = Thread.objects.get(pk=emails["m1"].thread_id)
    emails["m9"] = store_email(
        api.account, subject="Re: Quarterly report", body="final numbers", received_at=when(9), thread=quarterly
    )
    emails["m10"] = store_email(api.account, subject="A new thread", body="hello lunch", received_at=when(10))
    api.refresh(emails)


QUERIES = [
    {},
    {"collapseThreads": True},
    {"filter": {"inMailbox": "inbox"}},
    {"filter": {"inMailbox": "inbox"}, "collapseThreads": True},
    {"filter": {"inMailbox": "inbox"}, "collapseThreads": True, "sort": [{"property": "receivedAt"}]},
    {"sort": [{"property": "subject"}], "collapseThreads": True},
    {"sort": [{"property": "subject", "isAscending": False}]},
    {"filter": {"notKeyword": "$seen"}},
    {"filter": {"notKeyword": "$seen"}, "collapseThreads": True},
    {"filter": {"allInThreadHaveKeyword": "$seen"}},
    {"filter": {"someInThreadHaveKeyword": "$flagged"}, "collapseThreads": True},
    {
        "sort": [
            {"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
            {"property": "receivedAt", "isAscending": False},
        ]
    },
    {"sort": [{"property": "hasKeyword", "keyword": "$seen"}, {"property": "size"}], "collapseThreads": True},
    {"filter": {"text": "lunch"}, "collapseThreads": True},
    {"filter": {"text": "numbers"}},
    {"filter": {"operator": "NOT", "conditions": [{"inMailbox": "sent"}]}, "collapseThreads": True},
]


def _resolve(api: QueryApi, arguments: dict) -> dict:
    arguments = dict(arguments)
    condition = arguments.get("filter")
    if condition is not None:
        if "inMailbox" in condition:
            condition = {**condition, "inMailbox": api.mailbox(condition["inMailbox"])}
        if condition.get("operator") == "NOT":
            condition = {"operator": "NOT", "conditions": [{"inMailbox": api.mailbox("sent")}]}
        arguments["filter"] = condition
    return arguments


@pytest.mark.parametrize("first_batch", [1, engine.FIRST_BATCH])
@pytest.mark.parametrize("arguments", QUERIES)
def test_replay_gives_the_new_results(corpus, arguments, first_batch, monkeypatch):
    """Replayed changes give the new results, whatever the batches the results are read in."""
    monkeypatch.setattr(engine, "FIRST_BATCH", first_batch)
    arguments = _resolve(corpus, arguments)
    before = corpus.query(**arguments)
    make_changes(corpus)
    after = corpus.query(**arguments, calculateTotal=True)
    changes = corpus.ok(
        "Email/queryChanges", {**arguments, "sinceQueryState": before["queryState"], "calculateTotal": True}
    )
    assert changes["oldQueryState"] == before["queryState"]
    assert changes["newQueryState"] == after["queryState"]
    assert changes["total"] == after["total"]
    assert replay(before["ids"], changes["removed"], changes["added"]) == after["ids"]
    assert before["ids"] != after["ids"]


@pytest.mark.parametrize("arguments", QUERIES)
def test_replay_step_by_step(corpus, arguments):
    """Each state in between is a valid starting point too."""
    arguments = _resolve(corpus, arguments)
    emails = corpus.emails
    steps = [
        lambda: email_update(email=emails["m2"], keywords={"$seen": True}),
        lambda: email_update(email=emails["m2"], keywords={"$flagged": True}),
        lambda: store_email(corpus.account, subject="Lunch on Friday?", received_at=when(2, 11),
                            thread=Thread.objects.get(pk=emails["m3"].thread_id)),
        lambda: email_destroy(email=emails["m5"]),
        lambda: email_update(email=emails["m8"], mailbox_ids=[mailbox_pk(corpus, "inbox")]),
    ]  # fmt: skip
    for step in steps:
        before = corpus.query(**arguments)
        step()
        after = corpus.query(**arguments)
        changes = corpus.ok("Email/queryChanges", {**arguments, "sinceQueryState": before["queryState"]})
        assert replay(before["ids"], changes["removed"], changes["added"]) == after["ids"]


def test_collapsed_thread_gets_a_new_first_email(corpus):
    """The old first email of a thread leaves the results although it didn't change."""
    inbox = corpus.mailbox("inbox")
    arguments = {"filter": {"inMailbox": inbox}, "collapseThreads": True}
    before = corpus.query(**arguments)
    assert [corpus.keys[i] for i in before["ids"]] == ["m5", "m3", "m2"]
    quarterly = Thread.objects.get(pk=corpus.emails["m1"].thread_id)
    corpus.emails["m9"] = store_email(corpus.account, subject="Re: Quarterly", received_at=when(9), thread=quarterly)
    corpus.refresh(corpus.emails)
    changes = corpus.ok("Email/queryChanges", {**arguments, "sinceQueryState": before["queryState"]})
    assert corpus.jmap_id("m2") in changes["removed"]
    assert changes["added"] == [{"id": corpus.jmap_id("m9"), "index": 0}]
    assert replay(before["ids"], changes["removed"], changes["added"]) == corpus.query(**arguments)["ids"]


def test_up_to_id(corpus):
    arguments = {"sort": [{"property": "receivedAt"}]}
    before = corpus.query(**arguments)["ids"]
    state = corpus.query(**arguments)["queryState"]
    make_changes(corpus)
    after = corpus.query(**arguments)["ids"]
    # The client cached up to m5 (unchanged); added ids after it in the new results are left out.
    cached = before[: before.index(corpus.jmap_id("m5")) + 1]
    changes = corpus.ok("Email/queryChanges", {**arguments, "sinceQueryState": state, "upToId": corpus.jmap_id("m5")})
    new_index = after.index(corpus.jmap_id("m5"))
    assert all(item["index"] <= new_index for item in changes["added"])
    assert replay(cached, changes["removed"], changes["added"]) == after[: new_index + 1]
    # An upToId that isn't in the results is ignored.
    full = corpus.ok("Email/queryChanges", {**arguments, "sinceQueryState": state, "upToId": "e999999"})
    assert replay(before, full["removed"], full["added"]) == after


def test_no_changes(corpus):
    result = corpus.query(collapseThreads=True)
    changes = corpus.ok(
        "Email/queryChanges", {"sinceQueryState": result["queryState"], "collapseThreads": True, "calculateTotal": True}
    )
    assert (changes["removed"], changes["added"], changes["total"]) == ([], [], 6)
    assert changes["newQueryState"] == result["queryState"]


def test_too_many_changes(corpus):
    state = corpus.query()["queryState"]
    make_changes(corpus)
    error = corpus.error("Email/queryChanges", {"sinceQueryState": state, "maxChanges": 3})
    assert error["type"] == "tooManyChanges"
    changes = corpus.ok("Email/queryChanges", {"sinceQueryState": state, "maxChanges": 100})
    assert len(changes["removed"]) + len(changes["added"]) <= 100


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        ({"sinceQueryState": "garbage"}, "cannotCalculateChanges"),
        ({"sinceQueryState": "999999"}, "cannotCalculateChanges"),
        ({}, "invalidArguments"),
        ({"sinceQueryState": "0", "maxChanges": 0}, "invalidArguments"),
        ({"sinceQueryState": "0", "collapseThreads": 1}, "invalidArguments"),
        ({"sinceQueryState": "0", "filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"sinceQueryState": "0", "sort": [{"property": "colour"}]}, "unsupportedSort"),
    ],
)
def test_errors(corpus, arguments, kind):
    assert corpus.error("Email/queryChanges", arguments)["type"] == kind


def test_query_count_does_not_grow_with_the_changes(corpus):
    arguments = {"filter": {"inMailbox": corpus.mailbox("inbox")}, "collapseThreads": True, "calculateTotal": True}

    def measure(count: int) -> int:
        state = type_state(corpus.account, "Email")
        for index in range(count):
            store_email(corpus.account, subject=f"news {index}", received_at=when(11, index % 24))
        email_update(email=corpus.emails["m2"], keywords={"$flagged": True, "$seen": True, f"k{count}": True})
        with CaptureQueriesContext(connection) as captured:
            corpus.ok("Email/queryChanges", {**arguments, "sinceQueryState": state})
        return len(captured.captured_queries)

    measure(1)  # the first request of the client also authenticates it
    assert measure(2) == measure(40)


def test_new_mail_at_the_top_reads_one_batch(corpus, monkeypatch):
    """queryChanges reads the results only until every changed email is placed."""
    monkeypatch.setattr(engine, "FIRST_BATCH", 1)
    inbox = engine.Condition("in_mailbox", mailbox_pk(corpus, "inbox"))
    state = corpus.query(filter={"inMailbox": corpus.mailbox("inbox")}, collapseThreads=True)["queryState"]
    newest = store_email(corpus.account, subject="newest", received_at=when(28))
    with CaptureQueriesContext(connection) as captured:
        changes = engine.email_query_changes(
            account=corpus.account, filter_tree=inbox, collapse_threads=True, since_modseq=int(state)
        )
    assert changes.added == [(newest.pk, 0)]
    # Email and Thread changes, their threads, the threads' emails, which of them match,
    # and one row of the listing.
    assert len(captured.captured_queries) == 6
