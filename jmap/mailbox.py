"""The Mailbox data type (RFC 8621 §2) on the generic standard methods.

Mailbox/get, /changes, /query, /queryChanges and /set (no /copy). Each call gets its own
``MailboxType`` bound to the caller, because two properties depend on who asks: myRights
(from the caller's access to the account) and isSubscribed (stored per user). Writes go
through groupware.mail.services.mailboxes; this module only maps JMAP onto them.

Mailbox/query filters and sorts in Python over the account's mailboxes (one query; an
account holds at most a few thousand), which is what sortAsTree, filterAsTree and the
per-user isSubscribed condition need, and gives the same results on every database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from groupware.core.collation import COLLATIONS, DEFAULT_COLLATION
from groupware.core.ids import account_id as jmap_account_id
from groupware.mail.models import Mailbox
from groupware.mail.services import mailboxes as services
from groupware.mail.services.counts import COUNT_PROPERTIES, MAILBOX_ID_PREFIX
from jmap import args as a
from jmap.errors import MethodError, SetError, invalid_properties
from jmap.mail_capability import MAIL
from jmap.registry import Method, registry
from jmap.standard import Filter, ModelDataType, Prop, SetContext, Sort
from jmap.standard.changes import standard_changes
from jmap.standard.get import standard_get
from jmap.standard.query import SortKey, SortPlan, standard_query, standard_query_changes
from jmap.standard.set import standard_set

if TYPE_CHECKING:
    from accounts.models import Account
    from jmap.context import CallContext

# RFC 8621 §2 MailboxRights, in the RFC's order.
RIGHTS = (
    "mayReadItems",
    "mayAddItems",
    "mayRemoveItems",
    "maySetSeen",
    "maySetKeywords",
    "mayCreateChild",
    "mayRename",
    "mayDelete",
    "maySubmit",
)
FULL_RIGHTS = dict.fromkeys(RIGHTS, True)
# A read-only grant of the account (accounts.AccountGrant without may_write).
READ_RIGHTS = {right: right == "mayReadItems" for right in RIGHTS}

TREE_ARGS = (a.arg("sortAsTree", a.boolean, False), a.arg("filterAsTree", a.boolean, False))

_Row = dict[str, Any]
_Predicate = Callable[[_Row], bool]


def _name(value: Any, name: str) -> str:
    # The type only; the content rules (Net-Unicode, length) are the service's.
    return a.string(value, name)


def _role(value: Any, name: str) -> str | None:
    return None if value is None else a.string(value, name)


class MailboxType(ModelDataType):
    """RFC 8621 §2 Mailbox; ``call`` is the method call it serves (None outside requests)."""

    name = "Mailbox"
    capability = MAIL
    model = Mailbox
    id_prefix = MAILBOX_ID_PREFIX
    properties = {
        "id": Prop("id", server_set=True),
        "name": Prop("name", _name),
        "parentId": Prop("parentId", a.nullable(a.id_), default=None, id_ref=True),
        "role": Prop("role", _role, default=None),
        "sortOrder": Prop("sortOrder", a.unsigned, default=0),
        "totalEmails": Prop("totalEmails", server_set=True),
        "unreadEmails": Prop("unreadEmails", server_set=True),
        "totalThreads": Prop("totalThreads", server_set=True),
        "unreadThreads": Prop("unreadThreads", server_set=True),
        "myRights": Prop("myRights", server_set=True),
        # RFC 8621 §2: true for mailboxes the user creates themself.
        "isSubscribed": Prop("isSubscribed", a.boolean, default=True),
    }
    # RFC 8621 §2.3 FilterCondition. Mailbox/query checks the values with these and
    # evaluates the conditions in Python (query_ids, _condition); the Q forms serve only
    # callers of the generic filter builder, and their isSubscribed is the owner's view.
    filters = {
        "parentId": Filter(a.nullable(a.id_), lambda value: Q(parent_id=MailboxType.key_or_none(value))),
        "name": Filter(a.string, lambda value: Q(name__icontains=value)),
        "role": Filter(_role, lambda value: Q(role=value)),
        "hasAnyRole": Filter(a.boolean, lambda value: Q(role__isnull=not value)),
        "isSubscribed": Filter(a.boolean, lambda value: Q(is_subscribed=value)),
    }
    # RFC 8621 §2.3: sortOrder and name MUST be supported.
    sorts = {"sortOrder": Sort("sort_order", "number"), "name": Sort("name")}
    extra_args = {
        "query": TREE_ARGS,
        "queryChanges": TREE_ARGS,
        "set": (a.arg("onDestroyRemoveEmails", a.boolean, False),),
    }

    def __init__(self, call: CallContext | None = None) -> None:
        self.call = call

    @staticmethod
    def key_or_none(value: str | None) -> int | None:
        # An id that can't be a mailbox's matches no mailbox (pk 0 is never used).
        return None if value is None else (services.mailbox_pk(value) or 0)

    # -- who is asking ----------------------------------------------------------------------

    def _viewer(self, account_pk: int) -> tuple[int | None, bool, int | None]:
        """(user pk, read-only access, owner pk) of the caller for an account."""
        if self.call is None:
            return None, False, None
        access = self.call.request.accounts().get(jmap_account_id(account_pk))
        if access is None:  # not reachable through call.account(); be safe anyway
            return self.call.user.pk, True, None
        return self.call.user.pk, access.is_read_only, access.account.owner_id

    def _subscribed(self, row: _Row, user_pk: int | None, owner_pk: int | None) -> bool:
        if user_pk is None or owner_pk is None:
            return bool(row["is_subscribed"])
        return user_pk in (row["shared_subscribers"] or []) if user_pk != owner_pk else bool(row["is_subscribed"])

    # -- records ----------------------------------------------------------------------------

    plain_model = Mailbox

    def queryset(self, account: Account) -> Any:
        return Mailbox.objects.filter(account=account).order_by("pk")

    def to_json(self, record: Mailbox, properties: Iterable[str]) -> dict[str, Any]:
        user_pk, read_only, owner_pk = self._viewer(record.account_id)
        values: dict[str, Callable[[], Any]] = {
            "id": lambda: self.object_id(record),
            "name": lambda: record.name,
            "parentId": lambda: self.object_id_from_key(record.parent_id) if record.parent_id else None,
            "role": lambda: record.role,
            "sortOrder": lambda: record.sort_order,
            "totalEmails": lambda: record.total_emails,
            "unreadEmails": lambda: record.unread_emails,
            "totalThreads": lambda: record.total_threads,
            "unreadThreads": lambda: record.unread_threads,
            "myRights": lambda: dict(READ_RIGHTS if read_only else FULL_RIGHTS),
            "isSubscribed": lambda: self._subscribed(
                {"is_subscribed": record.is_subscribed, "shared_subscribers": record.shared_subscribers},
                user_pk,
                owner_pk,
            ),
        }
        return {name: values[name]() for name in properties}

    def changes_extra(self, account: Account, origin: int, rows: list[Any]) -> dict[str, Any]:
        """RFC 8621 §2.2 updatedProperties: the four counts if nothing else may have changed.

        Null when a mailbox was created or destroyed since the client's state, or when a
        changed mailbox's props_modseq (its last non-count change) is newer than that
        state; also null when nothing changed (no property "may have changed").
        """
        if not rows or any(row.destroyed or row.created_modseq > origin for row in rows):
            return {"updatedProperties": None}
        keys = {self.parse_id(row.object_id) for row in rows}
        props = list(Mailbox.objects.filter(account=account, pk__in=keys).values_list("props_modseq", flat=True))
        if len(props) != len(keys) or any(modseq > origin for modseq in props):
            return {"updatedProperties": None}
        return {"updatedProperties": list(COUNT_PROPERTIES)}

    # -- query ------------------------------------------------------------------------------

    def query_ids(
        self, account: Account, filter_tree: dict | None, sort: list[dict] | None, options: dict[str, Any]
    ) -> list[str]:
        """RFC 8621 §2.3: the standard /query plus sortAsTree and filterAsTree."""
        matches = _FilterBuilder(self).build(filter_tree)
        plan = SortPlan(self, sort)
        user_pk, _, owner_pk = self._viewer(account.pk)
        rows = list(
            Mailbox.objects.filter(account=account).values(
                "pk", "name", "parent_id", "role", "sort_order", "is_subscribed", "shared_subscribers"
            )
        )
        by_pk = {row["pk"]: row for row in rows}
        for row in rows:
            row["subscribed"] = self._subscribed(row, user_pk, owner_pk)
            if row["parent_id"] not in by_pk:
                row["parent_id"] = None
        tie_break = COLLATIONS[DEFAULT_COLLATION]

        def key(row: _Row) -> SortKey:
            # Mailboxes with equal comparators come by name (§2 sortOrder), then by id.
            return plan.key([row[field] for field in plan.fields], tie_break(row["name"]), row["pk"])

        matched = [row for row in rows if matches(row)]
        if options.get("filterAsTree"):
            # A mailbox is only included if all its ancestors are included too.
            keep = {row["pk"] for row in matched}
            matched = [row for row in matched if all(pk in keep for pk in _ancestors(row, by_pk))]
        if options.get("sortAsTree"):
            position = _tree_order(rows, key)
            matched.sort(key=lambda row: position[row["pk"]])
        else:
            matched.sort(key=key)
        return [self.object_id_from_key(row["pk"]) for row in matched]

    # -- writes -----------------------------------------------------------------------------

    def _parent_pk(self, value: str | None) -> int | None:
        if value is None:
            return None
        pk = services.mailbox_pk(value)
        if pk is None:
            raise invalid_properties(["parentId"], "parentId: no such mailbox in this account")
        return pk

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Mailbox, dict[str, Any]]:
        try:
            mailbox = services.mailbox_create(
                account=ctx.account,
                name=values["name"],
                parent_id=self._parent_pk(values["parentId"]),
                role=values["role"],
                sort_order=values["sortOrder"],
                is_subscribed=values["isSubscribed"],
                creator=ctx.call.user,
            )
        except services.MailboxInvalid as error:
            raise invalid_properties(error.properties, error.description) from None
        # RFC 8620 §5.3 created: the server-set properties, and any value the server
        # changed (the name as stored: NFC).
        extra = self.to_json(mailbox, [*COUNT_PROPERTIES, "myRights"])
        if mailbox.name != values["name"]:
            extra["name"] = mailbox.name
        return mailbox, extra

    def update(self, ctx: SetContext, record: Mailbox, values: dict[str, Any]) -> dict[str, Any] | None:
        old_role = record.role
        changes: dict[str, Any] = {}
        for prop, argument in (("name", "name"), ("role", "role"), ("sortOrder", "sort_order")):
            if prop in values:
                changes[argument] = values[prop]
        if "parentId" in values:
            changes["parent_id"] = self._parent_pk(values["parentId"])
        try:
            if changes:
                services.mailbox_update(mailbox=record, **changes)
            if "isSubscribed" in values:
                services.mailbox_subscribe(mailbox=record, user=ctx.call.user, subscribed=values["isSubscribed"])
        except services.MailboxInvalid as error:
            raise invalid_properties(error.properties, error.description) from None
        extra: dict[str, Any] = {}
        if "name" in values and record.name != values["name"]:
            extra["name"] = record.name
        if services.TRASH_ROLE in {old_role, record.role} and old_role != record.role:
            # Taking or giving the trash role moves unreadThreads (RFC 8621 §2).
            extra.update(self.to_json(record, COUNT_PROPERTIES))
        return extra or None

    def destroy(self, ctx: SetContext, record: Mailbox) -> None:
        try:
            services.mailbox_destroy(mailbox=record, remove_emails=ctx.options.get("onDestroyRemoveEmails", False))
        except services.MailboxHasChild as error:
            raise SetError("mailboxHasChild", str(error)) from None
        except services.MailboxHasEmail as error:
            raise SetError("mailboxHasEmail", f"{error}; use onDestroyRemoveEmails") from None


def _ancestors(row: _Row, by_pk: dict[int, _Row]) -> list[int]:
    found: list[int] = []
    parent = row["parent_id"]
    while parent is not None and parent in by_pk and len(found) <= len(by_pk):
        found.append(parent)
        parent = by_pk[parent]["parent_id"]
    return found


def _tree_order(rows: list[_Row], key: Callable[[_Row], SortKey]) -> dict[int, int]:
    """Depth-first position of every mailbox, siblings in comparator order (sortAsTree).

    An ancestor always comes before its descendants; two mailboxes in different
    subtrees compare as their nearest ancestors with a common parent do (RFC 8621 §2.3).
    """
    children: dict[int | None, list[_Row]] = {}
    for row in rows:
        children.setdefault(row["parent_id"], []).append(row)
    position: dict[int, int] = {}
    stack = list(reversed(sorted(children.get(None, []), key=key)))
    while stack:
        row = stack.pop()
        if row["pk"] in position:
            continue
        position[row["pk"]] = len(position)
        stack.extend(reversed(sorted(children.get(row["pk"], []), key=key)))
    for row in rows:  # unreachable only if the stored tree had a loop: keep them, last
        position.setdefault(row["pk"], len(position))
    return position


class _FilterBuilder:
    """A FilterOperator/FilterCondition tree (RFC 8620 §5.5) as a predicate over rows,
    with the same checks and errors as the generic filter builder."""

    def __init__(self, datatype: MailboxType) -> None:
        self.datatype = datatype
        self.budget = datatype.max_filter_conditions

    def build(self, tree: dict | None) -> _Predicate:
        if tree is None:
            return lambda row: True
        return self._node(tree, 1, "filter")

    def _node(self, node: Any, depth: int, where: str) -> _Predicate:
        if not isinstance(node, dict):
            raise MethodError("invalidArguments", f"{where} must be a FilterOperator or FilterCondition object")
        if depth > self.datatype.max_filter_depth:
            raise MethodError("unsupportedFilter", f"filters may nest at most {self.datatype.max_filter_depth} levels")
        self.budget -= 1
        if self.budget < 0:
            raise MethodError(
                "unsupportedFilter", f"filters may have at most {self.datatype.max_filter_conditions} parts"
            )
        if "operator" in node:
            operator, conditions = node.get("operator"), node.get("conditions")
            if (
                set(node) != {"operator", "conditions"}
                or operator not in ("AND", "OR", "NOT")
                or not isinstance(conditions, list)
            ):
                raise MethodError(
                    "invalidArguments", f"{where}: a FilterOperator has operator AND/OR/NOT and conditions (an array)"
                )
            parts = [self._node(child, depth + 1, f"{where}/conditions/{i}") for i, child in enumerate(conditions)]
            if operator == "AND":
                return lambda row: all(part(row) for part in parts)
            if operator == "OR":
                return lambda row: any(part(row) for part in parts)
            return lambda row: not any(part(row) for part in parts)
        tests: list[_Predicate] = []
        for name, value in node.items():
            condition = self.datatype.filters.get(name)
            if condition is None:
                raise MethodError("unsupportedFilter", f"{where}: {name} is not a filter condition of Mailbox")
            tests.append(_condition(name, condition.check(value, f"{where}/{name}")))
        return lambda row: all(test(row) for test in tests)


def _condition(name: str, value: Any) -> _Predicate:
    """RFC 8621 §2.3 FilterCondition properties."""
    if name == "parentId":
        parent = MailboxType.key_or_none(value)
        return lambda row: row["parent_id"] == parent
    if name == "name":
        # "contains the given string": case-insensitively, like the text filters of §4.4.1.
        needle = value.casefold()
        return lambda row: needle in row["name"].casefold()
    if name == "role":
        return lambda row: row["role"] == value
    if name == "hasAnyRole":
        return lambda row: (row["role"] is not None) == value
    return lambda row: row["subscribed"] == value  # isSubscribed, as this user sees it


# -- registration -------------------------------------------------------------------------------


def _children_first(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Destroy children before their parents when both are in one Mailbox/set.

    RFC 8620 §5.3 lets the server order the work within a /set; otherwise destroying a
    parent listed before its child would fail with mailboxHasChild.
    """
    destroy, account = arguments.get("destroy"), arguments.get("accountId")
    if not isinstance(destroy, list) or len(destroy) < 2 or not all(isinstance(item, str) for item in destroy):
        return arguments
    access = call.request.accounts().get(account) if isinstance(account, str) else None
    if access is None:
        return arguments
    parents = dict(Mailbox.objects.filter(account=access.account).values_list("pk", "parent_id"))

    def depth(given: str) -> int:
        object_id = call.created_id(given[1:]) if given.startswith("#") else given
        pk = services.mailbox_pk(object_id)
        levels = 0
        while pk is not None and pk in parents and levels <= len(parents):
            levels += 1
            pk = parents[pk]
        return levels

    ordered = sorted(destroy, key=depth, reverse=True)  # stable: equal depths keep their order
    return {**arguments, "destroy": ordered}


def _handler(suffix: str, implementation: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(implementation)
    def handler(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        if suffix == "set":
            arguments = _children_first(call, arguments)
        return implementation(MailboxType(call), call, arguments)

    return handler


_METHODS = {
    "get": (standard_get, False),
    "changes": (standard_changes, False),
    "query": (standard_query, False),
    "queryChanges": (standard_query_changes, False),
    "set": (standard_set, True),
}

for _suffix, (_implementation, _writes) in _METHODS.items():
    registry.add_method(
        Method(name=f"Mailbox/{_suffix}", capability=MAIL, handler=_handler(_suffix, _implementation), writes=_writes)
    )
