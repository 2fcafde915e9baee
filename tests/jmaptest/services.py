"""Write services for the test Note type: every write records its change."""

from __future__ import annotations

from groupware.core.changes import Change, account_changes
from groupware.core.ids import encode
from tests.jmaptest.models import Note

TYPE = "Note"


def note_id(pk: int) -> str:
    return encode("n", pk)


def note_create(*, account, title: str, body: str = "", rank: int = 0, is_pinned: bool = False, parent=None) -> Note:
    with account_changes(account.pk) as changes:
        note = Note.objects.create(
            account=account, title=title, body=body, rank=rank, is_pinned=is_pinned, parent=parent
        )
        changes.record(TYPE, note_id(note.pk), Change.CREATED)
    return note


def note_update(*, note: Note, **fields) -> Note:
    with account_changes(note.account_id) as changes:
        for name, value in fields.items():
            setattr(note, name, value)
        note.save(update_fields=list(fields))
        changes.record(TYPE, note_id(note.pk), Change.UPDATED)
    return note


def note_destroy(*, note: Note) -> None:
    with account_changes(note.account_id) as changes:
        for child in Note.objects.filter(parent=note):
            note_update(note=child, parent=None)
        changes.record(TYPE, note_id(note.pk), Change.DESTROYED)
        note.delete()
