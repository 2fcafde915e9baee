"""RFC 5229 variables: set, modifiers, expansion, match variables, string test."""

from __future__ import annotations

from groupware.mail.sieve import FileInto, Keep, Reject, Vacation

from .helpers import actions, message, run

MATCH_EXAMPLE = """
require ["fileinto", "variables"];

if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}

# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :matches "Subject" "[*] *" {
    # ${1} will hold "acme-users",
    # ${2} will hold "[fwd] version 1.0 is out"
    fileinto "INBOX.lists.${1}"; stop;
}

# Imagine the header
# To: coyote@ACME.Example.COM
if address :matches ["To", "Cc"] ["coyote@**.com",
        "wile@**.com"] {
    # ${0} is the matching address
    # ${1} is always the empty string
    # ${2} is part of the domain name ("ACME.Example")
    fileinto "INBOX.business.${2}"; stop;
} else {
    # Control wouldn't reach this block if any match was
    # successful, so no match variables are set at this
    # point.
}

if anyof (true, address :domain :matches "To" "*.com") {
    # The second test is never evaluated, so there are
    # still no match variables set.
    fileinto "INBOX.unknown${1}${2}";
    stop;
}
"""


def test_match_variables_list_id():
    # "*<*@*": ${1} = "Sieve discussion ", ${2} = "sieve", ${3} = "ietf.org>"
    raw = message("List-ID: Sieve discussion <sieve@ietf.org>\r\nSubject: x\r\n")
    assert actions(MATCH_EXAMPLE, raw) == [FileInto("INBOX.lists.sieve")]


def test_match_variables_shortest_wildcard():
    raw = message("Subject: [acme-users] [fwd] version 1.0 is out\r\n")
    assert actions(MATCH_EXAMPLE, raw) == [FileInto("INBOX.lists.acme-users")]
    script = 'require ["variables", "reject"]; if header :matches "Subject" "[*] *" { reject "${2}"; }'
    assert actions(script, raw) == [Reject("[fwd] version 1.0 is out")]


def test_match_variables_address_double_star():
    raw = message("To: coyote@ACME.Example.COM\r\nSubject: hi\r\n")
    assert actions(MATCH_EXAMPLE, raw) == [FileInto("INBOX.business.ACME.Example")]
    script = 'require ["variables", "reject"]; if address :matches "To" "coyote@**.com" { reject "${0}|${1}|${2}"; }'
    assert actions(script, raw) == [Reject("coyote@ACME.Example.COM||ACME.Example")]


def test_match_variables_unset_when_no_match():
    raw = message("To: someone@example.org\r\nSubject: plain\r\n")
    assert actions(MATCH_EXAMPLE, raw) == [FileInto("INBOX.unknown")]


def test_failed_match_keeps_previous_match_variables():
    script = """require ["variables", "reject"];
    if header :matches "Subject" "* *" { }
    if header :matches "Subject" "nomatch*" { }
    reject "${1}/${2}";"""
    raw = message("Subject: hello world\r\n")
    assert actions(script, raw) == [Reject("hello/world")]


def test_set_and_case_insensitive_names_multiline():
    script = """require ["variables", "vacation"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
vacation :subject "Re: ${first_name}" "${vacation}";
"""
    [vacation, keep] = actions(script)
    assert isinstance(vacation, Vacation) and keep == Keep()
    assert vacation.reason == "Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n"
    assert vacation.subject == "Re: Wile"


def test_expansion_edge_cases():
    # RFC 5229 §3 examples: invalid references stay as written, unknown ones expand to "".
    script = r"""require ["variables", "reject"];
set "company" "ACME";
reject "&%${}! ${doh!} ${company} [${president}] ${ns.foo} ${COMPANY}";"""
    assert actions(script)[0].reason == "&%${}! ${doh!} ACME []  ACME"


def test_expansion_is_single_pass():
    script = r"""require ["variables", "reject"];
set "a" "${b}"; set "b" "x"; set "c" "${a}"; reject "${c}";"""
    # "${b}" was expanded when "a" was set (to ""), and values are not re-expanded.
    assert actions(script) == [Reject("")]
    # A backslash does not protect "${": the quoted-string escape is gone before expansion.
    script = r"""require ["variables", "reject"];
set "b" "x"; set "a" "\${b}"; reject "${a}";"""
    assert actions(script) == [Reject("x")]


def test_modifiers_from_rfc():
    cases = {
        'set "b" "${a}";': "juMBlEd lETteRS",
        'set :length "b" "${a}";': "15",
        'set :lower "b" "${a}";': "jumbled letters",
        'set :upperfirst "b" "${a}";': "JuMBlEd lETteRS",
        'set :upperfirst :lower "b" "${a}";': "Jumbled letters",
        'set :lowerfirst :upper "b" "${a}";': "jUMBLED LETTERS",
        'set :quotewildcard "b" "Rock*";': "Rock\\*",
        'set :quotewildcard "b" "a?b\\\\c";': "a\\?b\\\\c",
        'set :length :upper "b" "${a}";': "15",
    }
    for command, expected in cases.items():
        script = f'require ["variables", "reject"]; set "a" "juMBlEd lETteRS"; {command} reject "${{b}}";'
        assert actions(script) == [Reject(expected)], command


def test_quotewildcard_makes_matches_literal():
    script = r"""require ["variables", "reject"];
set :quotewildcard "pattern" "a*b";
if header :matches "Subject" "${pattern}" { reject "literal"; }"""
    assert actions(script, message("Subject: a*b\r\n")) == [Reject("literal")]
    assert actions(script, message("Subject: axxb\r\n")) == [Keep()]


def test_string_test():
    # RFC 5229 §5 example: test a variable's value.
    script = r"""require ["variables", "reject"];
set "state" "one pending two";
if string :matches " ${state} " "* pending *" { reject "pending"; }"""
    assert actions(script) == [Reject("pending")]
    script = r"""require ["variables", "relational", "comparator-i;ascii-numeric", "reject"];
if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { reject "two"; }"""
    assert actions(script) == [Reject("two")]


def test_variable_size_limit():
    from groupware.mail.sieve import Environment, Limits

    script = r"""require ["variables", "reject"];
set "a" "0123456789"; set "a" "${a}${a}${a}"; reject "${a}";"""
    outcome = run(script, environment=Environment(limits=Limits(max_variable_size=16)))
    assert outcome.actions == [Reject("0123456789012345")]


def test_variables_in_fileinto_and_envelope():
    script = r"""require ["variables", "envelope", "fileinto", "subaddress"];
if envelope :matches :detail "to" "*" { set :lower "folder" "${1}"; }
fileinto "lists/${folder}";"""
    assert actions(script, rcpt_to="ken+MTA-Filters@example.com") == [FileInto("lists/mta-filters")]
