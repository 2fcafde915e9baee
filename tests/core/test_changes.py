"""Change tracking: modseqs handed out in commit order, tombstones, nesting, rollback."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from accounts.models import Account
from groupware.core.changes import Change, account_changes, accounts_changes, type_state
from groupware.core.models import ObjectChange
from tests.jmaptest.models import Note
from tests.jmaptest.services import note_create, note_destroy, note_update

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks between threads need PostgreSQL (CI runs it there)"
)


def test_every_change_gets_its_own_modseq(user):
    account = user.jmap_accounts.get()
    with account_changes(account.pk) as changes:
        first = changes.record("Note", "n1", Change.CREATED)
        second = changes.record("Note", "n2", Change.CREATED)
        again = changes.record("Note", "n1", Change.UPDATED)
    assert first < second < again
    account.refresh_from_db()
    assert account.modseq == again
    row = ObjectChange.objects.get(object_id="n1")
    # Created and then updated within one transaction is still a creation at its last modseq.
    assert row.created_modseq == row.modseq == again and not row.destroyed


def test_nested_writes_join_the_outer_change_set(user):
    account = user.jmap_accounts.get()
    with account_changes(account.pk) as outer:
        note = note_create(account=account, title="inner")  # opens its own account_changes
        note_update(note=note, title="again")
        assert outer.touched_types() == {"Note": outer.modseq}
    assert type_state(account, "Note") == str(outer.modseq)


def test_rollback_forgets_changes(user):
    account = user.jmap_accounts.get()
    before = account.modseq
    with pytest.raises(RuntimeError), account_changes(account.pk):
        note_create(account=account, title="doomed")
        raise RuntimeError("boom")
    account.refresh_from_db()
    assert account.modseq == before
    assert not ObjectChange.objects.filter(type_name="Note").exists() and not Note.objects.exists()


def test_savepoint_rollback_keeps_the_rest(user):
    account = user.jmap_accounts.get()
    with account_changes(account.pk) as changes:
        note_create(account=account, title="kept")
        with pytest.raises(ValueError), changes.savepoint():
            note_create(account=account, title="dropped")
            raise ValueError
    assert list(Note.objects.values_list("title", flat=True)) == ["kept"]
    assert ObjectChange.objects.filter(type_name="Note").count() == 1


def test_destroy_leaves_a_tombstone(user):
    account = user.jmap_accounts.get()
    note = note_create(account=account, title="t")
    note_destroy(note=note)
    row = ObjectChange.objects.get(type_name="Note")
    assert row.destroyed and row.modseq > row.created_modseq


def test_state_published_only_after_commit(user, django_capture_on_commit_callbacks):
    from groupware.core import events

    heard: list = []

    def listener(account_pk, states):
        heard.append((account_pk, states))

    events.subscribe(listener)
    try:
        account = user.jmap_accounts.get()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with transaction.atomic():
                note_create(account=account, title="t")
            assert heard == []  # nothing is published while the transaction is open
        assert len(callbacks) == 1
        assert heard == [(account.pk, {"Note": type_state(account, "Note")})]
    finally:
        events.unsubscribe(listener)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_distinct_modseqs():
    from accounts.services import user_create

    account = user_create(email="busy@example.com", password="x").jmap_accounts.get()
    start = account.modseq
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for step in range(10):
                note_create(account=account, title=f"{index}-{step}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    modseqs = list(ObjectChange.objects.filter(account=account, type_name="Note").values_list("modseq", flat=True))
    assert len(modseqs) == len(set(modseqs)) == 60
    account.refresh_from_db()
    assert account.modseq == max(modseqs) == start + 60


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_accounts_locked_in_a_fixed_order_never_deadlock():
    from accounts.services import user_create

    first = user_create(email="one@example.com", password="x").jmap_accounts.get()
    second = user_create(email="two@example.com", password="x").jmap_accounts.get()
    starts = (first.modseq, second.modseq)
    errors: list[BaseException] = []

    def writer(order: list[Account]) -> None:
        try:
            for _ in range(15):
                with accounts_changes([a.pk for a in order]) as sets:
                    for account in order:
                        sets[account.pk].record("Note", f"x{account.pk}", Change.UPDATED)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=writer, args=([first, second],)),
        threading.Thread(target=writer, args=([second, first],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.modseq, second.modseq) == (starts[0] + 30, starts[1] + 30)


def test_embedded_scheduler_runs_due_tasks(user):
    from groupware.core.scheduler import run_due_tasks

    account = user.jmap_accounts.get()
    note_destroy(note=note_create(account=account, title="gone"))
    due = {"blob-gc": 0.0, "purge-changes": 0.0, "purge-delivery-records": 0.0}
    assert sorted(run_due_tasks(due, now=10.0)) == [
        "blob-gc",
        "purge-changes",
        "purge-delivery-records",
        "purge-push-subscriptions",
        "relay-due",
    ]
    assert due["purge-changes"] == 10.0 + 24 * 3600
    assert run_due_tasks(due, now=11.0) == []  # nothing is due again yet
    assert ObjectChange.objects.filter(type_name="Note", destroyed=True).count() == 1  # young tombstone kept
