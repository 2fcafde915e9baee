"""groupware.core.sql: plain-SQL inserts equal what the ORM stores, and many rows are one
statement whose text doesn't depend on how many (so psycopg and PostgreSQL prepare it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from accounts.services import primary_account
from groupware.core import sql
from groupware.core.changes import Change, account_changes
from groupware.core.models import Blob
from groupware.mail.models import Email, Thread
from groupware.mail.search import SearchDocument, search_document, search_index_write, tsvector_of

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Statements:
    """The statement texts run in the block, as given to the driver (placeholders, not values)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.texts.append(sql)
        return execute(sql, params, many, context)

    def __enter__(self) -> list[str]:
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self.texts

    def __exit__(self, *exc) -> None:
        self._wrapper.__exit__(*exc)


def _emails(account, thread, count: int) -> list[Email]:
    for index in range(count):
        Blob.objects.get_or_create(sha256=f"{index:064x}", defaults={"size": 100 + index})
    return [
        Email(
            account=account,
            thread=thread,
            blob_id=f"{index:064x}",
            size=100 + index,
            received_at=WHEN,
            sent_at=None if index % 2 else WHEN,
            subject=None if index == 1 else f'it\'s "{index}" \\ {{a,b}} ü',
            message_id=None if index == 2 else [f"m{index}@example.com"],
            keywords={"$seen": True} if index % 2 else {},
            is_unread=not index % 2,
            parsed={"headers": [{"name": "X", "value": '{"nested": [1, 2]}'}]},
        )
        for index in range(count)
    ]


def _stored(email: Email) -> tuple:
    fresh = Email.objects.get(pk=email.pk)
    return (fresh.size, fresh.sent_at, fresh.subject, fresh.message_id, fresh.keywords, fresh.is_unread, fresh.parsed)


def test_insert_many_rows_stores_what_the_orm_would(user):
    account = primary_account(user)
    threads = sql.insert(Thread, [Thread(account=account) for _ in range(3)])
    assert [thread.pk for thread in threads] == sorted(thread.pk for thread in threads)
    assert all(Thread.objects.filter(pk=thread.pk, account=account).exists() for thread in threads)
    emails = sql.insert(Email, _emails(account, threads[0], 5))
    # The keys come back in the order of the objects.
    assert [email.pk for email in emails] == sorted(email.pk for email in emails)
    for email in emails:
        assert _stored(email) == (
            email.size,
            email.sent_at,
            email.subject,
            email.message_id,
            email.keywords,
            email.is_unread,
            email.parsed,
        )


def test_insert_statement_text_does_not_depend_on_the_row_count(user):
    account = primary_account(user)
    thread = Thread.objects.create(account=account)
    rows = _emails(account, thread, 7)
    with Statements() as few:
        sql.insert(Email, rows[:2])
    with Statements() as many:
        sql.insert(Email, rows[2:])
    assert len(few) == len(many) == 1
    if connection.vendor == "postgresql":
        assert few == many
        assert "unnest(" in few[0]


def test_change_records_of_any_number_are_one_statement_text(user):
    account = primary_account(user)

    def flush(count: int) -> list[str]:
        with Statements() as texts, account_changes(account.pk) as changes:
            for index in range(count):
                changes.record("Test", f"x{count}-{index}", Change.CREATED)
        return [text for text in texts if "core_objectchange" in text]

    three, eight = flush(3), flush(8)
    assert len(three) == len(eight) == 1
    if connection.vendor == "postgresql":
        assert three == eight
    from groupware.core.models import ObjectChange

    assert ObjectChange.objects.filter(account=account, type_name="Test").count() == 11


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the tsvector rows of PostgreSQL")
def test_search_rows_of_any_number_are_one_statement_text(user):
    account = primary_account(user)
    thread = Thread.objects.create(account=account)
    emails = sql.insert(Email, _emails(account, thread, 5))
    document = SearchDocument((tsvector_of(["quote's", "back\\slash"]),) + (tsvector_of(["word"]),) * 7)

    def write(pks: list[int]) -> str:
        with Statements() as texts:
            search_index_write([(pk, document) for pk in pks])
        (text,) = texts
        return text

    assert write([email.pk for email in emails[:2]]) == write([email.pk for email in emails[2:]])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM mail_email_search WHERE email_id = ANY(%s) AND subject = %s::tsvector",
            [[email.pk for email in emails], "'quote''s':1 'back\\\\slash':2"],
        )
        assert cursor.fetchone()[0] == 5


def test_a_batch_writes_rows_that_refer_to_each_other_in_one_statement(user):
    """Keys from the sequences, then a Thread, its Emails (given those keys) and their
    search rows in one batch: one statement on PostgreSQL, stored as the ORM would store
    them; the ORM's next insert takes a key after them."""
    from django.db import transaction

    from groupware.mail.models import EmailMailbox, Mailbox

    account = primary_account(user)
    inbox = Mailbox.objects.get(account=account, role="inbox")
    thread = Thread(account=account)
    emails = _emails(account, thread, 3)
    batch = sql.Batch()
    with Statements() as run:
        if connection.vendor == "postgresql":
            (thread.pk,), email_pks = sql.next_ids((Thread, 1), (Email, 3))
            assert email_pks == sorted(email_pks) and len(set(email_pks)) == 3
            batch.add(*sql.insert_statement(Thread, [thread], with_pks=True))
            for email, pk in zip(emails, email_pks, strict=True):
                email.pk, email.thread_id = pk, thread.pk
            batch.add(*sql.insert_statement(Email, emails, with_pks=True))
        else:
            sql.insert(Thread, [thread])
            for email in emails:
                email.thread_id = thread.pk
            sql.insert(Email, emails)
        memberships = [
            EmailMailbox(account=account, mailbox=inbox, email=email, thread_id=thread.pk, received_at=WHEN)
            for email in emails
        ]
        batch.add(*sql.insert_statement(EmailMailbox, memberships))
        assert len(batch) == (3 if connection.vendor == "postgresql" else 1)
        empty = search_document(email={}, fields={})  # as this database stores it
        search_index_write([(email.pk, empty) for email in emails], batch=batch)
        batch.run()
    if connection.vendor == "postgresql":
        assert run[-1].startswith("WITH w0 AS (INSERT INTO") and len(run) == 2  # the keys, the batch
    assert len(batch) == 0
    for email in emails:
        assert not email._state.adding
        assert _stored(email) == (
            email.size, email.sent_at, email.subject, email.message_id, email.keywords, email.is_unread, email.parsed
        )  # fmt: skip
    assert set(EmailMailbox.objects.filter(mailbox=inbox).values_list("email_id", flat=True)) >= {e.pk for e in emails}
    later = Thread.objects.create(account=account)
    assert later.pk > thread.pk
    # A failing write fails the whole batch: nothing of it stays.
    broken = sql.Batch()
    broken.add(*sql.insert_statement(Thread, [Thread(account=account)]))
    broken.add("UPDATE mail_thread SET account_id = NULL WHERE id = %s", [later.pk])
    before = Thread.objects.count()
    with pytest.raises(Exception), transaction.atomic():
        broken.run()
    assert Thread.objects.count() == before
