"""Full-text search index for emails: PostgreSQL tsvector + GIN, SQLite FTS5.

The ingest service calls ``search_index_add`` in the transaction that stores the email,
and the destroy service calls ``search_index_remove``; Email/query's text conditions
(RFC 8621 §4.4.1 text, from, to, cc, bcc, subject, body, header) become
``search_condition``/``header_condition``, and SearchSnippet/get (§5) highlights with
``snippet_highlight``.

Matching semantics (the same on both databases, because every token is made here, in
Python, and the engines only compare the tokens they are given):

- Tokens are maximal runs of letters, digits and combining marks (Unicode categories
  L*, N*, M*), except CJK ideographs and kana, which are one token per character (those
  scripts don't separate words). A token is normalised with NFKC and case folding
  (``text_normalise``), ASCII punctuation that normalisation may produce is dropped, and
  tokens longer than ``MAX_TOKEN_LENGTH`` are not indexed (nor ever matched).
- A search string is split at white space into words (§4.4.1: "white space SHOULD be
  treated as dividing separate tokens ... [that] MUST all be present"). Text between
  matching single or double quotes that open at the start of a word is a phrase, with
  backslash escaping ' " and \\ (§4.4.1).
- A word matches a field when its tokens appear consecutively in the field, the last one
  as a token prefix ("bus" matches "business", "joe@exam" matches joe@example.com).
  A phrase matches when its tokens appear consecutively, each one whole. Every word and
  phrase must match (each may match in a different field of a multi-field search such as
  ``text``). A search string without tokens matches every email.
- Fields are capped identically for both engines: at most ``MAX_FIELD_TOKENS`` token
  positions, ``MAX_TOKEN_POSITIONS`` occurrences of one token (further occurrences keep
  their position but are not indexed) and ``MAX_FIELD_LEXEME_BYTES`` of distinct tokens
  (PostgreSQL's tsvector limits), so the two engines index exactly the same tokens.

Storage. PostgreSQL: ``mail_email_search``, one row per email with one tsvector per field
(sent in tsvector's binary format with explicit positions, so PostgreSQL's own parser never
re-tokenises) and a multi-column GIN index. SQLite: an FTS5 table with one column per
field holding the space-separated token stream, under the ``ascii`` tokenizer (every
non-ASCII character is a token character and ASCII is only letters and digits in our
tokens, so FTS5 sees exactly our tokens). Rows are keyed by Email pk; there is no foreign key, so an email deleted
without ``search_index_remove`` (e.g. by an account's deletion) leaves a row that no query
can reach (ids are never reused) until ``search_index_prune`` removes it.
"""

from __future__ import annotations

import html
import re
import struct
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.header import decode_header, make_header
from functools import cache, lru_cache
from typing import Any

import psycopg
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from psycopg.adapt import Dumper
from psycopg.pq import Format

from groupware.core import sql

TABLE = "mail_email_search"
# The index's fields, in column order; the JMAP filter names map onto them (§4.4.1).
COLUMNS: dict[str, str] = {
    "subject": "subject",
    "from": "addr_from",
    "to": "addr_to",
    "cc": "addr_cc",
    "bcc": "addr_bcc",
    "body": "body",
    "attachments": "attachments",
    "headers": "headers",
}
# §4.4.1 text: "MUST look up text in the From, To, Cc, Bcc, and Subject header fields ...
# and SHOULD look inside any text/* or other body parts"; attachment text is body parts.
TEXT_FIELDS = ("subject", "from", "to", "cc", "bcc", "body", "attachments")
BODY_FIELDS = ("body", "attachments")

MAX_TOKEN_LENGTH = 100
MAX_FIELD_TOKENS = 16_000  # PostgreSQL positions stop at 16383
MAX_TOKEN_POSITIONS = 256  # PostgreSQL keeps at most 256 positions per lexeme
MAX_FIELD_LEXEME_BYTES = 512_000  # a tsvector is at most 1 MB
MAX_HEADER_NAME_LENGTH = 64
MAX_TERMS = 64  # words and phrases in one search string
# Matches read into the query on Email as a list of ids; more make it a sub-select.
MAX_LISTED_MATCHES = 2000
_CHUNK = 500
_WRITE_CHUNK = 100  # emails per INSERT of the index (SQLite: at most 999 parameters)

# Private-use characters, which the tokenizer never produces inside a word token:
# a position that holds no indexed token, and the header-field token markers.
PLACEHOLDER = "\ue000"
_HEADER_PRESENT = "\ue001"
_HEADER_VALUE = "\ue002"
_HEADER_ESCAPE_BASE = 0xE100

_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Halfwidth Katakana
    (0x20000, 0x3FFFF),  # Supplementary ideographic planes
)
_ASCII_NOT_ALNUM = re.compile(r"[\x00-\x2f\x3a-\x60\x7b-\x7f]+")
_WHITESPACE = re.compile(r"\s+")
_SPACE = re.compile(r"\s")
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_ASCII_WORDS = {code: (chr(code).lower() if chr(code).isalnum() else " ") for code in range(128)}
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_PIECE = 32_768  # characters tokenized at a time, so a long text stops soon after a cap


class SearchQueryError(ValueError):
    """A search string the index can't run (e.g. too many words)."""


# -- Tokens ---------------------------------------------------------------------------------


def _class_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    def escape(code: int) -> str:
        return f"\\U{code:08x}"

    return "".join(escape(start) if start == end else f"{escape(start)}-{escape(end)}" for start, end in ranges)


@cache
def _token_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Word runs (L*, N*, M* outside CJK) or one CJK character, compiled once per process:
    (the pattern for text within the Basic Multilingual Plane, the one for any text).

    The first is the same pattern without the ranges above U+FFFF. ``re`` keeps a class's
    BMP part as a bitmap but tests its astral ranges one by one for every character the
    bitmap refuses, and there are hundreds: text without astral characters never needs them.
    """
    cjk = [(start, min(end, 0x10FFFF)) for start, end in _CJK_RANGES]
    cjk_starts = [start for start, _ in cjk]

    def in_cjk(code: int) -> bool:
        index = bisect_right(cjk_starts, code) - 1
        return index >= 0 and code <= cjk[index][1]

    ranges: list[tuple[int, int]] = []
    start = None
    for code in range(0x110000):
        word = unicodedata.category(chr(code))[0] in "LNM" and not in_cjk(code)
        if word and start is None:
            start = code
        elif not word and start is not None:
            ranges.append((start, code - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))

    def bmp(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(first, min(last, 0xFFFF)) for first, last in spans if first <= 0xFFFF]

    full = re.compile(f"[{_class_ranges(cjk)}]|[{_class_ranges(ranges)}]+")
    return re.compile(f"[{_class_ranges(bmp(cjk))}]|[{_class_ranges(bmp(ranges))}]+"), full


def warm_up() -> None:
    """Build the word patterns now (a process that forks workers does it once for them)."""
    _token_patterns()


def _token_pattern(text: str) -> re.Pattern[str]:
    """The word pattern to search ``text`` with (see ``_token_patterns``)."""
    within_bmp, full = _token_patterns()
    return full if _ASTRAL.search(text) else within_bmp


def text_normalise(run: str) -> str:
    """A word run as a token: NFKC, case folded (Unicode default caseless matching),
    without ASCII punctuation that compatibility decomposition may have produced."""
    if run.isascii():
        return run.lower()
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", run).casefold())
    return _ASCII_NOT_ALNUM.sub("", folded)


# Word runs recur (the same words in message after message): their tokens are remembered.
_run_token = lru_cache(maxsize=65_536)(text_normalise)


def token_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, token) of every token of ``text``, long tokens included."""
    if text.isascii():  # lower() keeps every offset of ASCII text
        for match in _ASCII_TOKEN.finditer(text.lower()):
            yield match.start(), match.end(), match.group()
        return
    for match in _token_pattern(text).finditer(text):
        token = text_normalise(match.group())
        if token:
            yield match.start(), match.end(), token


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` (see the module doc), long tokens included.

    The same tokens as ``token_spans`` gives, made by the regular expression engine's
    ``findall`` and ``map`` over a cache (no Python step per token): indexing tokenizes
    every message.
    """
    if text.isascii():
        # In ASCII, letters and digits are the only word characters: everything else
        # becomes a space and capitals small letters in one C pass, then split.
        return text.translate(_ASCII_WORDS).split()
    return list(filter(None, map(_run_token, _token_pattern(text).findall(text))))


def text_pieces(text: str, size: int = _PIECE) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut only at white space (which is
    never inside a token), so tokenizing the pieces gives the tokens of the whole text."""
    start, length = 0, len(text)
    while start < length:
        if length - start <= size:
            yield text[start:]
            return
        space = _SPACE.search(text, start + size)
        end = space.end() if space else length
        yield text[start:end]
        start = end


# -- Search strings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTerm:
    """A word (``prefix``: its last token may be a prefix) or a quoted phrase."""

    tokens: tuple[str, ...]
    prefix: bool

    @property
    def matchable(self) -> bool:
        # A token longer than any indexed token can never match.
        return all(len(token) <= MAX_TOKEN_LENGTH for token in self.tokens)


def text_terms(text: str) -> list[TextTerm]:
    """The words and phrases of a search string (RFC 8621 §4.4.1), without duplicates."""
    terms: list[TextTerm] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "\"'":
            # A phrase, up to the matching unescaped quote (or the end of the string).
            parts: list[str] = []
            index += 1
            while index < length and text[index] != char:
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                parts.append(text[index])
                index += 1
            index += 1
            tokens = tuple(tokenize("".join(parts)))
            prefix = False
        else:
            end = index
            while end < length and not text[end].isspace():
                end += 1
            tokens = tuple(tokenize(text[index:end]))
            index, prefix = end, True
        if tokens:
            term = TextTerm(tokens, prefix)
            if term not in terms:
                terms.append(term)
    if len(terms) > MAX_TERMS:
        raise SearchQueryError(f"a search string may have at most {MAX_TERMS} words and phrases")
    return terms


def _header_name_token(name: str) -> str | None:
    """A header field name as token text: lower-cased, ASCII punctuation as private-use
    characters (FTS5's ascii tokenizer would split at it); None if it can't be indexed."""
    name = name.strip().lower()
    if not name or len(name) > MAX_HEADER_NAME_LENGTH or not all("\x21" <= c <= "\x7e" and c != ":" for c in name):
        return None
    return "".join(c if c.isalnum() else chr(_HEADER_ESCAPE_BASE + ord(c)) for c in name)


# -- Indexing -------------------------------------------------------------------------------------


class _Stream:
    """One field's token positions, capped the same way for both engines."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self._counts: Counter[str] = Counter()
        self._bytes = 0
        self.full = False

    def add(self, token: str) -> None:
        if self.full:
            return
        if len(self.tokens) >= MAX_FIELD_TOKENS:
            self.full = True
            return
        if token == PLACEHOLDER or self._counts[token] >= MAX_TOKEN_POSITIONS:
            self.tokens.append(PLACEHOLDER)
            return
        if token not in self._counts:
            size = len(token.encode())
            if self._bytes + size > MAX_FIELD_LEXEME_BYTES:
                self.full = True
                return
            self._bytes += size
        self._counts[token] += 1
        self.tokens.append(token)

    def add_tokens(self, tokens: list[str]) -> None:
        """``add`` each token, in bulk while no cap can be reached."""
        if not tokens or self.full:
            return
        if len(self.tokens) + len(tokens) < MAX_FIELD_TOKENS:
            counts = Counter(tokens)
            counts.pop(PLACEHOLDER, None)  # a position holding no token: not counted
            seen = self._counts
            fresh = [token for token in counts if token not in seen] if seen else list(counts)
            size = len("".join(fresh).encode())
            within = self._bytes + size <= MAX_FIELD_LEXEME_BYTES
            if within and (
                max(counts.values(), default=0) <= MAX_TOKEN_POSITIONS
                if not seen
                else all(seen[token] + n <= MAX_TOKEN_POSITIONS for token, n in counts.items())
            ):
                self.tokens.extend(tokens)
                self._counts.update(counts)
                self._bytes += size
                return
        for token in tokens:
            if self.full:
                return
            self.add(token)

    def add_text(self, text: str) -> None:
        for piece in text_pieces(text):  # a long text stops soon after a cap
            self.add_tokens(indexable(tokenize(piece)))
            if self.full:
                return


def indexable(tokens: list[str], prefix: str = "") -> list[str]:
    """Tokens as indexed: ``prefix`` + token, or a placeholder for a token too long to
    index (it still takes a position, so a phrase can't skip it)."""
    if not prefix and (not tokens or max(map(len, tokens)) <= MAX_TOKEN_LENGTH):
        return tokens
    return [prefix + token if len(token) <= MAX_TOKEN_LENGTH else PLACEHOLDER for token in tokens]


def _column(email: Any, name: str) -> Any:
    # An Email, or a mapping of its column values (an Email not stored yet).
    return email.get(name) if isinstance(email, Mapping) else getattr(email, name, None)


def _header_fields(email: Any, fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, value) of every header field of the message, from the stored parse (or
    the ``headers`` text, "Name: value" lines, when there is no parse)."""
    parsed = _column(email, "parsed")
    headers = parsed.get("headers") if isinstance(parsed, Mapping) else None
    result: list[tuple[str, str]] = []
    if isinstance(headers, list):
        for header in headers:
            if isinstance(header, Mapping):
                name, value = header.get("name"), header.get("value")
                if isinstance(name, str) and isinstance(value, str):
                    result.append((name, value))
        return result
    for line in (fields.get("headers") or "").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            result.append((name, value))
    return result


def _decoded_header(value: str) -> str:
    # §4.4.1: "encoded sections of header fields with a known encoding SHOULD be decoded".
    value = _WHITESPACE.sub(" ", value)
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError):
        return value


def _headers_stream(headers: list[tuple[str, str]]) -> _Stream:
    tokens: list[str] = []
    for name, value in headers:
        prefix = _header_name_token(name)
        if prefix is None:
            continue
        tokens.append(_HEADER_PRESENT + prefix)
        tokens += indexable(tokenize(_decoded_header(value)), prefix + _HEADER_VALUE)
        tokens.append(PLACEHOLDER)  # no phrase runs from one header field into the next
        if len(tokens) > MAX_FIELD_TOKENS:
            break  # the stream is full before it reaches the rest
    stream = _Stream()
    stream.add_tokens(tokens)  # one step for the whole header section
    return stream


def _address_text(addresses: Any) -> str:
    if not isinstance(addresses, list):
        return ""
    parts = []
    for address in addresses:
        if isinstance(address, Mapping):
            parts.extend(str(address.get(key) or "") for key in ("name", "email"))
    return " ".join(parts)


def _field_texts(email: Any, fields: Mapping[str, str]) -> dict[str, str]:
    """Each field's text: what the parse gave, else the Email's columns."""
    fallback = {
        "subject": _column(email, "subject") or "",
        "from": _address_text(_column(email, "from_addresses")),
        "to": _address_text(_column(email, "to")),
        "cc": _address_text(_column(email, "cc")),
        "bcc": _address_text(_column(email, "bcc")),
    }
    texts = {}
    for name in COLUMNS:
        value = fields.get(name)
        texts[name] = value if isinstance(value, str) and value else fallback.get(name, "")
    return texts


TSVECTOR_OID = psycopg.postgres.types["tsvector"].oid


class TsVector(bytes):
    """A tsvector in PostgreSQL's binary format (tsvector_send/tsvectorrecv): the number of
    lexemes (int32), then each lexeme as a NUL-terminated UTF-8 string followed by its
    number of positions and the positions (uint16 each, big-endian, weight bits zero).
    Sent as a binary parameter (``_TsVectorDumper``), PostgreSQL reads it without
    parsing text: about 40 % less of its time per row than the same vector as a literal."""


class _TsVectorDumper(Dumper):
    format = Format.BINARY
    oid = TSVECTOR_OID

    def dump(self, obj: Any) -> bytes:
        return obj  # already the wire format (a bytes subclass)


# Registered before any connection exists (this module loads with the mail app): psycopg
# connections copy the adapters of the global map when they open.
psycopg.adapters.register_dumper(TsVector, _TsVectorDumper)

_POSITION_PACKERS: dict[int, Callable[..., bytes]] = {}  # at most 256 (MAX_TOKEN_POSITIONS)


def _positions_packer(count: int) -> Callable[..., bytes]:
    packer = _POSITION_PACKERS.get(count)
    if packer is None:
        packer = _POSITION_PACKERS[count] = struct.Struct(f">{count + 1}H").pack
    return packer


def tsvector_of(tokens: list[str]) -> TsVector:
    """The tsvector of a token stream: each token with its positions (from 1), the
    placeholder's positions left empty. Tokens are never empty and never hold NUL (the
    tokenizer drops ASCII punctuation); the stream's caps keep within tsvector's limits
    (at most 256 positions per lexeme, positions under 16384, lexemes under 2 KB)."""
    positions: dict[str, list[int]] = {}
    start = positions.setdefault
    for position, token in enumerate(tokens, start=1):
        start(token, []).append(position)
    positions.pop(PLACEHOLDER, None)
    # Lexemes go in first-seen order: PostgreSQL sorts them on receipt.
    out = bytearray(len(positions).to_bytes(4, "big"))
    for token, numbers in positions.items():
        count = len(numbers)
        out += token.encode()
        out += b"\0"
        out += _positions_packer(count)(count, *numbers)
    return TsVector(out)


def _postgresql_write(chunk: Sequence[tuple[int, SearchDocument]], columns: list[str]) -> tuple[str, list[Any]]:
    """The upsert of index rows on PostgreSQL: the rows as sql.insert_rows gives them (one
    array per column for many), each field a binary tsvector (``tsvector_of``)."""
    rows = [(pk, *document.values) for pk, document in chunk]
    source, params = sql.insert_rows(["bigint"] + ["tsvector"] * len(columns), rows)
    statement = (
        f"INSERT INTO {TABLE} (email_id, {', '.join(columns)}) {source}"
        " ON CONFLICT (email_id) DO UPDATE SET " + ", ".join(f"{column} = EXCLUDED.{column}" for column in columns)
    )
    return statement, params


@contextmanager
def _writing() -> Iterator[None]:
    """A savepoint around each write to the FTS5 table on SQLite.

    FTS5 keeps a transaction's writes as pending data until a savepoint is released or
    the transaction commits. SQLite 3.40's FTS5 answers prefix queries over pending data
    that deletes and re-adds a rowid wrongly (rows missing, or "database disk image is
    malformed"); releasing a savepoint after each write flushes it, so queries never see
    such pending data (tests/mail/test_search.py reproduces the sequence).
    """
    if connection.vendor == "sqlite":
        with transaction.atomic():
            yield
    else:
        yield


@dataclass(frozen=True)
class SearchDocument:
    """What the index holds for one email: each field's value as the engine stores it
    (a binary tsvector on PostgreSQL, the token stream on SQLite). Made without the
    database, so an ingest can tokenize before it takes the account's lock."""

    values: tuple[TsVector, ...] | tuple[str, ...]


def search_streams(*, email: Any, fields: Mapping[str, str]) -> dict[str, list[str]]:
    """Each field's token stream (capped) as indexed; see ``search_document``."""
    streams: dict[str, list[str]] = {}
    for name, text in _field_texts(email, fields).items():
        if name == "headers":
            streams[name] = _headers_stream(_header_fields(email, fields)).tokens
        else:
            stream = _Stream()
            stream.add_text(text)
            streams[name] = stream.tokens
    return streams


def search_document(*, email: Any, fields: Mapping[str, str]) -> SearchDocument:
    """The document of an email (an Email, or a mapping of its columns). ``fields``:
    subject, from, to, cc, bcc, body, attachments, headers; missing ones come from the
    Email's columns."""
    streams = search_streams(email=email, fields=fields)
    if connection.vendor == "postgresql":
        return SearchDocument(tuple(tsvector_of(streams[name]) for name in COLUMNS))
    return SearchDocument(tuple(" ".join(streams[name]) for name in COLUMNS))


def search_index_write(documents: Sequence[tuple[int, SearchDocument]], batch: sql.Batch | None = None) -> None:
    """Index emails (pk, document), replacing what was indexed for them. ``batch``: on
    PostgreSQL the write joins it (run by the caller; SQLite's FTS5 writes go now)."""
    columns = list(COLUMNS.values())
    if connection.vendor == "postgresql":
        writes = batch if batch is not None else sql.Batch()
        for start in range(0, len(documents), _WRITE_CHUNK):
            writes.add(*_postgresql_write(documents[start : start + _WRITE_CHUNK], columns))
        if batch is None:
            writes.run()
        return
    with _writing(), connection.cursor() as cursor:
        for start in range(0, len(documents), _WRITE_CHUNK):
            chunk = documents[start : start + _WRITE_CHUNK]
            rows = [(pk, *document.values) for pk, document in chunk]
            if connection.vendor == "sqlite":
                keys = [pk for pk, _ in chunk]
                cursor.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({', '.join(['%s'] * len(keys))})", keys)  # noqa: S608
                row = f"({', '.join(['%s'] * (len(columns) + 1))})"
                cursor.execute(
                    f"INSERT INTO {TABLE} (rowid, {', '.join(columns)}) "  # noqa: S608
                    f"VALUES {', '.join([row] * len(chunk))}",
                    [value for row_values in rows for value in row_values],
                )
            else:  # pragma: no cover - config.database only knows these two
                raise NotImplementedError(f"no search index for {connection.vendor}")


def search_index_add(*, email: Any, fields: Mapping[str, str]) -> None:
    """Index one stored email (replacing what was indexed for it); see search_document."""
    search_index_write([(email.pk, search_document(email=email, fields=fields))])


def _key_column() -> str:
    return "email_id" if connection.vendor == "postgresql" else "rowid"


def _chunks(items: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def search_index_move(pairs: Sequence[tuple[int, int]]) -> None:
    """Re-key index rows (old Email pk, new Email pk): what an Email re-inserted under a
    new id (a Thread merge) had indexed moves with it, without tokenizing it again."""
    columns = ", ".join(COLUMNS.values())
    with _writing(), connection.cursor() as cursor:
        for start in range(0, len(pairs), _WRITE_CHUNK):
            chunk = pairs[start : start + _WRITE_CHUNK]
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {TABLE} AS s SET email_id = v.new FROM (VALUES "  # noqa: S608
                    + ", ".join(["(%s::bigint, %s::bigint)"] * len(chunk))
                    + ") AS v(old, new) WHERE s.email_id = v.old",
                    [pk for pair in chunk for pk in pair],
                )
            else:
                for old, new in chunk:
                    cursor.execute(
                        f"INSERT INTO {TABLE} (rowid, {columns}) SELECT %s, {columns} FROM {TABLE} WHERE rowid = %s",  # noqa: S608
                        [new, old],
                    )
                keys = [old for old, _ in chunk]
                cursor.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({', '.join(['%s'] * len(keys))})", keys)  # noqa: S608


def search_index_remove(*, email_ids: list[int]) -> None:
    """Drop emails (pks) from the index."""
    key = _key_column()
    with _writing(), connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(email_ids))):
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {TABLE} WHERE {key} IN ({placeholders})", chunk)  # noqa: S608


def search_index_rebuild(emails: Iterable[Any]) -> int:
    """Index these emails again from their stored parse (its ``searchText``, the fields
    the ingest service indexes); for a backfill or after a change to the tokenizer."""
    count = 0
    for email in emails:
        parsed = email.parsed if isinstance(email.parsed, Mapping) else {}
        text = parsed.get("searchText") or parsed.get("search_text") or {}
        fields = {str(key): value for key, value in text.items() if isinstance(value, str)}
        search_index_add(email=email, fields=fields)
        count += 1
    return count


def search_index_prune() -> int:
    """Remove index rows whose email no longer exists (e.g. after an account's deletion)."""
    key = _key_column()
    with _writing(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE {key} NOT IN (SELECT id FROM mail_email)")  # noqa: S608
        return cursor.rowcount


# -- Conditions -------------------------------------------------------------------------------

TRUE = Q(pk__isnull=False)
FALSE = Q(pk__in=[])


def _fts5_string(tokens: Iterable[str]) -> str:
    return '"' + " ".join(tokens).replace('"', '""') + '"'


def _tsquery_literal(tokens: Sequence[str], prefix: bool) -> str:
    quoted = ["'" + token.replace("\\", "\\\\").replace("'", "''") + "'" for token in tokens]
    if prefix:
        quoted[-1] += ":*"
    return " <-> ".join(quoted)


def _matching(columns: list[str], phrases: list[tuple[tuple[str, ...], bool]]) -> Q:
    """Emails where every phrase (tokens, last-token-is-a-prefix) appears in one of the
    columns (each phrase in any of them)."""
    if not phrases:
        return TRUE
    if connection.vendor == "postgresql":
        clauses, params = [], []
        for tokens, prefix in phrases:
            literal = _tsquery_literal(tokens, prefix)
            clauses.append("(" + " OR ".join(f"{column} @@ %s::tsquery" for column in columns) + ")")
            params.extend([literal] * len(columns))
        sql = f"SELECT email_id FROM {TABLE} WHERE {' AND '.join(clauses)}"  # noqa: S608
    else:
        expression = " AND ".join(_fts5_string(tokens) + ("*" if prefix else "") for tokens, prefix in phrases)
        sql = f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s"  # noqa: S608
        params = ["{" + " ".join(columns) + "} : (" + expression + ")"]
    # The matches are read first (one query on the index): the query on Email then
    # starts from a few rows instead of walking the whole mailbox in its sort order and
    # testing each message (the plan PostgreSQL picks for a rare word, as it can't tell
    # how rare it is). Past MAX_LISTED_MATCHES, the word is common and walking the sort
    # order finds a page of matches soon: the index is then a sub-select.
    with connection.cursor() as cursor:
        # The SQL is made of constants; the search text only ever travels as parameters.
        cursor.execute(f"{sql} LIMIT {MAX_LISTED_MATCHES + 1}", params)
        matches = [row[0] for row in cursor.fetchall()]
    if len(matches) <= MAX_LISTED_MATCHES:
        return Q(pk__in=matches) if matches else FALSE
    return Q(pk__in=RawSQL(sql, params))  # noqa: S611


def search_condition(*, fields: Sequence[str], text: str) -> Q:
    """Emails whose ``fields`` (names of ``COLUMNS``) match the search string ``text``."""
    terms = text_terms(text)
    if not all(term.matchable for term in terms):
        return FALSE
    return _matching([COLUMNS[name] for name in fields], [(term.tokens, term.prefix) for term in terms])


def header_condition(*, name: str, text: str | None) -> Q:
    """§4.4.1 header: emails with a header field ``name``, whose value matches ``text``
    when it is given."""
    prefix = _header_name_token(name)
    if prefix is None:
        return FALSE
    phrases: list[tuple[tuple[str, ...], bool]] = [((_HEADER_PRESENT + prefix,), False)]
    if text is not None:
        terms = text_terms(text)
        if not all(term.matchable for term in terms):
            return FALSE
        marker = prefix + _HEADER_VALUE
        phrases.extend((tuple(marker + token for token in term.tokens), term.prefix) for term in terms)
    return _matching([COLUMNS["headers"]], phrases)


# -- Snippets (RFC 8621 §5) --------------------------------------------------------------------

ELLIPSIS = "\u2026"
_CONTEXT_BEFORE = 40  # characters shown before the first match of a preview
_Span = tuple[int, int, str]


def _term_end(window: Sequence[_Span], term: TextTerm, text: str) -> int | None:
    """Where ``term`` ends in ``text`` if it matches the tokens of ``window`` (as many
    as it has): the same matching as the index. A prefix match ends where the matching
    start of its word does."""
    if any(len(token) > MAX_TOKEN_LENGTH for _, _, token in window):
        return None
    if any(token != wanted for (_, _, token), wanted in zip(window[:-1], term.tokens[:-1], strict=True)):
        return None
    last_start, last_end, last = window[-1]
    wanted = term.tokens[-1]
    if last == wanted:
        return last_end
    if term.prefix and last.startswith(wanted):
        # The shortest start of the word normalising to the prefix (the whole word when
        # normalisation doesn't line up with the characters).
        for stop in range(last_start + 1, last_end + 1):
            if text_normalise(text[last_start:stop]).startswith(wanted):
                return stop
        return last_end
    return None


def _matches(text: str, terms: Sequence[TextTerm]) -> Iterator[tuple[int, int]]:
    """(start, end) of every match of a term in ``text``, by the position of its end."""
    usable = [term for term in terms if term.matchable]
    if not usable:
        return
    recent: list[_Span] = []
    longest = max(len(term.tokens) for term in usable)
    for span in token_spans(text):
        recent.append(span)
        if len(recent) > longest:
            del recent[0]
        for term in usable:
            size = len(term.tokens)
            if len(recent) >= size:
                end = _term_end(recent[-size:], term, text)
                if end is not None:
                    yield recent[-size][0], end


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _marked(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            pieces.append((text[cursor:start], False))
        pieces.append((text[start:end], True))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], False))
    return pieces


def _render(pieces: list[tuple[str, bool]]) -> str:
    # §5: "&", "<" and ">" MUST be replaced by HTML entities; matches go in <mark>.
    return "".join(
        f"<mark>{html.escape(piece, quote=False)}</mark>" if mark else html.escape(piece, quote=False)
        for piece, mark in pieces
    )


def _size(text: str) -> int:
    return len(text.encode())


def snippet_highlight(text: str, terms: Sequence[TextTerm]) -> str | None:
    """The whole text, HTML-escaped, with every match in <mark></mark> (§5 subject);
    None when nothing matches."""
    spans = _merged(_matches(text, terms))
    if not spans:
        return None
    return _render(_marked(text, spans))


def snippet_preview(text: str, terms: Sequence[TextTerm], max_bytes: int = 255) -> str | None:
    """A section of ``text`` from shortly before its first match, white space collapsed,
    HTML-escaped with matches in <mark></mark>, at most ``max_bytes`` octets of UTF-8
    (§5 preview); None if nothing matches. Only the text up to the first match and a
    little after it is read, however long the body."""
    first = next(_matches(text, terms), None)
    if first is None:
        return None
    # From the start when the match is near it, else from shortly before the match.
    begin = 0 if _size(text[: first[1]]) <= max_bytes // 2 else max(first[0] - _CONTEXT_BEFORE, 0)
    if begin > 0:
        # Don't start inside a word.
        word = _token_patterns()[1].match(text, begin - 1)
        if word is not None and word.end() > begin:
            begin = word.end()
    window = text[begin : first[1] + 4 * max_bytes]
    more_after = begin + len(window) < len(text)
    window = _WHITESPACE.sub(" ", window).strip()
    pieces = _marked(window, _merged(_matches(window, terms)))
    head = ELLIPSIS if begin > 0 else ""
    budget = max_bytes - _size(head)
    whole = _render(pieces)
    if _size(whole) <= budget and not more_after:
        return head + whole
    budget -= _size(ELLIPSIS)
    rendered = [head]
    for piece, mark in pieces:
        chunk = _render([(piece, mark)])
        if _size(chunk) <= budget:
            rendered.append(chunk)
            budget -= _size(chunk)
            continue
        # The piece that doesn't fit: as many characters as do (an entity is never cut).
        room = budget - (_size("<mark></mark>") if mark else 0)
        partial = []
        for char in piece:
            escaped = html.escape(char, quote=False)
            if _size(escaped) > room:
                break
            partial.append(escaped)
            room -= _size(escaped)
        if partial:
            rendered.append("<mark>" + "".join(partial) + "</mark>" if mark else "".join(partial))
        break
    rendered.append(ELLIPSIS)
    return "".join(rendered)
