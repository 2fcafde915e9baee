"""The Email query engine: Email/query (RFC 8621 §4.4) and Email/queryChanges (§4.5).

Filtering and sorting happen in the database; Python only walks the rows the database
returns in order, to collapse threads (§4.4.3) and to find an anchor.

- A filter tree (``Condition`` and ``Operator`` nodes, checked by the caller) becomes one
  ``Q`` on Email; the text conditions are sub-selects on the search index
  (groupware.mail.search); keyword conditions on the thread are correlated EXISTS.
- A sort (``SortKey`` list) becomes ORDER BY expressions, ending with the Email pk (in
  the direction of the first comparator) so the order is total and stable (RFC 8620
  §5.5). String sorts read the sort key columns filled at ingest (``sort_subject``,
  ``sort_from``, ``sort_to`` as they are, and their ``*_unicode`` RFC 5051 keys) and
  compare code points (COLLATE "C" on PostgreSQL, BINARY on SQLite), with ASCII letters
  folded to upper case for i;ascii-casemap, so both databases order exactly alike.
- The mailbox listing (a filter whose top level is ``inMailbox``, sorted by receivedAt)
  is read from ``EmailMailbox`` through its (mailbox, -received_at) index: the database
  returns rows in index order and the engine stops once it has the requested window,
  skipping threads already seen when collapsing; other queries stream their ordered rows
  the same way, in batches of growing size (a few queries at most, never one per row).
- The total of a filter that is just ``inMailbox`` is the Mailbox's stored
  totalEmails/totalThreads (§4.4: "expected to be fast to calculate").

queryChanges reports as removed every email changed since the old state that existed
then, and, when the result depends on other emails of a thread (collapseThreads or a
thread keyword condition or sort), every email of the threads those changes touched; each
of them still in the results is added back at its index. RFC 8620 §5.6 allows the extra
removals; they make the replay exact whatever changed. The results are read in order only
until every changed email the filter matches has been placed (or upToId is reached), so
new mail at the top of a large mailbox costs one small read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Case, Exists, F, Func, IntegerField, OuterRef, Q, QuerySet, TextField, Value, When
from django.db.models.expressions import OrderBy
from django.db.models.fields.json import KT
from django.db.models.functions import Collate, Length, Substr, Upper

from accounts.models import Account
from groupware.core.changes import changes_since
from groupware.core.ids import decode
from groupware.mail import search
from groupware.mail.models import Email, EmailMailbox, Mailbox
from groupware.mail.services.counts import EMAIL_ID_PREFIX, EMAIL_TYPE, THREAD_ID_PREFIX, THREAD_TYPE, in_chunks

# -- The query language ---------------------------------------------------------------------

# RFC 8621 §4.4.1 FilterCondition properties, by their domain names.
MAILBOX_FIELDS = ("in_mailbox", "in_mailbox_other_than")
DATE_FIELDS = ("before", "after")
SIZE_FIELDS = ("min_size", "max_size")
THREAD_KEYWORD_FIELDS = ("all_in_thread_have_keyword", "some_in_thread_have_keyword", "none_in_thread_have_keyword")
KEYWORD_FIELDS = ("has_keyword", "not_keyword", *THREAD_KEYWORD_FIELDS)
TEXT_FIELDS = ("text", "from", "to", "cc", "bcc", "subject", "body")
FILTER_FIELDS = (*MAILBOX_FIELDS, *DATE_FIELDS, *SIZE_FIELDS, *KEYWORD_FIELDS, "has_attachment", *TEXT_FIELDS, "header")

# RFC 8621 §4.4.2 sort properties, by their domain names.
THREAD_SORTS = ("all_in_thread_have_keyword", "some_in_thread_have_keyword")
KEYWORD_SORTS = ("has_keyword", *THREAD_SORTS)
STRING_SORTS = {"from": "sort_from", "to": "sort_to", "subject": "sort_subject"}
SORT_PROPERTIES = ("received_at", "size", "sent_at", *STRING_SORTS, *KEYWORD_SORTS)
COLLATIONS = ("i;ascii-casemap", "i;unicode-casemap", "i;octet", "i;ascii-numeric")
DEFAULT_COLLATION = "i;unicode-casemap"


@dataclass(frozen=True)
class Condition:
    """One property of a FilterCondition with its checked value: a mailbox pk (None for
    an id that names no mailbox), a frozenset of pks, a datetime, an int, a lower-case
    keyword, a bool, a search string, or (header name, text or None)."""

    field: str
    value: Any


@dataclass(frozen=True)
class Operator:
    """A FilterOperator (RFC 8620 §5.5): AND, OR or NOT of its conditions."""

    operator: str
    conditions: tuple[Condition | Operator, ...]


FilterNode = Condition | Operator


@dataclass(frozen=True)
class SortKey:
    """One Comparator (RFC 8621 §4.4.2); ``keyword`` for the keyword sorts."""

    prop: str
    ascending: bool = True
    collation: str = DEFAULT_COLLATION
    keyword: str | None = None


# With no comparator the order is "server dependent" (RFC 8620 §5.5): newest first.
DEFAULT_SORT = (SortKey("received_at", ascending=False),)


class UnsupportedFilter(Exception):
    """The filter can't be run (e.g. a search string with too many words)."""


class AnchorNotFound(Exception):
    """RFC 8620 §5.5 anchorNotFound."""


class TooManyChanges(Exception):
    """RFC 8620 §5.6 tooManyChanges."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} changes exceed maxChanges")
        self.count = count


@dataclass
class QueryResult:
    ids: list[int]  # Email pks
    position: int
    total: int | None


@dataclass
class QueryChangesResult:
    removed: list[int]  # Email pks
    added: list[tuple[int, int]]  # (Email pk, index)
    total: int | None
    newest_modseq: int = 0


# -- Filters ----------------------------------------------------------------------------------------

_TRUE = search.TRUE
_FALSE = search.FALSE


def _has_keyword(keyword: str) -> Q:
    return Q(keywords__has_key=keyword)


def _thread_with_keyword(keyword: str) -> Exists:
    return Exists(Email.objects.filter(thread_id=OuterRef("thread_id")).filter(_has_keyword(keyword)))


def _thread_without_keyword(keyword: str) -> Exists:
    return Exists(Email.objects.filter(thread_id=OuterRef("thread_id")).exclude(_has_keyword(keyword)))


def _condition_q(condition: Condition) -> Q:
    name, value = condition.field, condition.value
    if name == "in_mailbox":
        if value is None:
            return _FALSE
        return Q(Exists(EmailMailbox.objects.filter(email_id=OuterRef("pk"), mailbox_id=value)))
    if name == "in_mailbox_other_than":
        # §4.4.1: in at least one Mailbox not in the list.
        return Q(Exists(EmailMailbox.objects.filter(email_id=OuterRef("pk")).exclude(mailbox_id__in=sorted(value))))
    if name == "before":
        return Q(received_at__lt=value)
    if name == "after":
        return Q(received_at__gte=value)
    if name == "min_size":
        return Q(size__gte=value)
    if name == "max_size":
        return Q(size__lt=value)
    if name == "has_keyword":
        return _has_keyword(value)
    if name == "not_keyword":
        return ~_has_keyword(value)
    if name == "all_in_thread_have_keyword":
        return Q(~_thread_without_keyword(value))
    if name == "some_in_thread_have_keyword":
        return Q(_thread_with_keyword(value))
    if name == "none_in_thread_have_keyword":
        return Q(~_thread_with_keyword(value))
    if name == "has_attachment":
        return Q(has_attachment=value)
    try:
        if name == "text":
            return search.search_condition(fields=search.TEXT_FIELDS, text=value)
        if name == "body":
            return search.search_condition(fields=search.BODY_FIELDS, text=value)
        if name in ("from", "to", "cc", "bcc", "subject"):
            return search.search_condition(fields=(name,), text=value)
        if name == "header":
            header_name, text = value
            return search.header_condition(name=header_name, text=text)
    except search.SearchQueryError as error:
        raise UnsupportedFilter(str(error)) from None
    raise ValueError(f"unknown filter condition {name}")


def filter_q(node: FilterNode | None) -> Q:
    """The filter as a condition on Email (None: every email)."""
    if node is None:
        return _TRUE
    if isinstance(node, Condition):
        return _condition_q(node)
    parts = [filter_q(child) for child in node.conditions]
    if node.operator == "AND":
        return functools.reduce(lambda left, right: left & right, parts, _TRUE)
    either = functools.reduce(lambda left, right: left | right, parts, _FALSE)
    return ~either if node.operator == "NOT" else either


def _conditions(node: FilterNode | None) -> Iterator[Condition]:
    if isinstance(node, Condition):
        yield node
    elif isinstance(node, Operator):
        for child in node.conditions:
            yield from _conditions(child)


def _mailbox_and_rest(node: FilterNode | None) -> tuple[int, FilterNode | None] | None:
    """(mailbox pk, the rest) when the filter is inMailbox AND'ed with other conditions."""
    if isinstance(node, Condition):
        if node.field == "in_mailbox" and node.value is not None:
            return node.value, None
        return None
    if node is None or node.operator != "AND":
        return None
    for index, child in enumerate(node.conditions):
        if isinstance(child, Condition) and child.field == "in_mailbox" and child.value is not None:
            rest = node.conditions[:index] + node.conditions[index + 1 :]
            return child.value, (Operator("AND", rest) if rest else None)
    return None


def _depends_on_thread(node: FilterNode | None, sort: tuple[SortKey, ...], collapse: bool) -> bool:
    """Whether an email's place in the results depends on the other emails of its thread."""
    return (
        collapse
        or any(condition.field in THREAD_KEYWORD_FIELDS for condition in _conditions(node))
        or any(key.prop in THREAD_SORTS for key in sort)
    )


# -- Sorts -------------------------------------------------------------------------------------------


def _binary(expression: Any) -> Any:
    """Compare by code point on both databases (UTF-8 octet order)."""
    return Collate(expression, "C") if connection.vendor == "postgresql" else expression


class _LeadingNumber(Func):
    """The leading decimal digits of a string without leading zeros (RFC 4790 §9.1)."""

    template = (
        "LTRIM(SUBSTR(%(expressions)s, 1, LENGTH(%(expressions)s) - LENGTH(LTRIM(%(expressions)s, '0123456789'))), '0')"
    )
    output_field = TextField()


class _NoLeadingDigit(Func):
    """1 when a string doesn't start with a digit: it sorts after every number (§9.1)."""

    template = "CASE WHEN LENGTH(LTRIM(%(expressions)s, '0123456789')) = LENGTH(%(expressions)s) THEN 1 ELSE 0 END"
    output_field = IntegerField()


def _string_keys(column: str, collation: str) -> list[Any]:
    value = F(column)
    if collation == "i;octet":
        return [_binary(value)]
    if collation == "i;ascii-numeric":
        number = _LeadingNumber(value)
        return [_NoLeadingDigit(value), Length(number), _binary(number)]
    if collation == "i;ascii-casemap":
        # RFC 4790 §9.2: a-z folded to A-Z (upper() under the binary collation folds
        # ASCII letters only, on both databases), then octets.
        return [Upper(_binary(value))]
    # i;unicode-casemap (RFC 5051): the key column holds the titlecased, NFKD form.
    return [_binary(F(f"{column}_unicode"))]


def _flag(condition: Any) -> Case:
    return Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField())


def _sort_keys(key: SortKey) -> list[Any]:
    if key.prop in ("received_at", "size", "sent_at"):
        return [F(key.prop)]
    if key.prop in STRING_SORTS:
        return _string_keys(STRING_SORTS[key.prop], key.collation)
    keyword = key.keyword or ""
    if key.prop == "has_keyword":
        return [_flag(_has_keyword(keyword))]
    if key.prop == "all_in_thread_have_keyword":
        return [_flag(~_thread_without_keyword(keyword))]
    if key.prop == "some_in_thread_have_keyword":
        return [_flag(_thread_with_keyword(keyword))]
    raise ValueError(f"unknown sort property {key.prop}")


def _ordered(query: QuerySet, sort: tuple[SortKey, ...]) -> QuerySet:
    aliases: dict[str, Any] = {}
    ordering: list[OrderBy] = []
    for index, key in enumerate(sort):
        for part, expression in enumerate(_sort_keys(key)):
            name = f"sort_{index}_{part}"
            aliases[name] = expression
            if key.prop == "sent_at":
                # A missing Date sorts first in ascending order (RFC 8620 §5.5's null rule
                # for the generic /query), the same on both databases.
                ordering.append(F(name).asc(nulls_first=True) if key.ascending else F(name).desc(nulls_last=True))
            else:
                ordering.append(F(name).asc() if key.ascending else F(name).desc())
    tie = F("pk").asc() if not sort or sort[0].ascending else F("pk").desc()
    return query.alias(**aliases).order_by(*ordering, tie)


# -- Plans ---------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """The ordered rows (email pk, thread pk) of a query and how to count them."""

    rows: QuerySet
    unordered: QuerySet
    # The stored counts answer the total: the filter is just inMailbox of this mailbox.
    mailbox_only: int | None = None

    def total(self, account: Account, collapse: bool) -> int:
        if self.mailbox_only is not None:
            counts = (
                Mailbox.objects.filter(account_id=account.pk, pk=self.mailbox_only)
                .values_list("total_emails", "total_threads")
                .first()
            )
            if counts is None:
                return 0
            return counts[1] if collapse else counts[0]
        if collapse:
            return self.unordered.values("thread_id").distinct().count()
        return self.unordered.count()


def _plan(account: Account, node: FilterNode | None, sort: tuple[SortKey, ...]) -> _Plan:
    sort = sort or DEFAULT_SORT
    driver = _mailbox_and_rest(node)
    if driver is not None and len(sort) == 1 and sort[0].prop == "received_at":
        # The mailbox listing: EmailMailbox's (mailbox, -received_at) index gives the order.
        mailbox, rest = driver
        members = EmailMailbox.objects.filter(account_id=account.pk, mailbox_id=mailbox)
        if rest is not None:
            matching = Email.objects.filter(pk=OuterRef("email_id"), account_id=account.pk).filter(filter_q(rest))
            members = members.filter(Exists(matching))
        direction = "" if sort[0].ascending else "-"
        rows = members.order_by(f"{direction}received_at", f"{direction}email_id").values_list("email_id", "thread_id")
        return _Plan(rows, members, mailbox if rest is None else None)
    emails = Email.objects.filter(account_id=account.pk).filter(filter_q(node))
    mailbox_only = driver[0] if driver is not None and driver[1] is None else None
    return _Plan(_ordered(emails, sort).values_list("pk", "thread_id"), emails, mailbox_only)


FIRST_BATCH = 200
MAX_BATCH = 20_000


def _batches(rows: QuerySet, size: int) -> Iterator[tuple[int, int]]:
    """The rows of an ordered query, read in batches that double in size."""
    offset, size = 0, max(size, 1)
    while True:
        batch = list(rows[offset : offset + size])
        yield from batch
        if len(batch) < size:
            return
        offset += size
        size = min(size * 2, MAX_BATCH)


class _Results:
    """The query results in order, read from the database in growing batches."""

    def __init__(self, rows: QuerySet, *, collapse: bool, first_batch: int) -> None:
        self._rows = _batches(rows, first_batch)
        self._collapse = collapse
        self._threads: set[int] = set()
        self.ids: list[int] = []
        self._index: dict[int, int] = {}
        self.exhausted = False

    def _advance(self) -> bool:
        """Read until one more result; False when there is none."""
        for email, thread in self._rows:
            if self._collapse:
                if thread in self._threads:
                    continue  # §4.4.3: a thread appears once, at its first email
                self._threads.add(thread)
            self._index.setdefault(email, len(self.ids))
            self.ids.append(email)
            return True
        self.exhausted = True
        return False

    def fill(self, count: int) -> None:
        while len(self.ids) < count and self._advance():
            pass

    def index_of(self, email: int) -> int | None:
        while email not in self._index and self._advance():
            pass
        return self._index.get(email)


def email_query(
    *,
    account: Account,
    filter_tree: FilterNode | None,
    sort: tuple[SortKey, ...] = (),
    collapse_threads: bool = False,
    position: int = 0,
    anchor: int | None = None,
    anchor_offset: int = 0,
    limit: int,
    calculate_total: bool = False,
) -> QueryResult:
    """A window of the account's emails (pks) matching the filter, in sort order
    (RFC 8621 §4.4, RFC 8620 §5.5). ``anchor`` is an Email pk: AnchorNotFound if it is
    not in the results; a negative ``position`` counts from the end."""
    plan = _plan(account, filter_tree, tuple(sort))
    total: int | None = None
    if not collapse_threads and anchor is None:
        # Without collapsing, the database slices the window itself.
        if position < 0:
            total = plan.total(account, False)
            position = max(total + position, 0)
        ids = [email for email, _ in plan.rows[position : position + limit]] if limit else []
        if calculate_total and total is None:
            total = plan.total(account, False)
        return QueryResult(ids, position, total if calculate_total else None)
    first_batch = max(4 * (max(position, 0) + limit), FIRST_BATCH)
    results = _Results(plan.rows, collapse=collapse_threads, first_batch=first_batch)
    if anchor is not None:
        index = results.index_of(anchor)
        if index is None:
            raise AnchorNotFound
        position = max(index + anchor_offset, 0)
    elif position < 0:
        total = plan.total(account, collapse_threads)
        position = max(total + position, 0)
    results.fill(position + limit)
    ids = results.ids[position : position + limit] if limit else []
    if calculate_total and total is None:
        total = len(results.ids) if results.exhausted else plan.total(account, collapse_threads)
    return QueryResult(ids, position, total if calculate_total else None)


def email_query_changes(
    *,
    account: Account,
    filter_tree: FilterNode | None,
    sort: tuple[SortKey, ...] = (),
    collapse_threads: bool = False,
    since_modseq: int,
    max_changes: int | None = None,
    up_to: int | None = None,
    calculate_total: bool = False,
) -> QueryChangesResult:
    """What changed in the results since ``since_modseq`` (RFC 8620 §5.6, RFC 8621 §4.5):
    removed Email pks and (pk, index) of those added, sorted by index. ``up_to`` (an
    Email pk) ends the added list there when it is in the new results."""
    email_rows = changes_since(account, EMAIL_TYPE, since_modseq, None)
    newest = max((row.modseq for row in email_rows), default=0)
    created: set[int] = set()
    removed: list[int] = []  # what may have been in the old results
    for row in email_rows:
        pk = _email_pk(row.object_id)
        if pk is not None:
            if row.created_modseq > since_modseq:
                created.add(pk)
            else:
                removed.append(pk)
    if _depends_on_thread(filter_tree, tuple(sort), collapse_threads):
        live = [row for row in email_rows if not row.destroyed]
        removed.extend(_thread_members(account, since_modseq, live, exclude=created | set(removed)))
    if max_changes is not None and len(removed) > max_changes:
        raise TooManyChanges(len(removed))
    candidates = created | set(removed)
    plan = _plan(account, filter_tree, tuple(sort))
    # The changed emails the filter matches now: the results are read until each of them
    # has been placed (or collapsed away), or up to upToId.
    pending = _matching(account, filter_tree, candidates)
    added: list[tuple[int, int]] = []
    seen_threads: set[int] = set()
    index, exhausted = 0, False
    if pending:
        for email, thread in _batches(plan.rows, FIRST_BATCH):
            pending.discard(email)
            if collapse_threads:
                if thread in seen_threads:
                    if not pending:
                        break
                    continue
                seen_threads.add(thread)
            if email in candidates:
                added.append((email, index))
            index += 1
            if email == up_to or not pending:
                break
        else:
            exhausted = True
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise TooManyChanges(len(removed) + len(added))
    total = None
    if calculate_total:
        # Read to the end, the count is known; else the database counts.
        total = index if exhausted else plan.total(account, collapse_threads)
    return QueryChangesResult(removed, added, total, newest)


def _matching(account: Account, filter_tree: FilterNode | None, emails: set[int]) -> set[int]:
    """Which of these emails (pks) the filter matches (one query per 5000)."""
    found: set[int] = set()
    condition = filter_q(filter_tree)
    for chunk in in_chunks(sorted(emails)):
        found.update(
            Email.objects.filter(account_id=account.pk, pk__in=chunk).filter(condition).values_list("pk", flat=True)
        )
    return found


def _email_pk(object_id: str) -> int | None:
    return decode(EMAIL_ID_PREFIX, object_id)


def _thread_members(account: Account, since_modseq: int, live_email_rows: list[Any], *, exclude: set[int]) -> list[int]:
    """Every current email of the threads changed since the state (a Thread change, or a
    change to one of its emails), but those in ``exclude``."""
    threads = {
        pk
        for row in changes_since(account, THREAD_TYPE, since_modseq, None)
        if (pk := decode(THREAD_ID_PREFIX, row.object_id)) is not None
    }
    changed = [pk for row in live_email_rows if (pk := _email_pk(row.object_id)) is not None]
    for chunk in in_chunks(changed):
        threads.update(Email.objects.filter(account_id=account.pk, pk__in=chunk).values_list("thread_id", flat=True))
    members: list[int] = []
    for chunk in in_chunks(sorted(threads)):
        members.extend(
            Email.objects.filter(account_id=account.pk, thread_id__in=chunk).order_by("pk").values_list("pk", flat=True)
        )
    return [pk for pk in members if pk not in exclude]


@dataclass
class SnippetRequest:
    """The text conditions of a filter that a SearchSnippet highlights (RFC 8621 §5)."""

    subject: list[search.TextTerm] = field(default_factory=list)
    body: list[search.TextTerm] = field(default_factory=list)


def snippet_terms(node: FilterNode | None) -> SnippetRequest:
    """The words and phrases of the text, subject and body conditions outside NOT."""
    request = SnippetRequest()

    def walk(current: FilterNode | None) -> None:
        if isinstance(current, Operator):
            if current.operator != "NOT":
                for child in current.conditions:
                    walk(child)
        elif isinstance(current, Condition) and current.field in ("text", "subject", "body"):
            try:
                terms = search.text_terms(current.value)
            except search.SearchQueryError as error:
                raise UnsupportedFilter(str(error)) from None
            if current.field in ("text", "subject"):
                request.subject.extend(terms)
            if current.field in ("text", "body"):
                request.body.extend(terms)

    walk(node)
    return request


# The start of the body text a preview is looked for in (the text the parse stored for
# the search index); a first match further in gives no preview.
SNIPPET_SOURCE_CHARS = 100_000


def email_snippets(
    *, account: Account, email_ids: list[int], node: FilterNode | None
) -> dict[int, tuple[str | None, str | None]]:
    """(subject, preview) snippets of the account's emails (pks) that exist (§5), in
    one query for every email asked for."""
    request = snippet_terms(node)
    snippets: dict[int, tuple[str | None, str | None]] = {}
    for chunk in in_chunks(sorted(set(email_ids))):
        rows = Email.objects.filter(account_id=account.pk, pk__in=chunk)
        if request.body:
            # Only the body's search text leaves the database, not the whole parse.
            rows = rows.annotate(body=Substr(KT("parsed__searchText__body"), 1, SNIPPET_SOURCE_CHARS))
        else:
            rows = rows.annotate(body=Value(""))
        for pk, subject, body in rows.values_list("pk", "subject", "body"):
            snippets[pk] = (
                search.snippet_highlight(subject, request.subject) if request.subject and subject else None,
                search.snippet_preview(body or "", request.body) if request.body else None,
            )
    return snippets
