"""relational (RFC 5231) and subaddress (RFC 5233) with the RFCs' examples."""

from __future__ import annotations

from groupware.mail.sieve import FileInto, Keep, Redirect, Reject

from .helpers import actions, message

RELATIONAL_MESSAGE = message(
    "received: ...from A\r\n"
    "received: ...from B\r\n"
    "subject: example\r\n"
    "to: foo@example.com.invalid, baz@example.com.invalid\r\n"
    "cc: qux@example.com.invalid\r\n"
)
REQUIRE = 'require ["relational", "comparator-i;ascii-numeric", "reject"];'


def holds(test: str, raw: bytes = RELATIONAL_MESSAGE) -> bool:
    return actions(f'{REQUIRE} if {test} {{ reject "yes"; }}', raw) == [Reject("yes")]


def test_rfc5231_count_examples():
    assert holds('address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]')
    assert not holds(
        'anyof ( address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"],'
        ' address :count "ge" :comparator "i;ascii-numeric" ["cc"] ["3"] )'
    )
    assert not holds('header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"]')
    assert holds('header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"]')
    assert not holds('header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]')


def test_value_examples():
    raw = message("From: Zorro <zorro@example.com>\r\nX-Priority: 2\r\n")
    assert holds('address :value "gt" :all :comparator "i;ascii-casemap" ["from"] ["M"]', raw)
    assert not holds('address :value "lt" :all :comparator "i;ascii-casemap" ["from"] ["M"]', raw)
    assert holds('header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3"', raw)
    assert not holds('header :value "lt" :comparator "i;ascii-numeric" "x-priority" "2"', raw)
    assert holds('header :value "le" :comparator "i;ascii-numeric" "x-priority" "2"', raw)
    assert holds('header :value "ne" :comparator "i;ascii-numeric" "x-priority" "3"', raw)


def test_numeric_infinity_and_count_zero():
    # RFC 4790 §9.1.1: a value without leading digits is positive infinity.
    raw = message("X-Spam-Score: none\r\n")
    assert holds('header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "99999"', raw)
    assert holds('header :count "eq" :comparator "i;ascii-numeric" "x-missing" "0"', raw)


SUBADDRESS_EXAMPLE = """
require ["envelope", "subaddress", "fileinto"];

# In this example the same user account receives mail for both
# "ken@example.com" and "postmaster@example.com"

# File all messages to postmaster into a single mailbox,
# ignoring the :detail part.
if envelope :user "to" "postmaster" {
    fileinto "inbox.postmaster";
    stop;
}

# File mailing list messages (subscribed as "ken+mta-filters").
if envelope :detail "to" "mta-filters" {
    fileinto "inbox.ietf-mta-filters";
}

# Redirect all mail sent to "ken+foo".
if envelope :detail "to" "foo" {
    redirect "ken@example.net";
}
"""


def test_rfc5233_example():
    assert actions(SUBADDRESS_EXAMPLE, rcpt_to="postmaster+x@example.com") == [FileInto("inbox.postmaster")]
    assert actions(SUBADDRESS_EXAMPLE, rcpt_to="postmaster@example.com") == [FileInto("inbox.postmaster")]
    assert actions(SUBADDRESS_EXAMPLE, rcpt_to="ken+mta-filters@example.com") == [FileInto("inbox.ietf-mta-filters")]
    assert actions(SUBADDRESS_EXAMPLE, rcpt_to="ken+foo@example.com") == [Redirect("ken@example.net")]
    assert actions(SUBADDRESS_EXAMPLE, rcpt_to="ken@example.com") == [Keep()]


def test_detail_empty_versus_absent():
    # RFC 5233 §4: "ken+@example.com" has an empty detail; "ken@example.com" has none at all.
    script = 'require ["envelope", "subaddress", "reject"]; if envelope :detail :matches "to" "*" { reject "d"; }'
    assert actions(script, rcpt_to="ken+@example.com") == [Reject("d")]
    assert actions(script, rcpt_to="ken@example.com") == [Keep()]
    script = 'require ["subaddress", "reject"]; if address :user "to" "roadrunner" { reject "u"; }'
    assert actions(script, message("To: RoadRunner+news@acme.example.com\r\n")) == [Reject("u")]
