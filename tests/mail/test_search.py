"""The full-text index (groupware.mail.search): tokens, search strings, the limits both
engines share, and index maintenance. Run on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

import pytest
from django.db import connection

from groupware.mail import search
from groupware.mail.models import Email
from groupware.mail.search import TextTerm, text_terms, tokenize
from tests.mail.factories import mail_fixture  # noqa: F401 (fixtures)
from tests.mail.test_email_query_helpers import store_email, when

# -- Tokens and search strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("joe@example.com", ["joe", "example", "com"]),
        ("don't stop", ["don", "t", "stop"]),
        ("snake_case 3.14", ["snake", "case", "3", "14"]),
        ("Straße STRASSE", ["strasse", "strasse"]),
        ("Ölkännchen", ["ölkännchen"]),
        ("cafe\u0301", ["café"]),  # a combining accent stays in its word (NFKC composes it)
        ("\ufb01ne \uff26\uff55\uff4c\uff4c", ["fine", "full"]),  # compatibility forms (ligature, full-width)
        ("東京タワー", ["東", "京", "タ", "ワ", "ー"]),  # one token per ideograph or kana
        ("ｶﾀｶﾅ", ["カ", "タ", "カ", "ナ"]),  # half-width kana like full-width
        ("한국어 텍스트", ["한국어", "텍스트"]),
        ("Ελληνικά ΣΟΦΟΣ", ["ελληνικά", "σοφοσ"]),
        ("emoji 🎉 party", ["emoji", "party"]),
        ("⑴ item", ["1", "item"]),
        # Astral characters: letters of the supplementary planes are word characters,
        # CJK Extension B ideographs one token each, emoji separate words.
        ("\U0001d407\U0001d41e\U0001d425\U0001d425\U0001d428 wörld", ["hello", "wörld"]),
        ("x\U00020000y élan", ["x", "\U00020000", "y", "élan"]),
        ("a🎉b Ünï", ["a", "b", "ünï"]),
        ("", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens
    assert [token for _, _, token in search.token_spans(text)] == tokens


def test_the_plane_0_pattern_finds_the_words_of_the_full_one():
    """Text without astral characters is tokenized with a pattern that lacks their
    ranges: on every Basic Multilingual Plane character both find the same runs."""
    within_bmp, full = search._token_patterns()
    text = "".join(chr(code) for code in range(0xD800)) + "".join(chr(code) for code in range(0xE000, 0x10000))
    assert within_bmp.findall(text) == full.findall(text)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("foo bar", [TextTerm(("foo",), True), TextTerm(("bar",), True)]),
        ("  foo   foo ", [TextTerm(("foo",), True)]),
        ('"foo bar"', [TextTerm(("foo", "bar"), False)]),
        ("'foo bar' baz", [TextTerm(("foo", "bar"), False), TextTerm(("baz",), True)]),
        (r'"say \"hi\" now"', [TextTerm(("say", "hi", "now"), False)]),
        (r"'it\'s'", [TextTerm(("it", "s"), False)]),
        ('"unterminated phrase', [TextTerm(("unterminated", "phrase"), False)]),
        ("don't", [TextTerm(("don", "t"), True)]),  # a quote inside a word is no phrase
        ("joe@exam", [TextTerm(("joe", "exam"), True)]),
        ('""', []),
        ("!!! ?", []),
    ],
)
def test_text_terms(text, terms):
    assert text_terms(text) == terms


def test_too_many_terms():
    text_terms(" ".join(f"w{n}" for n in range(search.MAX_TERMS)))
    with pytest.raises(search.SearchQueryError):
        text_terms(" ".join(f"w{n}" for n in range(search.MAX_TERMS + 1)))


# -- Matching in the database ------------------------------------------------------------------------


def matches(account, *, fields=search.TEXT_FIELDS, text: str) -> set[str]:
    condition = search.search_condition(fields=fields, text=text)
    return set(Email.objects.filter(account=account).filter(condition).values_list("subject", flat=True))


def test_prefix_and_phrase(mail):
    account = mail.account
    store_email(account, subject="one", body="The business of buses", received_at=when(1))
    store_email(account, subject="two", body="bus stop", received_at=when(2))
    assert matches(account, text="bus") == {"one", "two"}
    assert matches(account, text='"bus"') == {"two"}
    assert matches(account, text='"buses"') == {"one"}
    assert matches(account, text="of bus") == {"one"}  # two words, anywhere
    assert matches(account, text='"of buses"') == {"one"}
    assert matches(account, text='"buses of"') == set()
    assert matches(account, text="bus stop") == {"two"}


def test_words_may_match_in_different_fields_but_phrases_in_one(mail):
    account = mail.account
    store_email(account, subject="alpha", body="beta", received_at=when(1))
    assert matches(account, text="alpha beta") == {"alpha"}
    assert matches(account, text='"alpha beta"') == set()
    assert matches(account, fields=("subject",), text="alpha beta") == set()


def test_repeated_word_limit_is_the_same_everywhere(mail):
    """Occurrences past the 256th are not indexed (PostgreSQL's limit), on both engines."""
    account = mail.account
    store_email(account, subject="many", body="the " * 300 + "end", received_at=when(1))
    store_email(account, subject="few", body="the " * 10 + "end", received_at=when(2))
    assert matches(account, text='"the end"') == {"few"}
    assert matches(account, text="the end") == {"many", "few"}


def test_field_length_limit_is_the_same_everywhere(mail):
    account = mail.account
    words = [f"w{index}" for index in range(search.MAX_FIELD_TOKENS + 100)]
    store_email(account, subject="long", body=" ".join(words), received_at=when(1))
    assert matches(account, text=words[search.MAX_FIELD_TOKENS - 1]) == {"long"}
    assert matches(account, text=words[search.MAX_FIELD_TOKENS]) == set()


def test_overlong_words_are_not_indexed_but_keep_their_place(mail):
    account = mail.account
    long_word = "x" * (search.MAX_TOKEN_LENGTH + 1)
    store_email(account, subject="blob", body=f"before {long_word} after", received_at=when(1))
    assert matches(account, text="before after") == {"blob"}
    assert matches(account, text='"before after"') == set()
    assert matches(account, text=long_word) == set()
    assert matches(account, text="x" * search.MAX_TOKEN_LENGTH) == set()


def test_header_index(mail):
    account = mail.account
    long_name = "X-" + "a" * 70
    store_email(
        account,
        subject="headers",
        received_at=when(1),
        headers=(
            ("List-Id", "Team <team.example.com>"),
            ("Received", "from a by b"),
            ("Received", "from c by d"),
            (long_name, "value"),
        ),
    )

    def header(name: str, text: str | None = None) -> bool:
        condition = search.header_condition(name=name, text=text)
        return Email.objects.filter(account=account).filter(condition).exists()

    assert header("list-id")
    assert header("LIST-ID", "team.example")
    assert header("List-Id", '"team example com"')
    assert not header("List-Id", "from")
    assert header("Received", "from b")
    assert not header("Received", '"b from"')  # no phrase across two header fields
    assert not header("List")  # names are whole
    assert not header(long_name)  # too long to index: never matches
    assert not header("Bad Name")


def test_reindex_and_remove(mail):
    account = mail.account
    email = store_email(account, subject="first", body="original words", received_at=when(1))
    search.search_index_add(email=email, fields={"body": "replacement text"})
    assert matches(account, text="replacement") == {"first"}
    assert matches(account, text="original") == set()
    assert matches(account, text="first") == {"first"}  # the subject column fills a missing field
    search.search_index_remove(email_ids=[email.pk])
    assert matches(account, text="first") == set()
    search.search_index_remove(email_ids=[])


def test_rebuild_from_the_stored_parse(mail):
    account = mail.account
    email = store_email(account, subject="rebuilt", body="stored body words", received_at=when(1))
    search.search_index_remove(email_ids=[email.pk])
    assert matches(account, text="stored") == set()
    assert search.search_index_rebuild(Email.objects.filter(account=account)) == 1
    assert matches(account, text="stored") == {"rebuilt"}
    assert matches(account, fields=("subject",), text="rebuilt") == {"rebuilt"}


def test_remove_and_add_again_between_prefix_queries(mail):
    """SQLite 3.40's FTS5 loses or corrupts rows re-added in the transaction that removed
    them when prefix queries run in between, unless each write is flushed (search._writing)."""
    account = mail.account
    first = store_email(account, subject="stored one", body="stored body words", received_at=when(1))
    store_email(account, subject="stored two", received_at=when(2))
    for _ in range(3):
        assert matches(account, text="stor") == {"stored one", "stored two"}
        search.search_index_remove(email_ids=[first.pk])
        assert matches(account, text="stor") == {"stored two"}
        search.search_index_add(email=first, fields=first.parsed["searchText"])
        assert matches(account, text="st") == {"stored one", "stored two"}
        assert matches(account, text="stored body") == {"stored one"}


def test_prune_removes_rows_of_deleted_emails(mail):
    account = mail.account
    kept = store_email(account, subject="kept", received_at=when(1))
    gone = store_email(account, subject="gone", received_at=when(2))
    Email.objects.filter(pk=gone.pk).delete()  # e.g. the account's deletion: no service call
    assert search.search_index_prune() == 1
    assert search.search_index_prune() == 0
    assert matches(account, text="kept") == {kept.subject}


def test_search_text_with_sql_and_query_syntax_is_plain_text(mail):
    account = mail.account
    store_email(account, subject='quote\'s "test" NEAR(x) AND OR * : {subject}', received_at=when(1))
    for text in ("NEAR", "AND OR", "subject", "'; DROP TABLE mail_email; --", "x*", "{subject}:", "quote's"):
        matches(account, text=text)  # never a syntax error
    assert matches(account, text="NEAR AND") == {'quote\'s "test" NEAR(x) AND OR * : {subject}'}
    assert matches(account, text="drop") == set()


def test_index_table_exists_for_this_engine(db):
    tables = connection.introspection.table_names()
    assert search.TABLE in tables


def test_ingested_messages_are_searchable(mail):
    """Through the ingest service (skipped until the MIME parser lands)."""
    pytest.importorskip("groupware.mail.mime")
    from tests.mail.factories import ingest, message

    ingest(mail.account, message(subject="Ingested subject", body="Some searchable body text\n"))
    assert matches(mail.account, fields=("subject",), text="ingested") == {"Ingested subject"}
    assert matches(mail.account, fields=("from",), text="bloggs") == {"Ingested subject"}
    assert matches(mail.account, fields=search.BODY_FIELDS, text="searchable") == {"Ingested subject"}


@pytest.mark.parametrize(
    "headers",
    [
        [("Subject", "hello world"), ("X-Long", "y" * (search.MAX_TOKEN_LENGTH + 5) + " after"), ("Bad Name", "skip")],
        [("X-Same", "same " * 40)] * 10,  # one token past its position cap
        [(f"X-H{index}", " ".join(f"w{index}x{n}" for n in range(50))) for index in range(400)],  # past the field cap
    ],
)
def test_header_stream_takes_the_caps_as_token_by_token_would(headers):
    """The header section goes into its stream in one step; the result is the stream
    built one token at a time (what the caps are defined on)."""
    expected = search._Stream()
    for name, value in headers:
        prefix = search._header_name_token(name)
        if prefix is None:
            continue
        for token in [
            search._HEADER_PRESENT + prefix,
            *search.indexable(search.tokenize(value), prefix + search._HEADER_VALUE),
            search.PLACEHOLDER,
        ]:
            expected.add(token)
    assert search._headers_stream(headers).tokens == expected.tokens


def _tsvector_text_literal(tokens: list[str]) -> str:
    """The same vector as PostgreSQL's text input: 'lexeme':1,5 with quotes and
    backslashes escaped (what the index was written with before the binary format)."""
    positions: dict[str, list[int]] = {}
    for position, token in enumerate(tokens, start=1):
        positions.setdefault(token, []).append(position)
    positions.pop(search.PLACEHOLDER, None)
    return " ".join(
        "'" + token.replace("\\", "\\\\").replace("'", "''") + "':" + ",".join(map(str, numbers))
        for token, numbers in positions.items()
    )


_VECTOR_TOKENS = [
    [],
    ["word"],
    [search.PLACEHOLDER],
    ["the", "cat", "the", search.PLACEHOLDER, "cat", "end"],
    ["quote's", "back\\slash", "quote's"],  # never made by the tokenizer, quoted all the same
    ["café", "日", "本", "ё", "\U0001f600", "z" * search.MAX_TOKEN_LENGTH],
    [search._HEADER_PRESENT + "subject", "subject" + search._HEADER_VALUE + "hello", search.PLACEHOLDER],
    ["same"] * search.MAX_TOKEN_POSITIONS + ["other"],  # a lexeme with the most positions kept
    [f"w{index % 700}" for index in range(search.MAX_FIELD_TOKENS)],  # the last position allowed
]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's tsvector")
@pytest.mark.parametrize("tokens", _VECTOR_TOKENS, ids=range(len(_VECTOR_TOKENS)))
def test_binary_tsvector_is_the_vector_of_its_text_literal(db, tokens):
    """What PostgreSQL reads from the binary vector equals what it parses from the text
    literal of the same positions: same lexemes, positions and text form."""
    vector = search.tsvector_of(tokens)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::tsvector = t, %s::tsvector::text = t::text, length(%s::tsvector)"
            " FROM (SELECT %s::tsvector AS t) AS literal",
            [vector, vector, vector, _tsvector_text_literal(tokens)],
        )
        same, same_text, lexemes = cursor.fetchone()
    assert same and same_text
    assert lexemes == len(set(tokens) - {search.PLACEHOLDER})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's tsvector")
def test_binary_tsvectors_of_the_corpus_equal_their_text_literals(db):
    """Every field of every message of the shared MIME corpus (or, without it, of
    generated mail in five charsets): the binary vector is the vector of the text literal
    of the same stream."""
    from groupware.mail.services.emails import _columns, message_parse, search_fields_of, without_nul
    from tests.mail.test_email_corpus import FILES

    if FILES:
        messages = [path.read_bytes() for path in FILES]
    else:
        from bench.mailcorpus import MailCorpus

        messages = [message.raw for message in MailCorpus(seed=5).messages(200)]
    compared = 0
    with connection.cursor() as cursor:
        for raw in messages:
            parsed = message_parse(raw)
            streams = search.search_streams(email=_columns(parsed), fields=without_nul(search_fields_of(parsed)))
            for tokens in streams.values():
                cursor.execute(
                    "SELECT %s::tsvector = %s::tsvector", [search.tsvector_of(tokens), _tsvector_text_literal(tokens)]
                )
                assert cursor.fetchone()[0]
                compared += 1
    assert compared >= 8 * len(messages)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's TOAST compression")
def test_largest_values_of_a_message_compress_with_lz4_where_the_server_has_it(mail):
    """Migration 0007: the search row's vectors and the Email's parse use lz4 (new values),
    if this PostgreSQL was built with it; else they stay on the default."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        (available,) = cursor.fetchone()
        cursor.execute(
            "SELECT attrelid::regclass::text, attname, attcompression FROM pg_attribute"
            " WHERE (attrelid = 'mail_email_search'::regclass AND attnum > 1)"
            " OR (attrelid = 'mail_email'::regclass AND attname = 'parsed')"
        )
        columns = cursor.fetchall()
        assert len(columns) == len(search.COLUMNS) + 1
        assert {compression for _, _, compression in columns} == {"l" if available else ""}
    # A body vector large enough to be compressed (over 2 KB): stored with that method.
    email = store_email(
        mail.account, subject="big", body=" ".join(f"word{n}" for n in range(3000)), received_at=when(1)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_column_compression(body) FROM {search.TABLE} WHERE email_id = %s", [email.pk])
        assert cursor.fetchone()[0] == ("lz4" if available else "pglz")
