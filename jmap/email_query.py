"""Email/query (RFC 8621 §4.4), Email/queryChanges (§4.5) and SearchSnippet/get (§5).

This module checks the JMAP arguments (filter, sort, window) and turns them into the
query language of groupware.mail.query, which runs them in the database; it maps the
engine's refusals onto JMAP errors and ids back to JMAP ids.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from groupware.core.changes import decode_state, encode_state, type_state
from groupware.core.ids import decode, encode
from groupware.mail import query as engine
from groupware.mail.services.counts import EMAIL_ID_PREFIX, EMAIL_TYPE, MAILBOX_ID_PREFIX
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError
from jmap.mail_capability import MAIL
from jmap.registry import registry
from jmap.standard.changes import since_modseq
from jmap.standard.datatype import DataType
from jmap.standard.query import QUERY_ARGS, QUERY_CHANGES_ARGS, fold_filter

DEFAULT_MAX_QUERY_LIMIT = 5000
MAX_FILTER_DEPTH = 32
MAX_FILTER_CONDITIONS = 256

COLLAPSE_ARG = a.arg("collapseThreads", a.boolean, False)
EMAIL_QUERY_ARGS = (*QUERY_ARGS, COLLAPSE_ARG)
EMAIL_QUERY_CHANGES_ARGS = (*QUERY_CHANGES_ARGS, COLLAPSE_ARG)
SNIPPET_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("filter", a.nullable(a.obj), None),
    a.arg("emailIds", a.list_of(a.id_)),
)

# RFC 8621 §4.4.2 sort properties (JMAP name -> engine name).
SORT_PROPERTIES = {
    "receivedAt": "received_at",
    "size": "size",
    "from": "from",
    "to": "to",
    "subject": "subject",
    "sentAt": "sent_at",
    "hasKeyword": "has_keyword",
    "allInThreadHaveKeyword": "all_in_thread_have_keyword",
    "someInThreadHaveKeyword": "some_in_thread_have_keyword",
}
_UTC_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")
# RFC 5322 §3.6.8 field-name: printable US-ASCII except ":".
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")


def max_query_limit() -> int:
    """MAIL_MAX_QUERY_LIMIT: the most ids one Email/query returns (RFC 8620 §5.5 limit)."""
    return max(int(getattr(settings, "MAIL_MAX_QUERY_LIMIT", DEFAULT_MAX_QUERY_LIMIT)), 1)


# -- Arguments ------------------------------------------------------------------------------


def _utc_date(value: Any, name: str) -> datetime:
    # RFC 8620 §1.4 UTCDate: "Z" and fractional seconds allowed (compared to the second).
    if isinstance(value, str) and _UTC_DATE.match(value):
        try:
            return datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise MethodError("invalidArguments", f"{name} must be a UTCDate like 2024-01-31T12:00:00Z")


def _keyword(value: Any, name: str) -> str:
    # Keywords are case-insensitive and stored lower-cased (RFC 8621 §4.1.1).
    return a.string(value, name).lower()


def _mailbox(value: Any, name: str) -> int | None:
    # An id that names no mailbox of ours matches no email (it is no error).
    return decode(MAILBOX_ID_PREFIX, a.id_(value, name))


def _mailboxes(value: Any, name: str) -> frozenset[int]:
    ids = a.list_of(a.id_)(value, name)
    return frozenset(pk for pk in (decode(MAILBOX_ID_PREFIX, item) for item in ids) if pk is not None)


def _header(value: Any, name: str) -> tuple[str, str | None]:
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise MethodError("invalidArguments", f"{name} must be an array of one or two Strings")
    field_name = a.string(value[0], f"{name}[0]")
    if not _FIELD_NAME.match(field_name):
        raise MethodError("invalidArguments", f"{name}[0] must be a header field name")
    return field_name, a.string(value[1], f"{name}[1]") if len(value) == 2 else None


# RFC 8621 §4.4.1 FilterCondition properties: JMAP name -> (engine name, check).
FILTER_CONDITIONS: dict[str, tuple[str, a.Check]] = {
    "inMailbox": ("in_mailbox", _mailbox),
    "inMailboxOtherThan": ("in_mailbox_other_than", _mailboxes),
    "before": ("before", _utc_date),
    "after": ("after", _utc_date),
    "minSize": ("min_size", a.unsigned),
    "maxSize": ("max_size", a.unsigned),
    "allInThreadHaveKeyword": ("all_in_thread_have_keyword", _keyword),
    "someInThreadHaveKeyword": ("some_in_thread_have_keyword", _keyword),
    "noneInThreadHaveKeyword": ("none_in_thread_have_keyword", _keyword),
    "hasKeyword": ("has_keyword", _keyword),
    "notKeyword": ("not_keyword", _keyword),
    "hasAttachment": ("has_attachment", a.boolean),
    "text": ("text", a.string),
    "from": ("from", a.string),
    "to": ("to", a.string),
    "cc": ("cc", a.string),
    "bcc": ("bcc", a.string),
    "subject": ("subject", a.string),
    "body": ("body", a.string),
    "header": ("header", _header),
}


def parse_filter(tree: dict[str, Any] | None) -> engine.FilterNode | None:
    """The engine's filter for a JMAP FilterOperator/FilterCondition (RFC 8620 §5.5)."""
    if tree is None:
        return None
    return fold_filter(
        tree,
        condition=_condition,
        operator=lambda name, children: engine.Operator(name, tuple(children)),
        max_depth=MAX_FILTER_DEPTH,
        max_parts=MAX_FILTER_CONDITIONS,
    )


def _condition(node: dict[str, Any], where: str) -> engine.FilterNode:
    parts: list[engine.FilterNode] = []
    for name, value in node.items():
        spec = FILTER_CONDITIONS.get(name)
        if spec is None:
            raise MethodError("unsupportedFilter", f"{where}: {name} is not an Email filter condition")
        field, check = spec
        parts.append(engine.Condition(field, check(value, f"{where}/{name}")))
    # RFC 8621 §4.4.1: several properties must all apply (an AND); none is always true.
    return parts[0] if len(parts) == 1 else engine.Operator("AND", tuple(parts))


def parse_sort(sort: list[dict[str, Any]] | None) -> tuple[engine.SortKey, ...]:
    """The engine's sort for a JMAP Comparator list (RFC 8621 §4.4.2)."""
    keys = []
    for index, comparator in enumerate(sort or []):
        where = f"sort[{index}]"
        prop = comparator.get("property")
        ascending = comparator.get("isAscending", True)
        collation = comparator.get("collation", engine.DEFAULT_COLLATION)
        keyword = comparator.get("keyword")
        if not isinstance(prop, str) or not isinstance(ascending, bool) or not isinstance(collation, str):
            raise MethodError(
                "invalidArguments", f"{where}: property (String), isAscending (Boolean), collation (String)"
            )
        extra = set(comparator) - {"property", "isAscending", "collation", "keyword"}
        if extra:
            raise MethodError("invalidArguments", f"{where}: unknown members {', '.join(sorted(extra))}")
        field = SORT_PROPERTIES.get(prop)
        if field is None:
            raise MethodError("unsupportedSort", f"{where}: cannot sort Emails by {prop}")
        # RFC 8620 §5.5: an unknown collation is unsupportedSort, even where it is ignored.
        if collation not in engine.COLLATIONS:
            raise MethodError("unsupportedSort", f"{where}: unknown collation {collation}")
        if field in engine.KEYWORD_SORTS:
            # RFC 8621 §4.4.2: these comparators "MUST also have a keyword property".
            if keyword is None:
                raise MethodError("invalidArguments", f"{where}: {prop} needs a keyword")
            keyword = _keyword(keyword, f"{where}/keyword")
        elif keyword is not None:
            raise MethodError("invalidArguments", f"{where}: keyword only goes with the keyword sorts")
        keys.append(engine.SortKey(field, ascending, collation, keyword))
    return tuple(keys)


def _email_pk(object_id: str | None) -> int | None:
    return decode(EMAIL_ID_PREFIX, object_id) if object_id is not None else None


class _EmailState(DataType):
    """Just enough of a data type for jmap.standard.changes to check a state string."""

    name = EMAIL_TYPE
    capability = MAIL


_EMAIL_STATE = _EmailState()


# -- Methods --------------------------------------------------------------------------------


@registry.method("Email/query", capability=MAIL)
def email_query(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(EMAIL_QUERY_ARGS, arguments)
    account = call.account(parsed["accountId"])
    filter_tree = parse_filter(parsed["filter"])
    sort = parse_sort(parsed["sort"])
    # The state is read before the results: a change in between shows in a later call.
    query_state = type_state(account, EMAIL_TYPE)
    anchor = None
    if parsed["anchor"] is not None:
        anchor = _email_pk(parsed["anchor"])
        if anchor is None:
            raise MethodError("anchorNotFound")
    limit = parsed["limit"]
    clamped = limit is None or limit > max_query_limit()
    if clamped:
        limit = max_query_limit()
    try:
        result = engine.email_query(
            account=account,
            filter_tree=filter_tree,
            sort=sort,
            collapse_threads=parsed["collapseThreads"],
            position=parsed["position"],
            anchor=anchor,
            anchor_offset=parsed["anchorOffset"],
            limit=limit,
            calculate_total=parsed["calculateTotal"],
        )
    except engine.AnchorNotFound:
        raise MethodError("anchorNotFound") from None
    except engine.UnsupportedFilter as error:
        raise MethodError("unsupportedFilter", str(error)) from None
    response: dict[str, Any] = {
        "accountId": account.jmap_id,
        "queryState": query_state,
        "canCalculateChanges": True,
        "position": result.position,
        "ids": [encode(EMAIL_ID_PREFIX, pk) for pk in result.ids],
    }
    if parsed["calculateTotal"]:
        response["total"] = result.total
    if clamped:
        response["limit"] = limit
    return response


@registry.method("Email/queryChanges", capability=MAIL)
def email_query_changes(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(EMAIL_QUERY_CHANGES_ARGS, arguments)
    account = call.account(parsed["accountId"])
    filter_tree = parse_filter(parsed["filter"])
    sort = parse_sort(parsed["sort"])
    since, current_state = since_modseq(account, _EMAIL_STATE, parsed["sinceQueryState"])
    try:
        result = engine.email_query_changes(
            account=account,
            filter_tree=filter_tree,
            sort=sort,
            collapse_threads=parsed["collapseThreads"],
            since_modseq=since,
            max_changes=parsed["maxChanges"],
            up_to=_email_pk(parsed["upToId"]),
            calculate_total=parsed["calculateTotal"],
        )
    except engine.TooManyChanges as error:
        raise MethodError("tooManyChanges", str(error)) from None
    except engine.UnsupportedFilter as error:
        raise MethodError("unsupportedFilter", str(error)) from None
    # A change committed after the state was read is already in the answer.
    newest = max(decode_state(current_state) or 0, result.newest_modseq)
    response: dict[str, Any] = {
        "accountId": account.jmap_id,
        "oldQueryState": parsed["sinceQueryState"],
        "newQueryState": encode_state(newest),
        "removed": [encode(EMAIL_ID_PREFIX, pk) for pk in result.removed],
        "added": [{"id": encode(EMAIL_ID_PREFIX, pk), "index": index} for pk, index in result.added],
    }
    if parsed["calculateTotal"]:
        response["total"] = result.total
    return response


@registry.method("SearchSnippet/get", capability=MAIL)
def search_snippet_get(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(SNIPPET_ARGS, arguments)
    account = call.account(parsed["accountId"])
    filter_tree = parse_filter(parsed["filter"])
    requested = list(dict.fromkeys(parsed["emailIds"]))
    limit = settings.JMAP["maxObjectsInGet"]
    if len(requested) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} emailIds per call (maxObjectsInGet)")
    keys = {given: _email_pk(given) for given in requested}
    try:
        snippets = engine.email_snippets(
            account=account, email_ids=[pk for pk in keys.values() if pk is not None], node=filter_tree
        )
    except engine.UnsupportedFilter as error:
        raise MethodError("unsupportedFilter", str(error)) from None
    found, not_found = [], []
    for given, pk in keys.items():
        if pk is None or pk not in snippets:
            not_found.append(given)
        else:
            subject, preview = snippets[pk]
            found.append({"emailId": given, "subject": subject, "preview": preview})
    return {"accountId": account.jmap_id, "list": found, "notFound": not_found or None}
