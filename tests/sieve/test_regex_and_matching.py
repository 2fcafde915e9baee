"""regex (draft-ietf-sieve-regex), :matches internals, and protection against slow patterns."""

from __future__ import annotations

import time

import pytest

from groupware.mail.sieve import Environment, FileInto, Keep, Limits, Reject, SieveParseError, parse
from groupware.mail.sieve.match import Matcher, glob_match

from .helpers import actions, message, run

REGEX_EXAMPLE = r"""
require ["regex", "variables", "fileinto"];

if header :regex "List-ID" "<(.*)@" {
    fileinto "lists.${1}"; stop;
}

# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :regex "Subject" "^\\[(.*)\\] (.*)$" {
    # ${1} will hold "acme-users] [fwd"
    stop;
}
"""


def test_regex_example_match_variables():
    raw = message("List-ID: Sieve <sieve@ietf.org>\r\n")
    assert actions(REGEX_EXAMPLE, raw) == [FileInto("lists.sieve")]
    raw = message("Subject: [acme-users] [fwd] version 1.0 is out\r\n")
    assert actions(REGEX_EXAMPLE, raw) == [Keep()]  # the second rule stops
    # The same regex; greedy ".*" puts "acme-users] [fwd" in ${1}, as the example says.
    script = r"""require ["regex", "variables", "reject"];
if header :regex "Subject" "^\\[(.*)\\] (.*)$" { reject "${1}|${2}"; }"""
    assert actions(script, raw) == [Reject("acme-users] [fwd|version 1.0 is out")]


def test_regex_comparators_and_address():
    raw = message("From: Someone <someone@EXAMPLE.org>\r\n")
    script = r'require ["regex", "reject"]; if address :regex "from" "^.*@example\\.(com|org)$" { reject "y"; }'
    assert actions(script, raw) == [Reject("y")]
    script = script.replace(":regex", ':regex :comparator "i;octet"')
    assert actions(script, raw) == [Keep()]


def test_quoteregex_modifier():
    script = r"""require ["regex", "variables", "reject"];
set :quoteregex "lit" "a.b[c]";
if header :regex "subject" "^${lit}$" { reject "${lit}"; }"""
    assert actions(script, message("Subject: a.b[c]\r\n")) == [Reject(r"a\.b\[c\]")]
    assert actions(script, message("Subject: aXb[c]\r\n")) == [Keep()]


def test_invalid_regex_from_a_variable_is_a_runtime_error():
    script = r"""require ["regex", "variables"];
set "p" "(unclosed";
if header :regex "subject" "${p}" { discard; }"""
    outcome = run(script)
    assert outcome.actions == [Keep()] and "invalid regular expression" in outcome.errors[0]


def test_catastrophic_regex_times_out_and_keeps():
    raw = message("Subject: " + "x" * 3000 + "\r\n")
    script = r'require "regex"; if header :regex "subject" "(x+x+)+y" { discard; }'
    environment = Environment(limits=Limits(regex_timeout=0.05))
    started = time.monotonic()
    outcome = run(script, raw, environment=environment)
    assert time.monotonic() - started < 2
    assert outcome.actions == [Keep()] and "took too long" in outcome.errors[0]


def test_regex_pattern_length_limit():
    with pytest.raises(SieveParseError, match="pattern too long"):
        parse('require "regex"; if header :regex "subject" "' + "a" * 5000 + '" { }')


def test_glob_is_linear_for_many_stars():
    text = "a" * 20000
    pattern = "*a" * 30 + "*b"
    started = time.monotonic()
    assert glob_match(pattern, text, casefold=False) is None
    assert time.monotonic() - started < 1.0
    assert glob_match("*a*a*", "xxaxxaxx", casefold=False) == ["xxaxxaxx", "xx", "xx", "xx"]


def test_glob_captures_question_marks_in_order():
    assert glob_match("?x*y?", "AxmiddleyZ", casefold=False) == ["AxmiddleyZ", "A", "middle", "Z"]
    assert glob_match("A*", "abc", casefold=True) == ["abc", "bc"]
    assert glob_match("A*", "abc", casefold=False) is None


def test_casemap_is_ascii_only():
    # i;ascii-casemap folds only A-Z (RFC 4790 §9.2).
    matcher = Matcher(match_type=":is", comparator="i;ascii-casemap")
    assert matcher.one("ABC", "abc") is True
    assert matcher.one("É", "é") is False


def test_posix_character_classes():
    # The draft specifies POSIX extended regular expressions; bracket classes work.
    script = r'require ["regex", "reject"]; if header :regex "subject" "^[[:digit:]]{4}-[[:alpha:]]+$" { reject "y"; }'
    assert actions(script, message("Subject: 2024-report\r\n")) == [Reject("y")]
    assert actions(script, message("Subject: 24-report\r\n")) == [Keep()]


@pytest.mark.parametrize(
    ("pattern", "text", "captures"),
    [
        ("*:*:*", "frop:frup:frop", ["frop", "frup", "frop"]),
        ("?*frop*", "frop...frop.....frop..", ["f", "rop...", ".....frop.."]),
        ("*top", "toptoptop", ["toptop"]),
        ("*\\?", "really?", ["really"]),
        ("??op", "frop", ["f", "r"]),
        ("*?op", "klopfropstroptop", ["klopfropstrop", "t"]),
        ("*?op*", "klopfropstroptop", ["k", "l", "fropstroptop"]),
        ("*??@foobar.example.com", "foo1234@foobar.example.com", ["foo12", "3", "4"]),
        ("*?@example.com", "d@example.com", ["", "d"]),
        ("*one?zero?five", "zero:one:zero|three;one;zero/five", ["zero:one:zero|three;", ";", "/"]),
        ("Log for ?* build of *", "Log for failed build of pkg", ["f", "ailed", "pkg"]),
    ],
)
def test_glob_captures_are_shortest_first(pattern, text, captures):
    assert glob_match(pattern, text, casefold=False) == [text, *captures]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [("*??@foobar.example.com", "foo1234@example.com"), ("*?@example.com", "d@example.jp"), ("of *", "Test of x")],
)
def test_glob_mismatches(pattern, text):
    assert glob_match(pattern, text, casefold=False) is None


def test_variable_reference_syntax_examples():
    # RFC 5229 §3 examples; a "$" produced by expansion never starts a new reference.
    script = r"""require ["variables", "reject"];
set "company" "ACME";
set "s" "$";
reject "${full}|${company}|${BAD${Company}|${President, ${Company} Inc.}|${s}{company}|${0000001}";"""
    assert actions(script) == [Reject("|ACME|${BADACME|${President, ACME Inc.}|${company}|")]


def test_ascii_fold_lowers_only_ascii_letters():
    # i;ascii-casemap (RFC 4790 §9.2): A-Z map to a-z; every other character stays,
    # including non-ASCII capitals and characters whose Unicode lowercase is ASCII.
    from groupware.mail.sieve.match import ascii_fold

    assert ascii_fold("Hello WORLD 123") == "hello world 123"
    assert ascii_fold("ÀÉÎ Straße ΣΑΣ") == "ÀÉÎ straße ΣΑΣ"
    assert ascii_fold("\u212a\u0130 X") == "\u212a\u0130 x"  # Kelvin sign, dotted I: unchanged
    assert ascii_fold("Привет ABC \udcff") == "Привет abc \udcff"  # lone surrogates survive
