"""Plain SQL for the hottest statements (delivery, import, change tracking).

Building a query with the ORM costs about as much Python time as a small statement costs
the database (several hundred microseconds each); a write that runs thirty of them spends
most of its time compiling SQL. The statements here are fixed strings with parameters that
run unchanged on SQLite and PostgreSQL (``ON CONFLICT``, ``RETURNING`` and row values are
in both); everything else keeps using the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def row(sql: str, params: Sequence[Any] = ()) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def value(sql: str, params: Sequence[Any] = ()) -> Any:
    found = row(sql, params)
    return None if found is None else found[0]


def execute(sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement; the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def placeholders(count: int) -> str:
    """ "%s, %s, ..." for an IN list or a VALUES row."""
    return ", ".join(["%s"] * count)


def for_update() -> str:
    """ " FOR UPDATE" where the database locks rows (SQLite locks the whole database on write)."""
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def db_datetime(moment: datetime) -> Any:
    """A timezone-aware datetime as the database's DateTimeField stores it."""
    return connection.ops.adapt_datetimefield_value(moment)


def read_datetime(value: Any) -> datetime:
    """A DateTimeField value as a plain SELECT returns it (SQLite: text in UTC) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def columns(model: type[Model], alias: str = "") -> tuple[str, list[str]]:
    """The SELECT list of every concrete column of ``model`` (each prefixed with the table
    ``alias`` if given) and the attribute names; worked out once per database."""
    return _columns(connection.vendor, model, alias)


@cache
def _columns(vendor: str, model: type[Model], alias: str) -> tuple[str, list[str]]:
    fields = model._meta.concrete_fields
    prefix = f"{alias}." if alias else ""
    quote = connection.ops.quote_name
    return ", ".join(prefix + quote(field.column) for field in fields), [field.attname for field in fields]


@cache
def _converters_of(vendor: str, model: type[Model]) -> list[tuple[int, Any, list[Any]]]:
    """(column index, expression, converter functions) of the model's columns that need
    converting on this database (e.g. text to datetime on SQLite), worked out once."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        expression = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(expression) + field.get_db_converters(connection)
        if functions:
            found.append((index, expression, functions))
    return found


def instances(model: type[M], sql: str, params: Sequence[Any] = (), *, extra: int = 0) -> list[Any]:
    """Model instances from a SELECT of ``columns(model)`` (values converted as the ORM
    does). With ``extra`` more columns after those: (instance, tuple of the extra values)."""
    names = [field.attname for field in model._meta.concrete_fields]
    count = len(names)
    converters = _converters_of(connection.vendor, model)
    found: list[Any] = []
    for values in rows(sql, params):
        own = list(values[:count])
        for index, expression, functions in converters:
            for function in functions:
                own[index] = function(own[index], expression, connection)
        instance = model.from_db(connection.alias, names, own)
        found.append((instance, tuple(values[count:])) if extra else instance)
    return found


def insert(model: type[M], objects: Sequence[M], *, chunk: int = 500) -> list[M]:
    """INSERT the objects (one statement per ``chunk``) and set their primary keys, as
    ``bulk_create`` does, with values prepared by each field as the ORM prepares them."""
    if not objects:
        return list(objects)
    meta = model._meta
    returning = f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    for start in range(0, len(objects), chunk):
        batch = objects[start : start + chunk]
        keys = rows(*_with_suffix(insert_statement(model, batch), returning))
        for obj, (key,) in zip(batch, keys, strict=True):
            setattr(obj, meta.pk.attname, key)
            _saved(obj)
    return list(objects)


def insert_statement(model: type[M], objects: Sequence[M], *, with_pks: bool = False) -> tuple[str, list[Any]]:
    """The INSERT of the objects (and its parameters), values prepared by each field as the
    ORM prepares them; ``with_pks``: their primary keys too (set already, e.g. from
    ``next_ids``), and they are marked saved. For a ``Batch`` or ``insert``."""
    meta = model._meta
    fields = [field for field in meta.concrete_fields if with_pks or not field.primary_key]
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
    values = [[field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields] for obj in objects]
    source, params = insert_rows(_db_types(connection.vendor, model, with_pks), values)
    if with_pks:
        for obj in objects:
            _saved(obj)
    return head + source, params


def _saved(obj: Model) -> None:
    obj._state.adding = False
    obj._state.db = connection.alias


def _with_suffix(statement: tuple[str, list[Any]], suffix: str) -> tuple[str, list[Any]]:
    return statement[0] + suffix, statement[1]


@cache
def _db_types(vendor: str, model: type[Model], with_pks: bool = False) -> tuple[str, ...]:
    return tuple(
        field.db_type(connection) for field in model._meta.concrete_fields if with_pks or not field.primary_key
    )


def next_ids(*wanted: tuple[type[Model], int]) -> list[list[int]]:
    """PostgreSQL: ``count`` new primary keys of each model, from the sequence behind its
    key (an identity column's or a serial's), in one statement: the rows can then be
    written in a ``Batch``, which returns nothing."""
    each = "array(SELECT nextval(pg_get_serial_sequence(%s, %s)::regclass) FROM generate_series(1, %s))"
    params: list[Any] = []
    for model, count in wanted:
        params += [model._meta.db_table, model._meta.pk.column, count]
    found = row("SELECT " + ", ".join([each] * len(wanted)), params)
    return [list(values) for values in found] if found is not None else [[] for _ in wanted]


class Batch:
    """Writes whose results nobody reads, sent together when ``run``: on PostgreSQL one
    statement (each write a data-modifying WITH of it: one round trip, one parse, where
    each statement costs a round trip and Python and PostgreSQL time of its own);
    elsewhere one after another. The writes of one batch see the database as it was before
    the batch (none sees another's rows), must not change the same row twice, and must not
    hold a WITH of their own; constraints are checked at the end of the statement (foreign
    keys at commit), so a row may refer to one inserted by another write of the batch."""

    def __init__(self) -> None:
        self._writes: list[tuple[str, list[Any]]] = []

    def add(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._writes.append((statement, list(params)))

    def insert(self, model: type[M], objects: Sequence[M], *, with_pks: bool = False, chunk: int = 500) -> None:
        """The INSERTs of the objects (``insert_statement``), ``chunk`` rows each."""
        for start in range(0, len(objects), chunk):
            self.add(*insert_statement(model, objects[start : start + chunk], with_pks=with_pks))

    def __len__(self) -> int:
        return len(self._writes)

    def run(self) -> None:
        writes, self._writes = self._writes, []
        if connection.vendor == "postgresql" and len(writes) > 1:
            joined = ", ".join(f"w{index} AS ({statement})" for index, (statement, _) in enumerate(writes))
            execute(f"WITH {joined} SELECT 1", [param for _, params in writes for param in params])
            return
        for statement, params in writes:
            execute(statement, params)


def insert_rows(types: Sequence[str], values: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """The rows of an INSERT and their parameters: ``VALUES (...), ...``, or on PostgreSQL
    for more than one row ``unnest_select`` with one array per column. ``types``: the
    columns' PostgreSQL types."""
    if len(values) > 1 and connection.vendor == "postgresql":
        return unnest_select(types), columnwise(values)
    row_sql = "(" + placeholders(len(types)) + ")"
    return "VALUES " + ", ".join([row_sql] * len(values)), [value for row_values in values for value in row_values]


def unnest_select(types: Sequence[str]) -> str:
    """PostgreSQL: ``SELECT * FROM unnest(%s::type[], ...)``, the rows of an INSERT given as
    one array per column (``columnwise``). However many rows, the statement has one
    parameter per column: psycopg converts and PostgreSQL prepares it once, where a
    VALUES list of many rows (over 50 parameters) is converted and planned every time.
    Rows come out in array order (as Django's bulk_create relies on for RETURNING)."""
    return "SELECT * FROM unnest(" + ", ".join(f"%b::{db_type}[]" for db_type in types) + ")"  # noqa: S608


def columnwise(values: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of values as one list per column (for ``unnest_select``)."""
    return [list(column) for column in zip(*values, strict=True)]
