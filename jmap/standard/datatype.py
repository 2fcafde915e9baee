"""How a data type plugs into the generic standard methods.

A type declares its properties (with validators and server-set/immutable flags), its
filter conditions and sort properties, and implements a few hooks: load records, turn a
record into JSON, and create/update/destroy through its domain services. /get, /changes,
/set, /query, /queryChanges and /copy then come from this package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from jmap.args import Check, anything

if TYPE_CHECKING:
    from accounts.models import Account
    from groupware.core.changes import ChangeSet
    from jmap.context import CallContext

_NO_DEFAULT = object()


@dataclass(frozen=True)
class Prop:
    """One property of a data type."""

    name: str
    check: Check = anything
    server_set: bool = False
    # May only be given on create; an update must leave it as it is.
    immutable: bool = False
    # Value used when a create omits the property (callable for fresh containers);
    # a property without a default is required on create unless server-set.
    default: Any = _NO_DEFAULT
    # The value is the id of another record and may be given as "#creationId".
    id_ref: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


@dataclass(frozen=True)
class Filter:
    """A FilterCondition property: checks its value and turns it into a query condition."""

    check: Check
    to_q: Callable[[Any], Q]


@dataclass(frozen=True)
class Sort:
    """A sortable property: the model field to read and how its values compare."""

    field: str
    kind: str = "string"  # string | number | boolean | date


@dataclass
class SetContext:
    """What a type's create/update/destroy hooks get: the account and its change set."""

    call: CallContext
    account: Account
    changes: ChangeSet
    # Creation ids made in this call, for types whose records reference each other.
    created_here: dict[str, str] = field(default_factory=dict)
    # Values of the type's extra /set arguments (e.g. onDestroyRemoveEmails).
    options: dict[str, Any] = field(default_factory=dict)

    def resolve_id(self, value: Any) -> Any:
        """Map "#creationId" to the id created earlier in this request (None if unknown)."""
        if isinstance(value, str) and value.startswith("#"):
            return self.call.created_id(value[1:])
        return value


class DataType:
    """Base class for a JMAP data type served by the generic standard methods."""

    name: str = ""
    capability: str = ""
    properties: dict[str, Prop] = {}
    # Properties returned when /get gets properties: null (None: all of them).
    default_properties: tuple[str, ...] | None = None
    filters: dict[str, Filter] = {}
    sorts: dict[str, Sort] = {}
    # Sort applied after the client's comparators so results are stable (RFC 8620 §5.5).
    tie_break_field: str = "pk"
    # Upper bounds the server applies when the client asks for more or for no limit.
    max_changes: int = 5000
    max_query_limit: int = 5000
    # Largest filter tree accepted (depth and number of conditions).
    max_filter_depth: int = 32
    max_filter_conditions: int = 512
    # Whether /get with ids: null (all records) is supported.
    get_all: bool = True
    # Type-specific method arguments beyond the standard ones, by method suffix
    # ("get", "set", "query", "changes"...); their parsed values reach the hooks as options.
    extra_args: dict[str, tuple[Any, ...]] = {}

    # -- records ---------------------------------------------------------------------------

    def object_id_from_key(self, key: Any) -> str:
        raise NotImplementedError

    def object_id(self, record: Any) -> str:
        return self.object_id_from_key(record.pk)

    def parse_id(self, object_id: str) -> Any:
        """The lookup key for an id (e.g. a primary key), or None if it can't be ours."""
        raise NotImplementedError

    def queryset(self, account: Account) -> Any:
        """Live records of this type in the account."""
        raise NotImplementedError

    def load(self, account: Account, keys: Iterable[Any] | None, *, for_update: bool = False) -> dict[Any, Any]:
        """Records by lookup key (all of them when keys is None), in one query."""
        if self.plain_model is not None:
            return self._load_plain(self.plain_model, account, keys, for_update)
        query = self.queryset(account)
        if keys is not None:
            query = query.filter(pk__in=list(keys))
        if for_update:
            query = query.select_for_update()
        return {record.pk: record for record in query}

    # A type whose queryset is every row of this model with the account's account_id
    # (ordered by pk) may name it: load() then reads it with plain SQL, without the ORM's
    # query building (groupware.core.sql), which costs more than the query itself.
    plain_model: Any = None

    def _load_plain(self, model: Any, account: Account, keys: Iterable[Any] | None, for_update: bool) -> dict[Any, Any]:
        from groupware.core import sql

        columns, _ = sql.columns(model)
        query = f"SELECT {columns} FROM {model._meta.db_table} WHERE account_id = %s"  # noqa: S608
        params: list[Any] = [account.pk]
        if keys is not None:
            wanted = list(keys)
            if not wanted:
                return {}
            query += f" AND id IN ({sql.placeholders(len(wanted))})"
            params += wanted
        query += " ORDER BY id" + (sql.for_update() if for_update else "")
        return {record.pk: record for record in sql.instances(model, query, params)}

    def to_json(self, record: Any, properties: Iterable[str]) -> dict[str, Any]:
        raise NotImplementedError

    def records_to_json(
        self, account: Account, records: list[Any], properties: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """/get's list; override to batch extra loading or to use type-specific options."""
        return [self.to_json(record, properties) for record in records]

    def query_ids(
        self, account: Account, filter_tree: dict | None, sort: list[dict] | None, options: dict[str, Any]
    ) -> list[str]:
        """Every matching id in query order (override for type-specific query options)."""
        from jmap.standard.query import ordered_ids

        return ordered_ids(self, account, filter_tree, sort)

    def changes_extra(self, account: Account, origin: int, rows: list[Any]) -> dict[str, Any]:
        """Extra /changes response arguments (e.g. Mailbox's updatedProperties)."""
        return {}

    # -- writes, through the type's domain services ----------------------------------------

    def create_record(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """One /set create from the client's JSON: validation against ``properties`` and
        then ``create``. Types whose creates take more than declared properties (Email's
        ``header:*`` forms) override this; returns the record and ``created``'s extras."""
        from jmap.standard.set import generic_create

        return generic_create(self, ctx, values)

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Create a record; return it and any server-set properties beyond id."""
        raise NotImplementedError

    def update(self, ctx: SetContext, record: Any, values: dict[str, Any]) -> dict[str, Any] | None:
        """Apply changed property values; return properties changed as a side effect."""
        raise NotImplementedError

    def destroy(self, ctx: SetContext, record: Any) -> None:
        raise NotImplementedError

    def copy_values(self, record: Any) -> dict[str, Any]:
        """The client-settable properties of a record, for /copy."""
        settable = [name for name, prop in self.properties.items() if not prop.server_set]
        return self.to_json(record, settable)

    # -- helpers ---------------------------------------------------------------------------

    def all_properties(self) -> list[str]:
        return list(self.properties)


class ModelDataType(DataType):
    """A data type stored in one Django model with an ``account`` foreign key."""

    model: Any = None
    id_prefix: str = "x"

    def object_id_from_key(self, key: Any) -> str:
        from groupware.core.ids import encode

        return encode(self.id_prefix, key)

    def parse_id(self, object_id: str) -> Any:
        from groupware.core.ids import decode

        return decode(self.id_prefix, object_id)

    def queryset(self, account: Account) -> Any:
        return self.model.objects.filter(account=account)
