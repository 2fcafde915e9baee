"""Change tracking: a per-account modification sequence (modseq) and per-object changes.

Every write runs inside ``account_changes(account_pk)``: it locks the account row (so
concurrent writers of one account queue up and modseqs are handed out in commit order),
gives each changed object the next modseq, and records the object's last change in
``ObjectChange`` in the same transaction. A type's state is the highest modseq among its
changes, so state strings only ever move forward (RFC 8620 §5.1, §5.2).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Account
from groupware.core import events, sql
from groupware.core.models import ObjectChange

# ChangeSet.memo: whether any quota exists at all (accounts.quotas), read with the lock,
# as every write that stores data asks it.
QUOTAS_EXIST = "quotas_exist"

# The PostgreSQL types of the columns the change records are written with.
_CHANGE_TYPES = ("bigint", "text", "text", "bigint", "bigint", "boolean", "timestamptz")


class Change(Enum):
    CREATED = "created"
    UPDATED = "updated"
    DESTROYED = "destroyed"


@dataclass
class _Pending:
    modseq: int
    created: bool
    destroyed: bool


class ChangeSet:
    """The changes one transaction makes to one account."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.modseq = account.modseq
        self._pending: dict[tuple[str, str], _Pending] = {}
        # Quota usage this transaction adds (accounts.quotas): written with the modseq,
        # in the same UPDATE of the (locked) account row.
        self.usage_octets = 0
        self.usage_count = 0
        # Per-transaction memo for services (e.g. the account's quotas, loaded once).
        self.memo: dict[str, object] = {}

    def record(self, type_name: str, object_id: str, change: Change) -> int:
        """Give the object the next modseq; return it."""
        self.modseq += 1
        key = (type_name, object_id)
        previous = self._pending.get(key)
        created = change is Change.CREATED or (previous is not None and previous.created)
        self._pending[key] = _Pending(self.modseq, created, change is Change.DESTROYED)
        return self.modseq

    def add_usage(self, *, octets: int, count: int) -> None:
        """Count data the account gains (negative: loses) for its quota usage."""
        self.usage_octets += octets
        self.usage_count += count

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction whose recorded changes are forgotten if it fails."""
        pending, modseq = dict(self._pending), self.modseq
        usage = (self.usage_octets, self.usage_count)
        try:
            with transaction.atomic():
                yield
        except BaseException:
            self._pending, self.modseq = pending, modseq
            self.usage_octets, self.usage_count = usage
            raise

    def touched_types(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for (type_name, _), pending in self._pending.items():
            states[type_name] = max(states.get(type_name, 0), pending.modseq)
        return states

    def _flush(self) -> None:
        # Plain SQL (groupware.core.sql): this runs once per write transaction.
        octets, count = self.usage_octets, self.usage_count
        self.usage_octets = self.usage_count = 0
        self.account.used_octets += octets
        self.account.used_count += count
        if not self._pending:
            if octets or count:
                sql.execute(
                    "UPDATE accounts_account SET used_octets = used_octets + %s, used_count = used_count + %s"
                    " WHERE id = %s",
                    [octets, count, self.account.pk],
                )
            return
        now = sql.db_datetime(timezone.now())
        account_pk = self.account.pk
        rows = [
            [account_pk, type_name, object_id, pending.modseq, pending.modseq, pending.destroyed, now]
            for (type_name, object_id), pending in self._pending.items()
        ]
        values, params = sql.insert_rows(_CHANGE_TYPES, rows)
        record = (
            "INSERT INTO core_objectchange"  # noqa: S608 (only placeholders are joined in)
            " (account_id, type_name, object_id, created_modseq, modseq, destroyed, changed) "
            + values
            + " ON CONFLICT (account_id, type_name, object_id) DO UPDATE SET"
            " modseq = excluded.modseq, destroyed = excluded.destroyed, changed = excluded.changed"
        )
        # One UPDATE of the locked row: the modseq and the quota usage together.
        bump = (
            "UPDATE accounts_account SET modseq = %s, used_octets = used_octets + %s, used_count = used_count + %s"
            " WHERE id = %s"
        )
        bump_params = [self.modseq, octets, count, account_pk]
        if connection.vendor == "postgresql":
            # Both in one statement (a data-modifying WITH runs whether read or not).
            sql.execute(f"WITH recorded AS ({record}) {bump}", params + bump_params)
        else:
            sql.execute(record, params)
            sql.execute(bump, bump_params)
        self.account.modseq = self.modseq
        states = {name: encode_state(value) for name, value in self.touched_types().items()}
        transaction.on_commit(lambda: events.publish_state_change(account_pk, states))
        self._pending.clear()


_active: contextvars.ContextVar[dict[int, ChangeSet] | None] = contextvars.ContextVar("active_changes", default=None)


@contextmanager
def account_changes(account_pk: int) -> Iterator[ChangeSet]:
    """A transaction that writes to one account; nested use joins the outer one."""
    with accounts_changes([account_pk]) as sets:
        yield sets[account_pk]


@contextmanager
def account_changes_joined(account_pk: int) -> Iterator[ChangeSet]:
    """``account_changes``; inside a transaction already writing to this account it joins
    without a savepoint (two statements fewer), for steps whose failure fails the whole
    write anyway."""
    active = _active.get()
    if active is not None and account_pk in active:
        yield active[account_pk]
        return
    with account_changes(account_pk) as changes:
        yield changes


@contextmanager
def accounts_changes(account_pks: Iterable[int]) -> Iterator[dict[int, ChangeSet]]:
    """A transaction writing to several accounts, locked in ascending id order (no deadlocks)."""
    wanted = sorted(set(account_pks))
    active = _active.get()
    outer = active is not None
    if active is None:
        active = {}
    with transaction.atomic():
        missing = [pk for pk in wanted if pk not in active]
        token = None
        if missing:
            locked = _lock_accounts(missing)
            opened = {}
            for account, (quotas_exist,) in locked:
                opened[account.pk] = ChangeSet(account)
                opened[account.pk].memo[QUOTAS_EXIST] = bool(quotas_exist)
            if len(opened) != len(missing):
                raise Account.DoesNotExist("account vanished")
            active = {**active, **opened}
            token = _active.set(active)
        elif not outer:
            token = _active.set(active)
        try:
            yield {pk: active[pk] for pk in wanted}
            for pk in missing:
                active[pk]._flush()
        finally:
            if token is not None:
                _active.reset(token)


def _lock_accounts(pks: list[int]) -> list[tuple[Account, tuple[Any, ...]]]:
    """The account rows, locked, in ascending id order (plain SQL: every write starts
    here), each with whether any quota exists."""
    return sql.instances(
        Account,
        f"SELECT {sql.columns(Account)[0]}, EXISTS (SELECT 1 FROM accounts_quota)"  # noqa: S608
        f" FROM accounts_account WHERE id IN ({sql.placeholders(len(pks))}) ORDER BY id{sql.for_update()}",
        pks,
        extra=1,
    )


def encode_state(modseq: int) -> str:
    return str(modseq)


def decode_state(state: object) -> int | None:
    if not isinstance(state, str) or not state.isdigit() or len(state) > 19:
        return None
    if len(state) > 1 and state[0] == "0":
        return None
    return int(state)


def type_state(account: Account, type_name: str) -> str:
    """The current state of one type in an account: one index lookup (plain SQL: every
    /get, /set and /changes asks it)."""
    # ORDER BY ... LIMIT 1 rather than MAX(): the backward walk of the (account, type,
    # modseq) index whatever the planner's statistics say.
    top = sql.value(
        "SELECT modseq FROM core_objectchange WHERE account_id = %s AND type_name = %s ORDER BY modseq DESC LIMIT 1",
        [account.pk, type_name],
    )
    return encode_state(max(top or 0, account.purged_modseq))


_CHANGE_FIELDS = ["id", "object_id", "created_modseq", "modseq", "destroyed"]


def changes_since(account: Account, type_name: str, since: int, limit: int | None) -> list[ObjectChange]:
    """The objects of a type changed after ``since``, oldest change first (one range scan;
    plain SQL), with only the fields /changes reads loaded."""
    query = (
        "SELECT id, object_id, created_modseq, modseq, destroyed FROM core_objectchange"
        " WHERE account_id = %s AND type_name = %s AND modseq > %s ORDER BY modseq"
    )
    params: list[Any] = [account.pk, type_name, since]
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit)
    return [
        ObjectChange.from_db(DEFAULT_DB_ALIAS, _CHANGE_FIELDS, [pk, object_id, created, modseq, bool(destroyed)])
        for pk, object_id, created, modseq, destroyed in sql.rows(query, params)
    ]


def purge_tombstones(*, older_than) -> int:
    """Forget destroyed objects changed before ``older_than``; raise each account's floor."""
    purged = 0
    with transaction.atomic():
        tops = (
            ObjectChange.objects.filter(destroyed=True, changed__lt=older_than)
            .values("account_id")
            .annotate(top=Max("modseq"))
        )
        for row in tops:
            account = Account.objects.select_for_update().get(pk=row["account_id"])
            if row["top"] > account.purged_modseq:
                Account.objects.filter(pk=account.pk).update(purged_modseq=row["top"])
            purged += ObjectChange.objects.filter(
                account_id=account.pk, destroyed=True, modseq__lte=row["top"]
            ).delete()[0]
    return purged
