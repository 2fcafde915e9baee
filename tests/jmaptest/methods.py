"""The test-only Note type on the generic standard methods."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from jmap import args as a
from jmap.errors import SetError, invalid_properties
from jmap.registry import Capability, registry
from jmap.standard import Filter, ModelDataType, Prop, SetContext, Sort, register_standard_methods
from tests.jmaptest import services
from tests.jmaptest.models import Note

CAPABILITY = "urn:example:jmaptest"


def _title(value: Any, name: str) -> str:
    value = a.string(value, name)
    if not 1 <= len(value) <= 200:
        raise a.MethodError("invalidArguments", f"{name} must have 1 to 200 characters")
    return value


class NoteType(ModelDataType):
    """Exercises the generic machinery, including type-specific SetErrors:
    tooLarge (body over MAX_BODY), overQuota (more than MAX_NOTES notes),
    forbidden (destroying a pinned note)."""

    MAX_BODY = 1000
    MAX_NOTES = 50
    name = "Note"
    capability = CAPABILITY
    model = Note
    id_prefix = "n"
    properties = {
        "id": Prop("id", server_set=True),
        "title": Prop("title", _title),
        "body": Prop("body", a.string, default=""),
        "rank": Prop("rank", a.integer, default=0),
        "isPinned": Prop("isPinned", a.boolean, default=False),
        "parentId": Prop("parentId", a.nullable(a.id_), default=None, id_ref=True),
        "created": Prop("created", server_set=True),
    }
    filters = {
        "text": Filter(a.string, lambda value: Q(title__icontains=value) | Q(body__icontains=value)),
        "isPinned": Filter(a.boolean, lambda value: Q(is_pinned=value)),
        "minRank": Filter(a.integer, lambda value: Q(rank__gte=value)),
        "parentId": Filter(a.nullable(a.id_), lambda value: Q(parent_id=NoteType().parse_id(value) if value else None)),
    }
    sorts = {
        "title": Sort("title"),
        "rank": Sort("rank", "number"),
        "isPinned": Sort("is_pinned", "boolean"),
        "created": Sort("created", "date"),
    }

    def to_json(self, record: Note, properties) -> dict[str, Any]:
        values = {
            "id": lambda: self.object_id(record),
            "title": lambda: record.title,
            "body": lambda: record.body,
            "rank": lambda: record.rank,
            "isPinned": lambda: record.is_pinned,
            "parentId": lambda: self.object_id_from_key(record.parent_id) if record.parent_id else None,
            "created": lambda: record.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return {name: values[name]() for name in properties}

    def _parent(self, ctx: SetContext, value: str | None, record: Note | None = None) -> Note | None:
        if value is None:
            return None
        key = self.parse_id(value)
        parent = self.queryset(ctx.account).filter(pk=key).first() if key is not None else None
        if parent is None:
            raise invalid_properties(["parentId"], "no such note")
        walker = parent
        while record is not None and walker is not None:  # no cycles
            if walker.pk == record.pk:
                raise invalid_properties(["parentId"], "a note cannot be its own ancestor")
            walker = walker.parent
        return parent

    def _check_size(self, values: dict[str, Any]) -> None:
        if len(values.get("body", "")) > self.MAX_BODY:
            raise SetError("tooLarge", f"body is limited to {self.MAX_BODY} characters", maxSize=self.MAX_BODY)

    def create(self, ctx: SetContext, values: dict[str, Any]):
        self._check_size(values)
        if self.queryset(ctx.account).count() >= self.MAX_NOTES:
            raise SetError("overQuota", f"at most {self.MAX_NOTES} notes")
        note = services.note_create(
            account=ctx.account,
            title=values["title"],
            body=values["body"],
            rank=values["rank"],
            is_pinned=values["isPinned"],
            parent=self._parent(ctx, values["parentId"]),
        )
        return note, {"created": self.to_json(note, ["created"])["created"]}

    def update(self, ctx: SetContext, record: Note, values: dict[str, Any]):
        self._check_size(values)
        fields: dict[str, Any] = {}
        for name, field in (("title", "title"), ("body", "body"), ("rank", "rank"), ("isPinned", "is_pinned")):
            if name in values:
                fields[field] = values[name]
        if "parentId" in values:
            fields["parent"] = self._parent(ctx, values["parentId"], record)
        services.note_update(note=record, **fields)
        return None

    def destroy(self, ctx: SetContext, record: Note) -> None:
        if record.is_pinned:
            raise SetError("forbidden", "unpin the note first")
        services.note_destroy(note=record)


registry.add_capability(Capability(urn=CAPABILITY, session_value=dict, account_value=lambda account: {}))
register_standard_methods(NoteType())
