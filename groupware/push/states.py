"""Push state strings: what a push connection has told its client so far.

A pushState (RFC 8887 §4.3.5.2) or EventSource event id (RFC 8620 §7.3) names, for each
account, the account's modseq up to which the client has been told of changes:
``"a1:42,a7:3"``. Every type's state is a modseq (groupware.core.changes), so the types that
changed since are those with a change above that number: one grouped query, whatever the
number of accounts. A state string that doesn't parse is treated as no state at all.
"""

from __future__ import annotations

from django.db.models import Max, Q

from groupware.core.changes import encode_state
from groupware.core.ids import account_id, account_pk
from groupware.core.models import ObjectChange

MAX_PUSH_STATE_LENGTH = 8192


def encode_push_state(seen: dict[int, int]) -> str:
    return ",".join(f"{account_id(pk)}:{modseq}" for pk, modseq in sorted(seen.items()))


def decode_push_state(value: object) -> dict[int, int]:
    if not isinstance(value, str) or not value or len(value) > MAX_PUSH_STATE_LENGTH:
        return {}
    seen: dict[int, int] = {}
    for part in value.split(","):
        jmap_id, _, number = part.partition(":")
        pk = account_pk(jmap_id)
        if pk is None or not number.isdigit() or len(number) > 19:
            return {}
        seen[pk] = int(number)
    return seen


def changed_since(seen: dict[int, int], current: dict[int, int]) -> dict[int, dict[str, str]]:
    """The type states of accounts that moved on from ``seen`` to ``current`` (modseqs by pk).

    Accounts absent from ``seen`` are left out: the client learns of a new account from the
    session resource, not from a push.
    """
    behind = {pk: modseq for pk, modseq in seen.items() if pk in current and current[pk] > modseq}
    if not behind:
        return {}
    condition = Q()
    for pk, modseq in behind.items():
        condition |= Q(account_id=pk, modseq__gt=modseq)
    rows = ObjectChange.objects.filter(condition).values("account_id", "type_name").annotate(top=Max("modseq"))
    result: dict[int, dict[str, str]] = {}
    for row in rows:
        result.setdefault(row["account_id"], {})[row["type_name"]] = encode_state(row["top"])
    return result
