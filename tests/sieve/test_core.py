"""RFC 5228 commands and tests, with the RFC's own examples."""

from __future__ import annotations

from groupware.mail.sieve import Discard, Environment, FileInto, Keep, Limits, Redirect

from .helpers import actions, message, run

EXTENDED_EXAMPLE = """
#
# Example Sieve Filter (RFC 5228 section 9)
#
require ["fileinto"];

if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        fileinto "personal";
        }
"""


def headers(**fields: str) -> bytes:
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in fields.items())
    return message(lines)


def test_extended_example_mailing_list():
    raw = headers(Sender="owner-ietf-mta-filters@imc.org", To="me@example.com", Subject="hi")
    assert actions(EXTENDED_EXAMPLE, raw) == [FileInto("filter")]


def test_extended_example_company_mail_is_kept():
    raw = headers(From="boss@example.com", To="me@example.com", Subject="hi")
    assert actions(EXTENDED_EXAMPLE, raw) == [Keep()]


def test_extended_example_spam_not_to_me():
    raw = headers(From="x@other.org", To="someone@else.org", Subject="hi")
    assert actions(EXTENDED_EXAMPLE, raw) == [FileInto("spam")]


def test_extended_example_spam_subject():
    raw = headers(From="x@other.org", To="x@other.org", Cc="me@example.com", Subject="Make lots of MONEY, fast!")
    assert actions(EXTENDED_EXAMPLE, raw) == [FileInto("spam")]
    raw = headers(From="x@other.org", To="x@other.org", Cc="me@example.com", Subject="University diplomas")
    assert actions(EXTENDED_EXAMPLE, raw) == [FileInto("spam")]


def test_extended_example_personal():
    raw = headers(From="friend@other.org", To="friend@other.org", Bcc="me@example.com", Subject="Lunch?")
    assert actions(EXTENDED_EXAMPLE, raw) == [FileInto("personal")]


def test_empty_script_is_implicit_keep():
    outcome = run("")
    assert outcome.actions == [Keep()] and outcome.implicit_keep and outcome.errors == []


def test_discard_cancels_implicit_keep():
    outcome = run("discard;")
    assert outcome.actions == [Discard()] and not outcome.implicit_keep


def test_stop_ends_the_script():
    # §3.3: stop ends all processing; the implicit keep still applies.
    assert actions("stop; discard;") == [Keep()]
    assert actions("discard; stop; keep;") == [Discard()]


def test_keep_and_fileinto_inbox_file_once():
    assert actions('require "fileinto"; keep; fileinto "INBOX"; keep;') == [Keep()]
    assert actions('require "fileinto"; fileinto "a"; fileinto "a";') == [FileInto("a")]


def test_redirect_example_and_duplicate_redirect():
    # §4.2: redirect "bart@example.com"; the same address is only used once.
    assert actions('redirect "bart@example.com"; redirect "BART@example.com";') == [Redirect("bart@example.com")]


def test_fileinto_and_redirect_cancel_implicit_keep_discard_does_not_undo_them():
    assert actions('require "fileinto"; fileinto "x"; discard;') == [FileInto("x")]


def test_address_test_example():
    # §5.1: if address :is :all "from" "tim@example.com" { discard; }
    raw = headers(From='"Tim" <tim@example.com>', To="a@b.c")
    assert actions('if address :is :all "from" "tim@example.com" { discard; }', raw) == [Discard()]
    raw = headers(From="tim@example.org", To="a@b.c")
    assert actions('if address :is :all "from" "tim@example.com" { discard; }', raw) == [Keep()]


def test_address_parts():
    raw = headers(From="Some One <Some.One@Example.COM>", To="a@b.c, c@d.e")
    assert actions('if address :localpart :is "from" "some.one" { discard; }', raw) == [Discard()]
    assert actions('if address :domain :is "from" "example.com" { discard; }', raw) == [Discard()]
    assert actions('if address :domain :is "to" "d.e" { discard; }', raw) == [Discard()]
    # Default comparator is i;ascii-casemap; i;octet is exact.
    assert actions('if address :domain :comparator "i;octet" :is "from" "example.com" { discard; }', raw) == [Keep()]


def test_envelope_test_example():
    script = 'require "envelope"; if envelope :all :is "from" "tim@example.com" { discard; }'
    assert actions(script, mail_from="tim@example.com") == [Discard()]
    assert actions(script, mail_from="tom@example.com") == [Keep()]
    script = 'require "envelope"; if envelope :domain :is "to" "acme.example.com" { discard; }'
    assert actions(script) == [Discard()]


def test_envelope_null_sender_matches_empty_string():
    script = 'require "envelope"; if envelope :localpart :is "from" "" { discard; }'
    assert actions(script, mail_from="") == [Discard()]


def test_exists_example():
    assert actions('if exists ["From", "Date"] { discard; }') == [Discard()]
    assert actions('if exists ["From", "X-Nope"] { discard; }') == [Keep()]
    assert actions('if not exists ["Date"] { discard; }', headers(From="a@b.c")) == [Discard()]


def test_header_test():
    assert actions('if header :contains ["From", "To"] "coyote" { discard; }') == [Discard()]
    assert actions('if header :is "subject" "i have a PRESENT for you" { discard; }') == [Discard()]
    # A missing header never matches, not even :contains "".
    assert actions('if header :contains "X-Missing" "" { discard; }') == [Keep()]
    assert actions('if header :contains "Subject" "" { discard; }') == [Discard()]


def test_header_values_are_rfc2047_decoded():
    raw = headers(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin")
    assert actions('if header :is "subject" "Grüße aus Berlin" { discard; }', raw) == [Discard()]


def test_size_example():
    # §5.9: size :over 500K
    big = message(body="x" * 600_000)
    script = "if size :over 500K { discard; }"
    assert actions(script, big) == [Discard()]
    assert actions(script) == [Keep()]
    assert actions("if size :under 1K { discard; }") == [Discard()]
    # anyof (size :over 500K, not exists "Date") from §5.10 style combinations.
    assert actions('if anyof (size :over 500K, not exists "Date") { discard; }', headers(From="a@b.c")) == [Discard()]


def test_allof_anyof_true_false_short_circuit():
    assert actions("if allof (true, true) { discard; }") == [Discard()]
    assert actions("if allof (true, false) { discard; }") == [Keep()]
    assert actions("if anyof (false, false) { discard; }") == [Keep()]
    assert actions("if anyof (false, true) { discard; }") == [Discard()]
    assert actions("if not false { discard; }") == [Discard()]


def test_matches_wildcards_and_escapes():
    # §2.7.1: "*" any sequence, "?" one character, "\\" escapes them.
    raw = headers(Subject="a*b")
    assert actions(r'if header :matches "subject" "a\\*b" { discard; }', raw) == [Discard()]
    assert actions(r'if header :matches "subject" "a\\*c" { discard; }', raw) == [Keep()]
    assert actions('if header :matches "subject" "?*?" { discard; }', raw) == [Discard()]
    assert actions('if header :matches "subject" "????" { discard; }', raw) == [Keep()]


def test_comparator_octet_is_case_sensitive():
    # §2.7.3 example uses i;octet with :contains.
    script = 'if header :contains :comparator "i;octet" "Subject" "MAKE MONEY FAST" { discard; }'
    assert actions(script, headers(Subject="MAKE MONEY FAST now")) == [Discard()]
    assert actions(script, headers(Subject="make money fast now")) == [Keep()]


def test_ascii_numeric_comparator():
    script = (
        'require "comparator-i;ascii-numeric";if header :is :comparator "i;ascii-numeric" "X-Score" "5" { discard; }'
    )
    assert actions(script, headers(X_Score="005")) == [Discard()]
    assert actions(script, headers(X_Score="5 points")) == [Discard()]
    assert actions(script, headers(X_Score="50")) == [Keep()]


def test_runtime_error_falls_back_to_keep():
    script = 'require "variables"; set "a" "not an address"; redirect "${a}";'
    outcome = run(script)
    assert outcome.actions == [Keep()] and outcome.implicit_keep
    assert outcome.errors and "invalid redirect address" in outcome.errors[0] and "line 1" in outcome.errors[0]


def test_max_actions_limit():
    script = 'require ["fileinto", "variables"];' + "".join(f'fileinto "box{index}";' for index in range(10))
    environment = Environment(limits=Limits(max_actions=5))
    outcome = run(script, environment=environment)
    assert outcome.actions == [Keep()] and "more than 5 actions" in outcome.errors[0]


def test_max_redirects_limit():
    script = "".join(f'redirect "user{index}@example.com";' for index in range(5))
    outcome = run(script)
    assert outcome.actions == [Keep()] and "more than 4 redirects" in outcome.errors[0]
    assert len(actions("".join(f'redirect "user{index}@example.com";' for index in range(4)))) == 4


def test_runtime_limit():
    script = 'if header :matches "subject" "*" { discard; }'
    environment = Environment(limits=Limits(max_runtime=-1.0))
    outcome = run(script, environment=environment)
    assert outcome.actions == [Keep()] and "ran too long" in outcome.errors[0]


def test_raw_utf8_headers_rfc6532():
    raw = "From: Jörg <jörg@例え.jp>\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()
    assert actions('if header :is "subject" "Grüße" { discard; }', raw) == [Discard()]
    assert actions('if address :domain :is "from" "例え.jp" { discard; }', raw) == [Discard()]
    legacy = "Subject: Grüße\r\n\r\nbody\r\n".encode("latin-1")
    assert actions('if header :is "subject" "Grüße" { discard; }', legacy) == [Discard()]
