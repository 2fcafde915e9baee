"""imap4flags (RFC 5232), copy (RFC 3894), mailbox (RFC 5490), special-use (RFC 8579), reject (RFC 5429)."""

from __future__ import annotations

from groupware.mail.sieve import (
    Discard,
    Environment,
    FileInto,
    Keep,
    Redirect,
    Reject,
    imap_flag_to_keyword,
)

from .helpers import actions, message, parse_error, run

BIG = message("From: boss@company.example.com\r\nTo: me@company.example.com\r\nSubject: big\r\n", "x" * 1_100_000)


def test_imap4flags_example_big_messages():
    # RFC 5232 §7 example.
    script = r"""require ["imap4flags", "fileinto", "variables"];
if size :over 1M {
    addflag "MyFlags" "Big";
    if header :is "From" "boss@company.example.com" {
        # The message will be marked as "\Flagged Big" when filed into mailbox "Big messages"
        addflag "MyFlags" "\\Flagged";
    }
    fileinto :flags "${MyFlags}" "Big messages";
}"""
    assert actions(script, BIG) == [FileInto("Big messages", flags=("Big", "\\Flagged"))]
    assert actions(script) == [Keep()]


def test_imap4flags_boss_example():
    script = r"""require ["imap4flags", "fileinto", "variables"];
if header :contains "from" "boss@frobnitzm.example.edu" {
    setflag "flagvar" "\\Flagged";
    fileinto :flags "${flagvar}" "INBOX.From Boss";
}"""
    raw = message("From: boss@frobnitzm.example.edu\r\nTo: a@b.c\r\n")
    assert actions(script, raw) == [FileInto("INBOX.From Boss", flags=("\\Flagged",))]


def test_flag_list_operations():
    # RFC 5232 §3.1-3.3: lists split on spaces, duplicates removed case-insensitively.
    script = r"""require ["imap4flags", "variables", "reject"];
addflag "flagvar" ["\\Deleted", "\\Answered"];
addflag "flagvar" "\\deleted \\Answered Custom";
set "one" "${flagvar}";
removeflag "flagvar" "\\Deleted";
reject "${one}|${flagvar}";"""
    assert actions(script) == [Reject("\\Deleted \\Answered Custom|\\Answered Custom")]


def test_internal_flags_apply_to_keep_and_implicit_keep():
    script = r"""require ["imap4flags"];
setflag "\\Seen";
addflag ["\\Flagged", "$Important"];
removeflag "\\flagged";"""
    outcome = run(script)
    assert outcome.actions == [Keep(flags=("\\Seen", "$Important"))] and outcome.implicit_keep
    assert actions(r'require "imap4flags"; setflag "\\Seen"; keep :flags "A B";') == [Keep(flags=("A", "B"))]
    assert actions(r'require "imap4flags"; keep :flags ""; ') == [Keep()]


def test_hasflag_examples():
    base = r'require ["imap4flags", "relational", "comparator-i;ascii-numeric", "reject"]; setflag "MyVar" "A B";'
    cases = [
        ('hasflag :is "MyVar" "a"', True),
        ('hasflag :is "MyVar" ["a", "b"]', True),
        ('hasflag :is "MyVar" "A B"', False),
        ('hasflag :is "MyVar" "c"', False),
        ('hasflag :contains "MyVar" "A"', True),
        ('hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "2"', True),
        ('hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "3"', False),
        ('hasflag "a"', False),  # the internal variable is still empty
    ]
    for test, expected in cases:
        result = actions(base + f' if {test} {{ reject "yes"; }}')
        assert (result == [Reject("yes")]) is expected, test
    assert actions(r'require ["imap4flags", "reject"]; addflag "\\Seen"; if hasflag "\\SEEN" { reject "y"; }') == [
        Reject("y")
    ]


def test_imap_flag_to_keyword():
    assert imap_flag_to_keyword("\\Seen") == "$seen"
    assert imap_flag_to_keyword("\\FLAGGED") == "$flagged"
    assert imap_flag_to_keyword("$Junk") == "$junk"
    assert imap_flag_to_keyword("\\Recent") is None
    assert imap_flag_to_keyword("bad(flag") is None


def test_copy_keeps_implicit_keep():
    # RFC 3894 §3 examples.
    script = 'require ["copy", "fileinto"]; fileinto :copy "incoming";'
    outcome = run(script)
    assert outcome.actions == [FileInto("incoming", copy=True), Keep()] and outcome.implicit_keep
    script = 'require "copy"; redirect :copy "sysadmin@example.com";'
    assert actions(script) == [Redirect("sysadmin@example.com", copy=True), Keep()]
    assert actions('require "copy"; redirect :copy "a@example.com"; discard;') == [Redirect("a@example.com", True)]
    assert "requires extension 'copy'" in parse_error('require "fileinto"; fileinto :copy "x";').message


def test_mailboxexists_example():
    # RFC 5490 §3.1 example.
    script = """require "fileinto";
require "mailbox";
require "reject";
if mailboxexists "Partners" {
   fileinto "Partners";
} else {
   reject "This message was not accepted by the Mailstore";
}"""
    found = Environment(mailbox_exists=lambda name: name == "Partners")
    assert actions(script, environment=found) == [FileInto("Partners")]
    assert actions(script) == [Reject("This message was not accepted by the Mailstore")]
    both = 'require "mailbox"; if mailboxexists ["Partners", "Other"] { discard; }'
    assert actions(both, environment=found) == [Keep()]


def test_fileinto_create():
    assert actions('require ["fileinto", "mailbox"]; fileinto :create "Partners";') == [
        FileInto("Partners", create=True)
    ]
    assert "requires extension 'mailbox'" in parse_error('require "fileinto"; fileinto :create "x";').message


def test_special_use_fileinto_and_test():
    # RFC 8579 §4 / §5 examples.
    script = r'require ["fileinto", "special-use"]; fileinto :specialuse "\\Junk" "Spam";'
    assert actions(script) == [FileInto("Spam", special_use="\\Junk")]
    calls = []

    def exists(mailbox, uses):
        calls.append((mailbox, uses))
        return mailbox is None and uses == ["\\Junk"]

    environment = Environment(special_use_exists=exists)
    script = r'require "special-use"; if specialuse_exists "\\Junk" { discard; }'
    assert actions(script, environment=environment) == [Discard()]
    script = r'require "special-use"; if specialuse_exists "Junk" ["\\Junk", "\\Trash"] { discard; }'
    assert actions(script, environment=environment) == [Keep()]
    assert calls[-1] == ("Junk", ["\\Junk", "\\Trash"])


def test_reject_example():
    # RFC 5429 §2.1 example (reject with a multi-line reason).
    script = """require ["reject"];

if size :over 100K {
    reject text:
Your message is too big.  If you want to send me a big
attachment, put it on a public web site and send me a URL.
.
;
}"""
    big = message(body="y" * 200_000)
    outcome = run(script, big)
    assert outcome.actions == [
        Reject(
            "Your message is too big.  If you want to send me a big\r\n"
            "attachment, put it on a public web site and send me a URL.\r\n"
        )
    ]
    assert not outcome.implicit_keep
    assert actions(script) == [Keep()]


def test_ereject():
    script = 'require ["ereject"]; if address :domain :is "from" "desert.example.org" { ereject "No coyotes"; }'
    assert actions(script) == [Reject("No coyotes", extended=True)]
    assert "requires extension 'ereject'" in parse_error('require "reject"; ereject "x";').message


def test_reject_conflicts_are_runtime_errors():
    for script in (
        'require ["reject", "fileinto"]; fileinto "a"; reject "no";',
        'require ["reject"]; keep; reject "no";',
        'require ["reject", "ereject"]; reject "no"; ereject "no";',
        'require ["reject"]; reject "no"; keep;',
    ):
        outcome = run(script)
        assert outcome.actions == [Keep()] and "conflicts" in outcome.errors[0], script
    outcome = run('require "reject"; redirect "a@example.com"; reject "no";')
    assert outcome.actions == [Keep()] and "reject conflicts with redirect" in outcome.errors[0]
    # Discard may go with reject.
    assert actions('require "reject"; discard; reject "no";') == [Reject("no")]
