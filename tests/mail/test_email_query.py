"""RFC 8621 §4.4 Email/query: every filter condition (§4.4.1) and sort (§4.4.2), thread
collapsing (§4.4.3), the RFC 8620 §5.5 window arguments, errors and query counts.

The expectations are written by hand against the corpus (tests/mail/test_email_query_helpers),
so the same test run on SQLite and on PostgreSQL proves both give the same results.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groupware.core.changes import type_state
from groupware.mail import query as engine
from groupware.mail.models import Mailbox
from groupware.mail.services.counts import email_id
from tests.mail.factories import mail_fixture, other_mail_fixture  # noqa: F401 (fixtures)
from tests.mail.test_email_query_helpers import QueryApi, build_corpus, corpus_fixture, store_email, when  # noqa: F401

ALL = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]


def matching(api: QueryApi, condition: dict) -> list[str]:
    """The matches of a filter, in corpus order (receivedAt ascending here)."""
    return api.names(filter=condition, sort=[{"property": "receivedAt"}])


# -- Filters (§4.4.1) ---------------------------------------------------------------------------

FILTER_CASES = [
    ({"inMailbox": "inbox"}, ["m1", "m2", "m3", "m5"]),
    ({"inMailbox": "archive"}, ["m4", "m5"]),
    ({"inMailbox": "m999999"}, []),
    ({"inMailbox": "not-a-mailbox"}, []),
    ({"inMailboxOtherThan": ["trash", "junk"]}, ["m1", "m2", "m3", "m4", "m5", "m6"]),
    ({"inMailboxOtherThan": ["inbox"]}, ["m4", "m5", "m6", "m7", "m8"]),
    ({"inMailboxOtherThan": []}, ALL),
    ({"before": "2024-01-03T00:00:00Z"}, ["m1", "m2"]),
    ({"before": "2024-01-02T10:00:00Z"}, ["m1"]),  # strictly before
    ({"after": "2024-01-07T00:00:00Z"}, ["m7", "m8"]),
    ({"after": "2024-01-07T10:00:00Z"}, ["m7", "m8"]),  # the same or after
    ({"after": "2024-01-02T00:00:00.5Z", "before": "2024-01-04T00:00:00Z"}, ["m2", "m3"]),
    ({"minSize": 1500}, ["m2", "m3", "m4"]),
    ({"maxSize": 800}, ["m7", "m8"]),  # less than
    ({"minSize": 800, "maxSize": 1201}, ["m1", "m5", "m6"]),
    ({"hasKeyword": "$flagged"}, ["m2", "m5"]),
    ({"hasKeyword": "$FLAGGED"}, ["m2", "m5"]),  # keywords are case-insensitive
    ({"hasKeyword": "$draft"}, []),
    ({"notKeyword": "$seen"}, ["m3", "m5", "m7"]),
    ({"allInThreadHaveKeyword": "$seen"}, ["m1", "m2", "m4", "m8"]),
    ({"someInThreadHaveKeyword": "$flagged"}, ["m1", "m2", "m5"]),
    ({"noneInThreadHaveKeyword": "$flagged"}, ["m3", "m4", "m6", "m7", "m8"]),
    ({"hasAttachment": True}, ["m1", "m4"]),
    ({"hasAttachment": False}, ["m2", "m3", "m5", "m6", "m7", "m8"]),
    # text: subject, addresses, body and attachments; every word somewhere.
    ({"text": "quarterly"}, ["m1", "m2"]),
    ({"text": "numbers"}, ["m1", "m2"]),
    ({"text": "carol"}, ["m2", "m3", "m6"]),
    ({"text": "quarterly alice"}, ["m1", "m2"]),
    ({"text": "report carol"}, ["m2"]),
    ({"text": "report.pdf"}, ["m1"]),
    ({"text": "QUARTERLY"}, ["m1", "m2"]),
    ({"text": "quart"}, ["m1", "m2"]),  # words match as prefixes
    ({"text": "uarterly"}, []),  # ... of words only
    ({"text": "café"}, ["m3", "m6"]),
    ({"text": "CAFÉ"}, ["m3", "m6"]),
    ({"text": "cafe"}, []),  # no accent folding
    ({"text": "strasse"}, ["m5"]),  # case folding: ß is ss
    ({"text": "ölkänn"}, ["m5"]),
    ({"text": "東京"}, ["m5"]),  # one token per ideograph: a phrase
    ({"text": "京タ"}, ["m5"]),
    ({"text": "new café"}, ["m3", "m6"]),
    ({"text": "'new café'"}, ["m3", "m6"]),
    ({"text": '"café new"'}, []),  # a phrase keeps its order
    ({"text": '"the new"'}, ["m3"]),
    ({"text": "1337"}, ["m4"]),
    ({"text": ""}, ALL),  # no words: no constraint
    ({"text": "!!! ..."}, ALL),
    ({"text": "x" * 101}, []),  # longer than any indexed word
    ({"text": "acme"}, []),  # other header fields are not part of text
    ({"text": "shopware"}, []),
    ({"from": "alice"}, ["m1", "m6"]),
    ({"from": "alice@example.com"}, ["m1", "m6"]),
    ({"from": "alice@exam"}, ["m1", "m6"]),
    ({"from": "bob"}, ["m2"]),
    ({"from": "JÜRGEN"}, ["m5"]),
    ({"to": "alice"}, ["m2", "m3", "m4", "m5", "m7"]),
    ({"to": "carol"}, ["m6"]),
    ({"cc": "carol"}, ["m2"]),
    ({"cc": "alice"}, []),
    ({"bcc": "archive"}, ["m4"]),
    ({"subject": "lunch"}, ["m3", "m6"]),
    ({"subject": "friday lunch"}, ["m3", "m6"]),
    ({"subject": '"friday lunch"'}, []),
    ({"subject": '"lunch on"'}, ["m3", "m6"]),
    ({"subject": "numbers"}, []),
    ({"subject": "#42"}, ["m4"]),
    ({"body": "bus"}, ["m7"]),
    ({"body": '"bus"'}, ["m7"]),
    ({"body": "busi"}, ["m7"]),
    ({"body": '"busi"'}, []),  # a phrase matches whole words
    ({"body": "quarterly"}, ["m1"]),
    ({"body": "invoice-42"}, ["m4"]),  # attachments are body parts
    ({"body": "lunch"}, []),
    ({"body": "<b>"}, ["m6", "m7"]),  # the word "b", and words starting with b
    ({"body": '"b bold b"'}, ["m6"]),
    ({"body": r'"\"new café\""'}, ["m3", "m6"]),  # escaped quotes inside a phrase
    ({"header": ["X-Mailer"]}, ["m1", "m4"]),
    ({"header": ["x-mailer"]}, ["m1", "m4"]),
    ({"header": ["X-Mailer", "acme"]}, ["m1"]),
    ({"header": ["X-Mailer", "mail 2"]}, ["m1"]),
    ({"header": ["X-Mailer", '"2.0"']}, ["m1"]),
    ({"header": ["X-Mailer", "shopware"]}, ["m4"]),
    ({"header": ["X-Mailer", "highest"]}, []),
    ({"header": ["X-Priority", "highest"]}, ["m3"]),
    ({"header": ["X-Priority", ""]}, ["m3"]),
    ({"header": ["Subject", "lunch"]}, ["m3", "m6"]),
    ({"header": ["Subject", "für"]}, ["m4"]),  # RFC 2047 encoded words are decoded
    ({"header": ["X-Nothing"]}, []),
    ({"header": ["Subject", "mailer"]}, []),
    # Several properties: all of them (§4.4.1).
    ({"inMailbox": "inbox", "hasKeyword": "$seen"}, ["m1", "m2"]),
    ({"inMailbox": "inbox", "text": "alice", "notKeyword": "$flagged"}, ["m1", "m3"]),
    ({}, ALL),
    # Operators (RFC 8620 §5.5).
    ({"operator": "AND", "conditions": []}, ALL),
    ({"operator": "OR", "conditions": []}, []),
    ({"operator": "NOT", "conditions": []}, ALL),
    ({"operator": "OR", "conditions": [{"hasKeyword": "$flagged"}, {"inMailbox": "junk"}]}, ["m2", "m5", "m7"]),
    ({"operator": "NOT", "conditions": [{"inMailbox": "inbox"}]}, ["m4", "m6", "m7", "m8"]),
    (
        {"operator": "NOT", "conditions": [{"text": "quarterly"}, {"hasAttachment": True}]},
        ["m3", "m5", "m6", "m7", "m8"],
    ),
    ({"operator": "NOT", "conditions": [{"text": ""}]}, []),
    (
        {
            "operator": "AND",
            "conditions": [
                {"inMailboxOtherThan": ["trash"]},
                {"operator": "OR", "conditions": [{"from": "alice"}, {"subject": "invoice"}]},
                {"operator": "NOT", "conditions": [{"header": ["X-Mailer", "acme"]}]},
            ],
        },
        ["m4", "m6"],
    ),
]


def _resolve(api: QueryApi, condition):
    """Mailbox roles in inMailbox/inMailboxOtherThan become the corpus's mailbox ids."""
    if isinstance(condition, dict):
        resolved = {}
        for key, value in condition.items():
            if key == "inMailbox" and value in ("inbox", "archive", "sent", "junk", "trash"):
                resolved[key] = api.mailbox(value)
            elif key == "inMailboxOtherThan":
                resolved[key] = [api.mailbox(role) for role in value]
            elif key == "conditions":
                resolved[key] = [_resolve(api, child) for child in value]
            else:
                resolved[key] = value
        return resolved
    return condition


@pytest.mark.parametrize(("condition", "expected"), FILTER_CASES)
def test_filter(corpus, condition, expected):
    assert matching(corpus, _resolve(corpus, condition)) == expected


def test_filter_in_mailbox_of_another_account(corpus, other_mail):
    other_inbox = other_mail.mailbox_id()
    assert matching(corpus, {"inMailbox": other_inbox}) == []
    assert corpus.query(filter={"inMailbox": other_inbox}, calculateTotal=True, collapseThreads=True)["total"] == 0


def test_other_accounts_emails_never_match(corpus, other_mail):
    build_corpus(other_mail.account)
    assert matching(corpus, {"text": "quarterly"}) == ["m1", "m2"]
    assert corpus.query(calculateTotal=True)["total"] == 8


# -- Sorts (§4.4.2) ---------------------------------------------------------------------------------

SORT_CASES = [
    ([{"property": "receivedAt"}], ALL),
    ([{"property": "receivedAt", "isAscending": False}], list(reversed(ALL))),
    (None, list(reversed(ALL))),  # no sort: newest first
    ([], list(reversed(ALL))),
    ([{"property": "size"}], ["m7", "m8", "m5", "m1", "m6", "m3", "m2", "m4"]),
    ([{"property": "size", "isAscending": False}], ["m4", "m2", "m3", "m6", "m1", "m5", "m8", "m7"]),
    # A missing Date is the lowest value; equal values keep the id order.
    ([{"property": "sentAt"}], ["m2", "m7", "m1", "m8", "m3", "m4", "m5", "m6"]),
    ([{"property": "sentAt", "isAscending": False}], ["m6", "m5", "m4", "m3", "m8", "m1", "m7", "m2"]),
    # The first address's name (or email), case-insensitively; "" without a From.
    ([{"property": "from"}], ["m8", "m1", "m6", "m4", "m2", "m3", "m5", "m7"]),
    ([{"property": "from", "collation": "i;ascii-casemap"}], ["m8", "m1", "m6", "m4", "m2", "m3", "m5", "m7"]),
    # Octets of the name as it is: upper-case letters (0x41-0x5A) sort before "_" (0x5F).
    ([{"property": "from", "collation": "i;octet"}], ["m8", "m1", "m6", "m4", "m2", "m3", "m5", "m7"]),
    ([{"property": "from", "isAscending": False}], ["m7", "m5", "m3", "m2", "m4", "m6", "m1", "m8"]),
    # "ALICE" < "ALICE SMITH" < "ALICE@EXAMPLE.COM" (space before "@").
    ([{"property": "to"}], ["m8", "m4", "m7", "m2", "m5", "m3", "m1", "m6"]),
    # The base subject (without Re:).
    ([{"property": "subject"}], ["m8", "m7", "m4", "m3", "m6", "m1", "m2", "m5"]),
    ([{"property": "subject", "isAscending": False}], ["m5", "m2", "m1", "m6", "m3", "m4", "m7", "m8"]),
    # Numbers first, by value; the rest after them, as equals.
    ([{"property": "subject", "collation": "i;ascii-numeric"}], ["m7", "m8", "m1", "m2", "m3", "m4", "m5", "m6"]),
    ([{"property": "subject", "collation": "i;octet"}], ["m8", "m7", "m4", "m3", "m6", "m1", "m2", "m5"]),
    (
        [{"property": "hasKeyword", "keyword": "$flagged", "isAscending": False}, {"property": "receivedAt"}],
        ["m2", "m5", "m1", "m3", "m4", "m6", "m7", "m8"],
    ),
    (
        [{"property": "hasKeyword", "keyword": "$Seen"}, {"property": "receivedAt", "isAscending": False}],
        ["m7", "m5", "m3", "m8", "m6", "m4", "m2", "m1"],
    ),
    (
        [{"property": "allInThreadHaveKeyword", "keyword": "$seen"}, {"property": "receivedAt"}],
        ["m3", "m5", "m6", "m7", "m1", "m2", "m4", "m8"],
    ),
    (
        [
            {"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
            {"property": "receivedAt", "isAscending": False},
        ],
        ["m5", "m2", "m1", "m8", "m7", "m6", "m4", "m3"],
    ),
    # The RFC's example: flagged threads first, then subject, then newest first.
    (
        [
            {"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
            {"property": "subject", "collation": "i;ascii-casemap"},
            {"property": "receivedAt", "isAscending": False},
        ],
        ["m2", "m1", "m5", "m8", "m7", "m4", "m6", "m3"],
    ),
]


@pytest.mark.parametrize(("sort", "expected"), SORT_CASES)
def test_sort(corpus, sort, expected):
    arguments = {} if sort is None else {"sort": sort}
    assert corpus.names(**arguments) == expected


def test_sort_in_mailbox(corpus):
    inbox = corpus.mailbox("inbox")
    assert corpus.names(filter={"inMailbox": inbox}) == ["m5", "m3", "m2", "m1"]
    assert corpus.names(filter={"inMailbox": inbox}, sort=[{"property": "receivedAt"}]) == ["m1", "m2", "m3", "m5"]
    assert corpus.names(filter={"inMailbox": inbox}, sort=[{"property": "size"}]) == ["m5", "m1", "m3", "m2"]
    assert corpus.names(
        filter={"inMailbox": inbox, "notKeyword": "$seen"}, sort=[{"property": "receivedAt", "isAscending": False}]
    ) == ["m5", "m3"]


def test_equal_received_at_ties_are_stable(corpus):
    account = corpus.account
    for index in range(3):
        store_email(corpus.account, subject=f"tie {index}", received_at=when(20))
    inbox = corpus.mailbox("inbox")
    ties = [email.pk for email in account.emails.filter(received_at=when(20)).order_by("pk")]
    # The mailbox listing and the general plan order ties alike (by id, in the sort's direction).
    listing = corpus.query(filter={"inMailbox": inbox}, limit=3)["ids"]
    general = corpus.query(filter={"inMailboxOtherThan": []}, limit=3)["ids"]
    assert listing == general == [email_id(pk) for pk in reversed(ties)]
    ascending = corpus.query(filter={"inMailbox": inbox}, sort=[{"property": "receivedAt"}], position=4)["ids"]
    assert ascending == [email_id(pk) for pk in ties]


# -- Thread collapsing (§4.4.3) ---------------------------------------------------------------------


def test_collapse_threads(corpus):
    assert corpus.names(collapseThreads=True) == ["m8", "m7", "m6", "m5", "m4", "m2"]
    assert corpus.names(collapseThreads=True, sort=[{"property": "receivedAt"}]) == ["m1", "m3", "m4", "m5", "m7", "m8"]
    # The first email of each thread given the filter: m3 is the lunch thread's in the inbox.
    inbox = corpus.mailbox("inbox")
    assert corpus.names(filter={"inMailbox": inbox}, collapseThreads=True) == ["m5", "m3", "m2"]
    assert corpus.names(filter={"inMailbox": inbox}, collapseThreads=True, sort=[{"property": "receivedAt"}]) == [
        "m1",
        "m3",
        "m5",
    ]
    assert corpus.names(collapseThreads=True, sort=[{"property": "size"}]) == ["m7", "m8", "m5", "m1", "m6", "m4"]


def test_collapse_totals(corpus):
    inbox = corpus.mailbox("inbox")
    result = corpus.query(filter={"inMailbox": inbox}, collapseThreads=True, calculateTotal=True, limit=1)
    assert (result["ids"], result["total"]) == ([corpus.jmap_id("m5")], 3)
    assert corpus.query(filter={"inMailbox": inbox}, calculateTotal=True, limit=1)["total"] == 4
    assert corpus.query(collapseThreads=True, calculateTotal=True, limit=2)["total"] == 6
    assert corpus.query(filter={"text": "lunch"}, collapseThreads=True, calculateTotal=True, limit=0)["total"] == 1
    # Without calculateTotal there is no total (RFC 8620 §5.5).
    assert "total" not in corpus.query(collapseThreads=True)


def test_collapse_threads_fast_path_reads_in_batches(corpus, monkeypatch):
    """The mailbox listing reads rows in index order and stops once the window is full,
    whatever the batch size, with the same answer."""
    inbox = corpus.mailbox("inbox")
    arguments = {"filter": {"inMailbox": inbox}, "collapseThreads": True, "calculateTotal": True}
    expected = corpus.query(**arguments)
    monkeypatch.setattr(engine, "FIRST_BATCH", 1)
    for position, limit in ((0, 1), (1, 1), (0, 2), (2, 5)):
        result = corpus.query(**arguments, position=position, limit=limit)
        assert result["ids"] == expected["ids"][position : position + limit]
        assert result["total"] == expected["total"]


# -- Window: position, anchor, limit (RFC 8620 §5.5) --------------------------------------------------


def test_position_and_limit(corpus):
    result = corpus.query(position=2, limit=3, calculateTotal=True)
    assert [corpus.keys[i] for i in result["ids"]] == ["m6", "m5", "m4"]
    assert (result["position"], result["total"]) == (2, 8)
    assert "limit" not in result
    assert corpus.names(position=8) == []
    assert corpus.names(position=100, collapseThreads=True) == []
    assert corpus.names(limit=0) == []
    # A negative position counts from the end.
    result = corpus.query(position=-2)
    assert ([corpus.keys[i] for i in result["ids"]], result["position"]) == (["m2", "m1"], 6)
    result = corpus.query(position=-2, collapseThreads=True)
    assert ([corpus.keys[i] for i in result["ids"]], result["position"]) == (["m4", "m2"], 4)
    assert corpus.query(position=-100)["position"] == 0


def test_limit_is_clamped(corpus, settings):
    settings.MAIL_MAX_QUERY_LIMIT = 3
    result = corpus.query()
    assert (len(result["ids"]), result["limit"]) == (3, 3)
    assert corpus.query(limit=100)["limit"] == 3
    assert "limit" not in corpus.query(limit=2)


def test_anchor(corpus):
    result = corpus.query(anchor=corpus.jmap_id("m5"), limit=2)
    assert ([corpus.keys[i] for i in result["ids"]], result["position"]) == (["m5", "m4"], 3)
    result = corpus.query(anchor=corpus.jmap_id("m5"), anchorOffset=-1, limit=2, position=7)
    assert ([corpus.keys[i] for i in result["ids"]], result["position"]) == (["m6", "m5"], 2)
    result = corpus.query(anchor=corpus.jmap_id("m7"), anchorOffset=-5)
    assert result["position"] == 0
    result = corpus.query(anchor=corpus.jmap_id("m2"), anchorOffset=1, collapseThreads=True, calculateTotal=True)
    assert (result["ids"], result["position"], result["total"]) == ([], 6, 6)
    result = corpus.query(anchor=corpus.jmap_id("m6"), collapseThreads=True, limit=1)
    assert ([corpus.keys[i] for i in result["ids"]], result["position"]) == (["m6"], 2)


@pytest.mark.parametrize(
    ("anchor", "arguments"),
    [
        ("e999999", {}),
        ("m1", {}),  # a Mailbox id, not an Email id
        ("@m3", {"collapseThreads": True}),  # collapsed away: m6 stands for its thread
        ("@m8", {"filter": {"inMailbox": "inbox"}}),
        ("@m8", {"filter": {"inMailbox": "inbox"}, "collapseThreads": True}),
    ],
)
def test_anchor_not_found(corpus, anchor, arguments):
    anchor = corpus.jmap_id(anchor[1:]) if anchor.startswith("@") else anchor
    arguments = {**arguments, "anchor": anchor}
    if "filter" in arguments:
        arguments["filter"] = _resolve(corpus, arguments["filter"])
    assert corpus.error("Email/query", arguments)["type"] == "anchorNotFound"


def test_query_state_is_the_email_state(corpus):
    result = corpus.query()
    assert result["queryState"] == type_state(corpus.account, "Email")
    assert result["canCalculateChanges"] is True
    assert result["accountId"] == corpus.account_id
    store_email(corpus.account, subject="new", received_at=when(30))
    assert corpus.query()["queryState"] == type_state(corpus.account, "Email") != result["queryState"]


# -- Errors -------------------------------------------------------------------------------------------

ERROR_CASES = [
    ({"filter": {"colour": "red"}}, "unsupportedFilter"),
    ({"filter": {"inMailbox": "x", "colour": "red"}}, "unsupportedFilter"),
    ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
    ({"filter": {"operator": "AND"}}, "invalidArguments"),
    ({"filter": {"operator": "AND", "conditions": [], "text": "x"}}, "invalidArguments"),
    ({"filter": {"operator": "AND", "conditions": [5]}}, "invalidArguments"),
    ({"filter": {"inMailbox": 5}}, "invalidArguments"),
    ({"filter": {"inMailbox": None}}, "invalidArguments"),
    ({"filter": {"inMailboxOtherThan": "m1"}}, "invalidArguments"),
    ({"filter": {"before": "2024-01-01"}}, "invalidArguments"),
    ({"filter": {"after": "2024-01-01T00:00:00+01:00"}}, "invalidArguments"),
    ({"filter": {"after": "2024-02-30T00:00:00Z"}}, "invalidArguments"),
    ({"filter": {"minSize": -1}}, "invalidArguments"),
    ({"filter": {"maxSize": "big"}}, "invalidArguments"),
    ({"filter": {"hasKeyword": True}}, "invalidArguments"),
    ({"filter": {"hasAttachment": "yes"}}, "invalidArguments"),
    ({"filter": {"text": 5}}, "invalidArguments"),
    ({"filter": {"header": []}}, "invalidArguments"),
    ({"filter": {"header": ["a", "b", "c"]}}, "invalidArguments"),
    ({"filter": {"header": "X-Mailer"}}, "invalidArguments"),
    ({"filter": {"header": ["Bad:Name"]}}, "invalidArguments"),
    ({"filter": {"header": ["X-Mailer", 5]}}, "invalidArguments"),
    ({"filter": {"text": " ".join(f"w{n}" for n in range(65))}}, "unsupportedFilter"),
    ({"filter": [{"text": "x"}]}, "invalidArguments"),
    ({"sort": [{"property": "preview"}]}, "unsupportedSort"),
    ({"sort": [{"property": "id"}]}, "unsupportedSort"),
    ({"sort": [{"property": "subject", "collation": "i;klingon"}]}, "unsupportedSort"),
    ({"sort": [{"property": "size", "collation": "i;klingon"}]}, "unsupportedSort"),
    ({"sort": [{"property": "hasKeyword"}]}, "invalidArguments"),
    ({"sort": [{"property": "someInThreadHaveKeyword", "keyword": 5}]}, "invalidArguments"),
    ({"sort": [{"property": "size", "keyword": "$seen"}]}, "invalidArguments"),
    ({"sort": [{"property": "size", "isAscending": "no"}]}, "invalidArguments"),
    ({"sort": [{"property": "size", "colour": "red"}]}, "invalidArguments"),
    ({"sort": [{}]}, "invalidArguments"),
    ({"limit": -1}, "invalidArguments"),
    ({"position": "0"}, "invalidArguments"),
    ({"collapseThreads": "yes"}, "invalidArguments"),
    ({"sortAsTree": True}, "invalidArguments"),
]


@pytest.mark.parametrize(("arguments", "kind"), ERROR_CASES)
def test_errors(corpus, arguments, kind):
    assert corpus.error("Email/query", arguments)["type"] == kind


def test_filter_depth_and_size_limits(corpus):
    node: dict = {"text": "x"}
    for _ in range(40):
        node = {"operator": "AND", "conditions": [node]}
    assert corpus.error("Email/query", {"filter": node})["type"] == "unsupportedFilter"
    wide = {"operator": "OR", "conditions": [{"hasKeyword": f"k{n}"} for n in range(300)]}
    assert corpus.error("Email/query", {"filter": wide})["type"] == "unsupportedFilter"


def test_unknown_account(corpus):
    assert corpus.error("Email/query", {"accountId": "a999999"})["type"] == "accountNotFound"


def test_shared_read_only_account_can_be_queried(corpus, other_mail):
    from accounts.models import AccountGrant

    AccountGrant.objects.create(account=corpus.account, user=other_mail.client.user, may_write=False)
    result = other_mail.call("Email/query", {"filter": {"text": "quarterly"}}, account_id=corpus.account_id)
    assert result[0] == "Email/query"
    assert len(result[1]["ids"]) == 2


# -- Query counts (no N+1) --------------------------------------------------------------------------


def _count(function, **arguments) -> int:
    with CaptureQueriesContext(connection) as captured:
        function(**arguments)
    return len(captured.captured_queries)


def _node(api: QueryApi, role: str, **extra) -> engine.FilterNode:
    mailbox = Mailbox.objects.get(account=api.account, role=role).pk
    condition = engine.Condition("in_mailbox", mailbox)
    if not extra:
        return condition
    return engine.Operator("AND", (condition, *(engine.Condition(k, v) for k, v in extra.items())))


def test_query_counts_pinned(corpus, monkeypatch):
    account = corpus.account
    inbox = _node(corpus, "inbox")
    query = engine.email_query
    # The inbox listing: one read of the membership index.
    assert _count(query, account=account, filter_tree=inbox, collapse_threads=True, limit=50) == 1
    # Exhausted in that read: the total is what was read, no count.
    assert _count(query, account=account, filter_tree=inbox, collapse_threads=True, limit=50, calculate_total=True) == 1
    # The stored counts answer the total otherwise (one more query, whatever the size).
    monkeypatch.setattr(engine, "FIRST_BATCH", 1)
    assert _count(query, account=account, filter_tree=inbox, collapse_threads=True, limit=1, calculate_total=True) == 2
    assert _count(query, account=account, filter_tree=inbox, limit=1, calculate_total=True) == 2
    # A text condition reads its matches from the search index first: one more query.
    searched = _node(corpus, "inbox", text="quarterly", not_keyword="$flagged")
    assert _count(query, account=account, filter_tree=searched, collapse_threads=True, limit=50) == 2
    sort = (engine.SortKey("some_in_thread_have_keyword", False, keyword="$flagged"), engine.SortKey("subject"))
    assert _count(query, account=account, filter_tree=None, sort=sort, limit=50, calculate_total=True) == 2
    assert _count(query, account=account, filter_tree=None, sort=sort, collapse_threads=True, limit=50) == 1
    assert _count(query, account=account, filter_tree=None, anchor=corpus.emails["m3"].pk, limit=50) == 1


def test_query_count_does_not_grow_with_the_mailbox(corpus):
    def api_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            corpus.query(
                filter={"inMailbox": corpus.mailbox("inbox"), "text": "hello"},
                collapseThreads=True,
                calculateTotal=True,
                limit=5,
            )
        return len(captured.captured_queries)

    before = api_queries()
    for index in range(30):
        store_email(corpus.account, subject=f"hello {index}", body="hello there", received_at=when(10, index % 24))
    assert api_queries() == before


def test_common_words_are_searched_through_a_sub_select(corpus, monkeypatch):
    # Past MAX_LISTED_MATCHES the matches stay in the database (a sub-select): the same
    # results as a short list of ids.
    from groupware.mail import search

    filters = [{"text": "report"}, {"text": "lunch friday"}, {"body": "the"}, {"from": "alice"}]
    listed = [corpus.names(filter=item) for item in filters]
    monkeypatch.setattr(search, "MAX_LISTED_MATCHES", 0)
    assert [corpus.names(filter=item) for item in filters] == listed
    assert any(listed)
