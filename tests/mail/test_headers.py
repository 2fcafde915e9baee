"""Header field parsed forms (RFC 8621 §4.1.2) and header properties (§4.1.3)."""

from __future__ import annotations

import random
import time

import pytest

from groupware.mail.headers import (
    HEADER_FORMS,
    Header,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    canonical_form,
    decode_raw,
    form_allowed,
    header_value,
    parse_date,
    parse_form,
)

# RFC 8621 §4.1.2.3 and §4.1.2.4: the example address-list (raw, folded, leading space).
RFC_ADDRESS_LIST = (
    ' "  James Smythe" <james@example.com>, Friends:\r\n'
    "  jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n"
    "  <john@example.com>;"
)


# -- Raw -------------------------------------------------------------------------------------


def test_raw_keeps_everything_but_nul_and_bad_utf8():
    # §4.1.2.1: invalid UTF-8 runs become U+FFFD, NUL octets are dropped.
    assert decode_raw(b" caf\xc3\xa9 \xff\xfe x\x00y\r\n folded") == " café \ufffd\ufffd xy\r\n folded"
    assert as_raw(" value\r\n  folded") == " value\r\n  folded"


# -- Text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (" Hello world", "Hello world"),
        (" Hello\r\n world", "Hello world"),  # unfolded (RFC 5322 §2.2.3)
        (" Hello\n\tworld", "Hello\tworld"),  # LF-only messages fold the same way
        (" =?UTF-8?Q?Caf=C3=A9?= talk", "Café talk"),
        (" =?utf-8?b?Q2Fmw6k=?=", "Café"),
        (" =?UTF-8?B?44GT44KT44Gr44Gh44Gv?=", "こんにちは"),
        (" =?iso-8859-1?q?Fr=F6sche?=", "Frösche"),
        # White space between two encoded-words is dropped (RFC 2047 §6.2)...
        (" =?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"),
        (" =?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=", "ab"),
        # ... but not between an encoded-word and ordinary text.
        (" =?UTF-8?Q?a?= b =?UTF-8?Q?c?=", "a b c"),
        # A character split across two encoded-words (broken, common).
        (" =?UTF-8?Q?caf=C3?= =?UTF-8?Q?=A9?=", "café"),
        (" =?UTF-8?B?w6k=?==?UTF-8?B?w6k=?=", "éé"),  # adjacent words, no white space
        (" =?utf-8*en?q?hello?=", "hello"),  # RFC 2231 §5 language in an encoded-word
        (" =?x-unknown?q?hello?=", "=?x-unknown?q?hello?="),  # unknown charset: kept
        (" Re:=?UTF-8?Q?x?=", "Re:=?UTF-8?Q?x?="),  # bad placement: not decoded (§4.1.2.2)
        (" =?UTF-8?Q?x?=:", "=?UTF-8?Q?x?=:"),
        (" =?UTF-8?Q?bad_=FF?=", "bad \ufffd"),  # undecodable octets: U+FFFD
        (" =?UTF-8?Q?a=00b=07c?=", "abc"),  # encoded controls dropped
        (" =?UTF-8?B?QQ?=", "A"),  # missing padding
        (" e\u0301t\u00e9", "\u00e9t\u00e9"),  # NFC
        ("   spaced   ", "spaced"),
        ("", ""),
    ],
)
def test_text(raw, text):
    assert as_text(raw) == text


def test_text_with_raw_8bit_inside_an_encoded_word():
    # Seen in the wild: an 8-bit octet inside a Q word. The raw octet was already
    # replaced by U+FFFD (not UTF-8); the rest of the word still decodes.
    assert as_text(decode_raw(b" =?iso-8859-1?Q?Die_Fr\xf6sche?=")) == "Die Fr\ufffdsche"


# -- Addresses -------------------------------------------------------------------------------


def test_rfc_example_addresses():
    assert as_addresses(RFC_ADDRESS_LIST) == [
        {"name": "James Smythe", "email": "james@example.com"},
        {"name": None, "email": "jane@example.com"},
        {"name": "John Smîth", "email": "john@example.com"},
    ]


def test_rfc_example_grouped_addresses():
    assert as_grouped_addresses(RFC_ADDRESS_LIST) == [
        {"name": None, "addresses": [{"name": "James Smythe", "email": "james@example.com"}]},
        {
            "name": "Friends",
            "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("raw", "addresses"),
    [
        (" joe@example.com", [{"name": None, "email": "joe@example.com"}]),
        (" Joe Bloggs <joe@example.com>", [{"name": "Joe Bloggs", "email": "joe@example.com"}]),
        (' "Bloggs, Joe" <joe@example.com>', [{"name": "Bloggs, Joe", "email": "joe@example.com"}]),
        (' "Joe \\"JB\\" Bloggs" <joe@example.com>', [{"name": 'Joe "JB" Bloggs', "email": "joe@example.com"}]),
        (" John Q. Public <jqp@example.com>", [{"name": "John Q. Public", "email": "jqp@example.com"}]),
        # A comment right after the addr-spec is the name when there is no display-name.
        (" joe@example.com (Joe Bloggs)", [{"name": "Joe Bloggs", "email": "joe@example.com"}]),
        (" <joe@example.com> (Joe)", [{"name": "Joe", "email": "joe@example.com"}]),
        (" Joe (the boss) <joe@example.com>", [{"name": "Joe", "email": "joe@example.com"}]),
        (" < joe @ example.com >", [{"name": None, "email": "joe@example.com"}]),
        (" <@relay.example:joe@example.com>", [{"name": None, "email": "joe@example.com"}]),  # obs-route
        # RFC 6532: UTF-8 in names and addresses.
        (" Jöran <jöran@exämple.se>", [{"name": "Jöran", "email": "jöran@exämple.se"}]),
        (
            " =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>",
            [{"name": "Keld Jørn Simonsen", "email": "keld@dkuug.dk"}],
        ),
        (' "=?UTF-8?Q?Caf=C3=A9?=" <cafe@example.com>', [{"name": "Café", "email": "cafe@example.com"}]),
        (' "Smith\r\n   John" <js@example.com>', [{"name": "Smith   John", "email": "js@example.com"}]),
        # Best effort on what isn't an address-list (§4.1.2.3).
        (" bob", [{"name": None, "email": "bob"}]),
        (" John Smith john@example.com", [{"name": "John Smith", "email": "john@example.com"}]),
        (
            " a@example.com,, ,b@example.com,",
            [{"name": None, "email": "a@example.com"}, {"name": None, "email": "b@example.com"}],
        ),
        (" Joe <joe@example.com", [{"name": "Joe", "email": "joe@example.com"}]),  # unterminated
        (' "unterminated <x@example.com>', [{"name": '"unterminated', "email": "x@example.com"}]),
        (" (open <x@example.com>", [{"name": "(open", "email": "x@example.com"}]),
        (" <>", [{"name": None, "email": ""}]),
        ("", []),
        (" undisclosed-recipients:;", []),
    ],
)
def test_addresses(raw, addresses):
    assert as_addresses(raw) == addresses


def test_grouped_addresses_keep_groups_and_collect_the_rest():
    raw = " a@x.com, Team: b@x.com, C <c@x.com>;, d@x.com, e@x.com, Empty:;"
    assert as_grouped_addresses(raw) == [
        {"name": None, "addresses": [{"name": None, "email": "a@x.com"}]},
        {"name": "Team", "addresses": [{"name": None, "email": "b@x.com"}, {"name": "C", "email": "c@x.com"}]},
        {"name": None, "addresses": [{"name": None, "email": "d@x.com"}, {"name": None, "email": "e@x.com"}]},
        {"name": "Empty", "addresses": []},
    ]
    # A group missing its ";" still ends at the end of the field.
    assert as_grouped_addresses(" Team: b@x.com") == [
        {"name": "Team", "addresses": [{"name": None, "email": "b@x.com"}]}
    ]
    assert as_grouped_addresses(' "=?UTF-8?Q?=C3=89quipe?=": a@x.com;')[0]["name"] == "Équipe"


# -- MessageIds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        (" <1234@local.machine.example>", ["1234@local.machine.example"]),
        (" <a@example.com> <b@example.com>\r\n <c@example.com>", ["a@example.com", "b@example.com", "c@example.com"]),
        (" (comment) <a@example.com> (another)", ["a@example.com"]),
        # RFC 5322 §4.5.4 obsolete In-Reply-To/References with phrases between ids.
        (' Your message of "Mon" <a@example.com>', ["a@example.com"]),
        (" a@example.com", ["a@example.com"]),  # missing brackets on a lone id
        (" <>", None),
        (" no ids at all", None),
        (" <a b@c>", ["ab@c"]),  # folding white space inside the brackets is dropped
        ("", None),
    ],
)
def test_message_ids(raw, ids):
    assert as_message_ids(raw) == ids


# -- Date ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "date"),
    [
        (" Fri, 21 Nov 1997 09:55:06 -0600", "1997-11-21T09:55:06-06:00"),  # RFC 5322 A.1.1
        (" Tue, 1 Jul 2003 10:52:37 +0200", "2003-07-01T10:52:37+02:00"),
        (
            " Thu,\r\n  13\r\n    Feb\r\n      1969\r\n  23:32\r\n  -0330 (Newfoundland Time)",
            "1969-02-13T23:32:00-03:30",
        ),
        (" 21 Nov 97 09:55:06 GMT", "1997-11-21T09:55:06Z"),  # RFC 5322 A.6.2 obsolete forms
        (" 1 Jan 49 00:00:00 +0000", "2049-01-01T00:00:00Z"),  # §4.3: 00-49 is 20xx
        (" 1 Jan 50 00:00:00 +0000", "1950-01-01T00:00:00Z"),
        (" 1 Jan 103 00:00:00 +0000", "2003-01-01T00:00:00Z"),  # three digits: +1900
        (" Mon, 1 Jan 2001 12:00:00 EST", "2001-01-01T12:00:00-05:00"),
        (" Mon, 1 Jan 2001 12:00:00 PDT", "2001-01-01T12:00:00-07:00"),
        (" Mon, 1 Jan 2001 12:00:00 -0000", "2001-01-01T12:00:00Z"),
        (" Mon, 1 Jan 2001 12:00:00 A", "2001-01-01T12:00:00Z"),  # military zones: -0000
        (" Mon, 1 Jan 2001 12:00:00", "2001-01-01T12:00:00Z"),  # no zone
        (" Mon, 31 Dec 2001 23:59:60 +0000", "2001-12-31T23:59:59Z"),  # leap second
        (" Mon Jan  2 15:04:05 2006", "2006-01-02T15:04:05Z"),  # asctime, seen in the wild
        (" 31 Feb 2020 10:00:00 +0000", None),
        (" 1 Jan 2020 25:00:00 +0000", None),
        (" 1 Foo 2020 10:00:00 +0000", None),
        (" 1 Jan 2020 10:00:00 +9999", None),
        (" yesterday", None),
        ("", None),
    ],
)
def test_date(raw, date):
    assert as_date(raw) == date


def test_parse_date_keeps_the_offset():
    when = parse_date(" Tue, 10 Jul 2018 11:03:11 +1000")
    assert when is not None and when.utcoffset().total_seconds() == 36000
    assert when.isoformat() == "2018-07-10T11:03:11+10:00"


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "urls"),
    [
        # RFC 2369 §3 examples.
        (" <mailto:list@host.com?subject=help> (List Instructions)", ["mailto:list@host.com?subject=help"]),
        (
            " <ftp://ftp.host.com/list.txt> (FTP),\r\n    <mailto:list@host.com?subject=help>",
            ["ftp://ftp.host.com/list.txt", "mailto:list@host.com?subject=help"],
        ),
        (
            " <http://www.host.com/list/>, <mailto:list-info@host.com>",
            ["http://www.host.com/list/", "mailto:list-info@host.com"],
        ),
        (" <http://www.host.com/list/ archive/>", ["http://www.host.com/list/archive/"]),  # folded URL
        (" NO (posting not allowed on this list)", None),
        ("", None),
    ],
)
def test_urls(raw, urls):
    assert as_urls(raw) == urls


# -- Which forms for which fields (§4.1.2) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "form", "allowed"),
    [
        ("From", "Raw", True),
        ("Received", "Raw", True),
        ("Subject", "Text", True),
        ("Comments", "Text", True),
        ("Keywords", "Text", True),
        ("List-Id", "Text", True),
        ("X-Custom", "Text", True),  # not defined in RFC 5322 / RFC 2369: every form
        ("X-Custom", "Date", True),
        ("X-Custom", "URLs", True),
        ("Content-Type", "Addresses", True),
        ("From", "Text", False),
        ("From", "Date", False),
        ("from", "Addresses", True),
        ("Resent-Reply-To", "GroupedAddresses", True),
        ("Subject", "Addresses", False),
        ("To", "MessageIds", False),
        ("References", "MessageIds", True),
        ("Resent-Message-ID", "MessageIds", True),
        ("Message-ID", "Text", False),
        ("Date", "Date", True),
        ("Resent-Date", "Date", True),
        ("Date", "URLs", False),
        ("List-Post", "URLs", True),
        ("list-unsubscribe", "URLs", True),
        ("List-Post", "Text", False),
        ("Received", "Text", False),
        ("Return-Path", "Addresses", False),
        ("X-Custom", "NoSuchForm", False),
        ("X-Custom", "urls", False),  # form names are case-sensitive
    ],
)
def test_form_allowed(name, form, allowed):
    assert form_allowed(name, form) is allowed


def test_forms():
    assert HEADER_FORMS == ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")
    assert canonical_form("URLs") == "URLs" and canonical_form("Nope") is None
    assert parse_form(" <a@b>", "MessageIds") == ["a@b"]
    with pytest.raises(ValueError):
        parse_form("x", "Nope")


# -- header:{name}:as{form}:all ------------------------------------------------------------------------

HEADERS = [
    Header("From", " Joe <joe@example.com>"),
    Header("X-Custom", " first"),
    Header("x-custom", "  second value"),
    Header("Date", " Tue, 10 Jul 2018 11:03:11 +1000"),
]


@pytest.mark.parametrize(
    "headers",
    [
        HEADERS,
        [tuple(header) for header in HEADERS],
        [list(header) for header in HEADERS],
        [header.to_dict() for header in HEADERS],
    ],
)
def test_header_value(headers):
    assert header_value(headers, "X-CUSTOM", "Raw") == "  second value"  # last instance
    assert header_value(headers, "x-custom", "Raw", True) == [" first", "  second value"]
    assert header_value(headers, "X-Custom", "Text") == "second value"
    assert header_value(headers, "from", "Addresses") == [{"name": "Joe", "email": "joe@example.com"}]
    assert header_value(headers, "From", "Addresses", True) == [[{"name": "Joe", "email": "joe@example.com"}]]
    assert header_value(headers, "Date", "Date") == "2018-07-10T11:03:11+10:00"
    assert header_value(headers, "X-Missing", "Raw") is None
    assert header_value(headers, "X-Missing", "Addresses", True) == []
    assert header_value(headers, "From") == " Joe <joe@example.com>"


def test_hostile_values_are_bounded():
    huge = " " + "a@b.c, " * 200_000
    assert len(as_addresses(huge)) < 20_000  # parsed up to MAX_PARSED_LENGTH, then cut
    assert as_date(" 1" * 100_000) is None
    assert as_text(" =?utf-8?q?a?=" * 100_000).startswith("aaa")


@pytest.mark.parametrize(
    "unit", ["(", ")", '"', "\\", "<", ">", ",", ":", ";", "@", "=?", "((", "(a", '"a', "<a", "a@b:", "=?utf-8?q?a?="]
)
def test_repeated_hostile_units_are_fast(unit):
    value = unit * (100_000 // len(unit))
    for form in HEADER_FORMS:
        started = time.process_time()
        parse_form(value, form)
        # A guard against quadratic or worse parsing, not a speed target; CPU time of
        # this process, so other work on the machine doesn't count.
        assert time.process_time() - started < 2.0, form


def test_random_values_never_raise():
    pieces = ["(", ")", '"', "\\", "<", ">", ",", ":", ";", "@", "=?", "?=", "=?utf-8?q?", "=?utf-8?b?", "a", " ",
              "\r\n ", "\t", "=C3", "=A9", "é", "\ufffd", ".", "[", "]"]  # fmt: skip
    chooser = random.Random(8621)
    for _ in range(2000):
        value = "".join(chooser.choice(pieces) for _ in range(chooser.randint(0, 40)))
        for form in HEADER_FORMS:
            parse_form(value, form)
