"""RFC 5228 grammar (§8), lexical rules (§2) and validation errors."""

from __future__ import annotations

import pytest

from groupware.mail.sieve import SUPPORTED_EXTENSIONS, Limits, SieveParseError, parse
from groupware.mail.sieve.lexer import tokenize

from .helpers import parse_error


def test_tokens_cover_numbers_with_quantifiers_tags_and_specials():
    kinds = [(token.kind, token.value) for token in tokenize('size :over 1K; x 2m 3G [ "a" ] ( ) { } ,')]
    assert kinds[:4] == [("identifier", "size"), ("tag", "over"), ("number", 1024), (";", ";")]
    assert ("number", 2 * 1024 * 1024) in kinds and ("number", 3 * 1024**3) in kinds
    assert kinds[-1] == ("eof", "")


def test_quoted_string_escapes():
    # RFC 5228 §2.4.2: \" and \\ are escapes; other backslashes are dropped.
    [token, _eof] = tokenize(r'"a\"b\\c\d"')
    assert token.value == 'a"b\\cd'


def test_multiline_string_with_dot_stuffing_and_comment():
    script = 'require "reject";\nreject text: # comment\nline one\n..dot line\n.\n;\n'
    command = parse(script).commands[1]
    assert command.positional == ["line one\r\n.dot line\r\n"]


def test_comments_are_ignored():
    script = "# hash comment\n/* bracket\n comment */ keep; # trailing\n"
    assert [command.name for command in parse(script).commands] == ["keep"]


def test_identifiers_are_case_insensitive():
    script = 'REQUIRE "fileinto"; IF Header :Contains "subject" "x" { FileInto "a"; }'
    assert [command.name for command in parse(script).commands] == ["require", "if"]


def test_error_reports_line_and_column():
    err = parse_error('keep;\nif true {\n  fileinto "x";\n}\n')
    assert (err.line, err.column) == (3, 3)
    assert "fileinto" in err.message and "requires extension" in err.message
    assert str(err).startswith("line 3, column 3: ")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("keep", "expected ';'"),
        ("if true { keep;", "missing '}'"),
        ("}", "unexpected '}'"),
        ('"string";', "expected a command name"),
        ("frobnicate;", "unknown command"),
        ("if frob { keep; }", "unknown test"),
        ("keep :copy;", "unknown tag"),
        ('require "nonexistent";', "unsupported extension"),
        ('keep; require "fileinto";', "require must come before"),
        ("else { keep; }", "else without a preceding if"),
        ("if true keep;", "needs a block"),
        ("stop { }", "does not take a block"),
        ('if header :is :contains "a" "b" { }', "cannot be combined"),
        ('if header :comparator "i;foo" "a" "b" { }', "unknown comparator"),
        ('if header :comparator "i;ascii-numeric" "a" "b" { }', "requires extension 'comparator-i;ascii-numeric'"),
        ('if header "a" { }', "wrong number of arguments"),
        ("if size 100 { }", "size needs :over or :under"),
        ('if size :over "a" { }', "must be a number"),
        ('redirect "not an address";', "invalid redirect address"),
        ("if not (true, false) { }", "exactly one test"),
        ("if allof () { }", "expected a test name"),
        ('"unterminated', "unterminated string"),
        ("/* open", "unterminated comment"),
        ('require "reject"; reject text:\nno end', "unterminated multi-line string"),
        ('require "variables"; set "1bad" "x";', "invalid variable name"),
        ('require "relational"; if header :count "xx" "a" "1" { }', "unknown relational operator"),
        ('require "regex"; if header :regex "a" "(" { }', "invalid regular expression"),
        ('require "date"; if date "date" "century" "1" { }', "unknown date part"),
        ('require "date"; if currentdate :zone "CET" "year" "2024" { }', "invalid time zone"),
        ('require "index"; if header :last "a" "b" { }', ":last needs :index"),
        ('if header :contains ["a", "b"] { }', "wrong number of arguments"),
        ('require "fileinto"; fileinto ["a", "b"];', "single string"),
    ],
)
def test_invalid_scripts(script, message):
    assert message in parse_error(script).message


def test_require_of_each_supported_extension_parses():
    quoted = ", ".join(f'"{name}"' for name in SUPPORTED_EXTENSIONS)
    script = parse(f"require [{quoted}];")
    assert script.extensions == set(SUPPORTED_EXTENSIONS)


def test_elsif_else_chain_parses():
    script = parse("if false { keep; } elsif true { discard; } else { stop; }")
    assert [command.name for command in script.commands] == ["if", "elsif", "else"]


def test_script_size_and_nesting_limits():
    with pytest.raises(SieveParseError, match="larger than"):
        parse("keep;" * 300, limits=Limits(max_script_size=1000))
    deep = "if true {" * 40 + "keep;" + "}" * 40
    with pytest.raises(SieveParseError, match="nested too deeply"):
        parse(deep)
    tests = "if " + "not " * 40 + "true { keep; }"
    with pytest.raises(SieveParseError, match="nested too deeply"):
        parse(tests)


def test_encoded_character_decodes_at_parse_time():
    # RFC 5228 §2.4.2.4 examples: both strings mean "$$$".
    script = parse('require "encoded-character"; if header :contains "subject" ["${hex:24 24}", "${unicode:24}$"] { }')
    assert script.commands[1].tests[0].positional[1] == ["$$", "$$"]
    script = parse('require "encoded-character"; if header :contains "subject" "${hex:24 24 24}" { }')
    assert script.commands[1].tests[0].positional[1] == ["$$$"]


def test_encoded_character_leaves_malformed_sequences_and_needs_require():
    script = parse('require "encoded-character"; if header :is "x" ["${hex:zz}", "${unicode:}"] { }')
    assert script.commands[1].tests[0].positional[1] == ["${hex:zz}", "${unicode:}"]
    plain = parse('if header :is "x" "${hex:24}" { }')
    assert plain.commands[0].tests[0].positional[1] == ["${hex:24}"]
    script = 'require "encoded-character"; if header :is "x" "${unicode:D800}" { }'
    assert "invalid unicode" in parse_error(script).message


def test_multiline_utf8_and_unicode_hex():
    script = parse('require "encoded-character"; if header :is "x" "${UNICODE:1F600 e9}" { }')
    assert script.commands[1].tests[0].positional[1] == ["\U0001f600\u00e9"]
