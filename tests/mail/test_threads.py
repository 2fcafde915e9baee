"""Threading (RFC 8621 §3) and Thread/get, Thread/changes through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groupware.mail.models import Email, MessageIdIndex, Thread
from groupware.mail.services.counts import email_id, thread_id
from groupware.mail.services.emails import email_destroy
from groupware.mail.services.threads import base_subject
from tests.mail.factories import counts_are_exact, ingest, mail_fixture, message, other_mail_fixture  # noqa: F401 (fixtures)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "hello"),
        ("Re: Hello", "hello"),
        ("RE: re: Fwd: Hello", "hello"),
        ("Fw: Hello", "hello"),
        ("Re[2]: Hello", "hello"),
        ("[list] Re: Hello", "hello"),
        ("Re: [list] Hello", "hello"),
        ("Hello (fwd)", "hello"),
        ("[Fwd: Hello]", "hello"),
        ("  Hello   world  ", "hello world"),
        ("[only a tag]", "[only a tag]"),
        ("", ""),
        (None, ""),
        ("Reply to this", "reply to this"),
    ],
)
def test_base_subject(subject, expected):
    assert base_subject(subject) == expected


def test_reply_joins_thread(mail):
    first = ingest(mail.account, message(subject="Plans", message_id="<a@x>"), received_at=T0)
    reply = ingest(
        mail.account,
        message(subject="Re: Plans", message_id="<b@x>", in_reply_to="<a@x>", references="<a@x>"),
        received_at=T0 + timedelta(minutes=1),
    )
    assert reply.thread_id == first.thread_id
    thread = mail.ok("Thread/get", {"ids": [thread_id(first.thread_id)]})
    assert thread["list"] == [{"id": thread_id(first.thread_id), "emailIds": [email_id(first.pk), email_id(reply.pk)]}]
    assert counts_are_exact(mail.account)


def test_sibling_replies_join_without_parent(mail):
    # The parent never arrived: both replies mention it, so they share a Thread.
    one = ingest(mail.account, message(subject="Re: Plans", message_id="<b@x>", references="<a@x>"))
    two = ingest(mail.account, message(subject="Re: Plans", message_id="<c@x>", references="<a@x>"))
    assert one.thread_id == two.thread_id


def test_different_subject_starts_new_thread(mail):
    first = ingest(mail.account, message(subject="Plans", message_id="<a@x>"))
    other = ingest(mail.account, message(subject="Something else", message_id="<b@x>", in_reply_to="<a@x>"))
    assert other.thread_id != first.thread_id


def test_unrelated_messages_same_subject_stay_apart(mail):
    first = ingest(mail.account, message(subject="Hello", message_id="<a@x>"))
    second = ingest(mail.account, message(subject="Hello", message_id="<b@x>"))
    assert first.thread_id != second.thread_id


def test_threads_are_per_account(mail, other_mail):
    mine = ingest(mail.account, message(subject="Plans", message_id="<a@x>"))
    theirs = ingest(other_mail.account, message(subject="Re: Plans", message_id="<b@x>", in_reply_to="<a@x>"))
    assert mine.thread_id != theirs.thread_id
    found = mail.ok("Thread/get", {"ids": [thread_id(theirs.thread_id)]})
    assert found["list"] == [] and found["notFound"] == [thread_id(theirs.thread_id)]


def test_late_message_merges_two_threads(mail):
    root = ingest(mail.account, message(subject="Plans", message_id="<a@x>"), received_at=T0)
    # A reply that only names its direct parent, which has not arrived yet.
    late = ingest(
        mail.account,
        message(subject="Re: Plans", message_id="<c@x>", in_reply_to="<b@x>"),
        received_at=T0 + timedelta(minutes=2),
        keywords={"$seen": True},
    )
    assert late.thread_id != root.thread_id
    state = mail.state("Thread")
    email_state = mail.state("Email")
    # The missing middle message links both.
    middle = ingest(
        mail.account,
        message(subject="Re: Plans", message_id="<b@x>", in_reply_to="<a@x>", references="<a@x>"),
        received_at=T0 + timedelta(minutes=1),
    )
    emails = list(Email.objects.filter(account=mail.account).order_by("received_at"))
    assert len(emails) == 3
    assert len({email.thread_id for email in emails}) == 1
    assert Thread.objects.filter(account=mail.account).count() == 1
    survivor = middle.thread_id
    # threadId is immutable: the moved Email got a new id (RFC 8621 §3).
    assert not Email.objects.filter(pk=late.pk).exists()
    moved = Email.objects.get(message_id=["c@x"])
    assert moved.keywords == {"$seen": True}
    thread = mail.ok("Thread/get", {"ids": [thread_id(survivor)]})["list"][0]
    assert thread["emailIds"] == [email_id(root.pk), email_id(middle.pk), email_id(moved.pk)]
    changes = mail.ok("Email/changes", {"sinceState": email_state})
    assert sorted(changes["created"]) == sorted([email_id(middle.pk), email_id(moved.pk)])
    assert changes["destroyed"] == [email_id(late.pk)]
    thread_changes = mail.ok("Thread/changes", {"sinceState": state})
    assert thread_changes["updated"] == [thread_id(survivor)]
    assert thread_changes["destroyed"] == [thread_id(late.thread_id)]
    assert set(MessageIdIndex.objects.filter(account=mail.account).values_list("thread_id", flat=True)) == {survivor}
    assert counts_are_exact(mail.account)
    got = mail.email(email_id(moved.pk), properties=["threadId", "mailboxIds", "keywords"])
    assert got["threadId"] == thread_id(survivor)
    assert got["mailboxIds"] == {mail.mailbox_id("inbox"): True}


def test_thread_get_orders_by_received_at(mail):
    later = ingest(mail.account, message(subject="Plans", message_id="<a@x>"), received_at=T0 + timedelta(hours=1))
    earlier = ingest(mail.account, message(subject="Re: Plans", message_id="<b@x>", references="<a@x>"), received_at=T0)
    same = ingest(mail.account, message(subject="Re: Plans", message_id="<c@x>", references="<a@x>"), received_at=T0)
    thread = mail.ok("Thread/get", {"ids": [thread_id(later.thread_id)]})["list"][0]
    assert thread["emailIds"] == [email_id(earlier.pk), email_id(same.pk), email_id(later.pk)]


def test_thread_changes_and_destroy(mail):
    state = mail.state("Thread")
    first = ingest(mail.account, message(subject="Plans", message_id="<a@x>"))
    changes = mail.ok("Thread/changes", {"sinceState": state})
    assert changes["created"] == [thread_id(first.thread_id)]
    state = changes["newState"]
    reply = ingest(mail.account, message(subject="Re: Plans", message_id="<b@x>", references="<a@x>"))
    changes = mail.ok("Thread/changes", {"sinceState": state})
    assert changes["updated"] == [thread_id(first.thread_id)]
    state = changes["newState"]
    email_destroy(email=reply)
    email_destroy(email=Email.objects.get(pk=first.pk))
    changes = mail.ok("Thread/changes", {"sinceState": state})
    assert changes["destroyed"] == [thread_id(first.thread_id)]
    assert not Thread.objects.filter(pk=first.thread_id).exists()
    assert counts_are_exact(mail.account)


def _thread_get_queries(mail, count: int, tag: str) -> int:
    ids = []
    for index in range(count):
        email = ingest(mail.account, message(subject=f"Topic {index}", message_id=f"<q{index}@{tag}>"))
        ingest(
            mail.account,
            message(subject=f"Re: Topic {index}", message_id=f"<r{index}@{tag}>", references=f"<q{index}@{tag}>"),
        )
        ids.append(thread_id(email.thread_id))
    mail.ok("Thread/get", {"ids": []})  # warms the credentials cache
    with CaptureQueriesContext(connection) as queries:
        result = mail.ok("Thread/get", {"ids": ids})
    assert len(result["list"]) == count and all(len(item["emailIds"]) == 2 for item in result["list"])
    return len(queries)


@pytest.mark.django_db
def test_thread_get_query_count_is_constant(mail):
    small = _thread_get_queries(mail, 1, "small")
    large = _thread_get_queries(mail, 15, "large")
    # The user and their accounts, the state, the Threads, their Emails.
    assert small == large == 5
