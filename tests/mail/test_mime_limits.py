"""Hostile shapes: part count, nesting depth, boundaries and sizes stay bounded."""

from __future__ import annotations

import json
import random
import time

import orjson
import pytest

from groupware.mail.mime import MAX_DEPTH, MAX_PARTS, body_value, parse_message, part_content

MB = 1_000_000


def timed(raw: bytes, limit: float):
    # CPU time of this process (a guard against runaway parsing that other work on the
    # machine can't trip).
    started = time.process_time()
    parsed = parse_message(raw)
    elapsed = time.process_time() - started
    assert elapsed < limit, f"{elapsed:.2f}s"
    json.dumps(parsed.to_dict())
    return parsed


def test_ten_thousand_parts():
    raw = b"Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    raw += b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(10_000))
    raw += b"--b--\r\n"
    parsed = timed(raw, 3.0)
    leaves = list(parsed.body_structure.leaves())  # type: ignore[union-attr]
    # The root and 9,999 parts are read; the 10,000th would be entity 10,001.
    assert len(leaves) == MAX_PARTS - 1
    assert parsed.truncated is True and any("parts" in defect for defect in parsed.defects)
    assert body_value(raw, leaves[-1])["value"] == f"part {MAX_PARTS - 2}"
    assert [part.part_id for part in parsed.text_body][:3] == ["1", "2", "3"]


def test_under_the_part_limit_is_not_truncated():
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    raw += b"".join(b"--b\r\n\r\n%d\r\n" % i for i in range(1000)) + b"--b--\r\n"
    parsed = timed(raw, 1.0)
    assert parsed.truncated is False and len(parsed.text_body) == 1000


def _nested(depth: int) -> bytes:
    raw = b"Subject: deep\r\n"
    for level in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
    raw += b"Content-Type: text/plain\r\n\r\nthe bottom\r\n"
    raw += b"".join(b"--b%d--\r\n" % level for level in reversed(range(depth)))
    return raw


def test_two_hundred_levels_deep():
    raw = _nested(200)
    parsed = timed(raw, 2.0)
    assert parsed.truncated is True and any("deeper" in defect for defect in parsed.defects)
    depth, part = 0, parsed.body_structure
    while part is not None and part.sub_parts:
        depth, part = depth + 1, part.sub_parts[0]
    assert depth == MAX_DEPTH  # the multipart at the limit is kept, empty
    assert part is not None and part.type == "multipart/mixed" and part.sub_parts == []
    # orjson (the API's encoder) refuses more than 255 levels: a part is 2 levels, and
    # the structure still fits inside a JMAP response.
    response = {
        "methodResponses": [["Email/get", {"list": [{"bodyStructure": parsed.to_dict()["bodyStructure"]}]}, "0"]]
    }
    orjson.dumps(response)


def test_hundred_levels_is_fine():
    parsed = timed(_nested(MAX_DEPTH), 2.0)
    assert parsed.truncated is False
    assert [part_content(_nested(MAX_DEPTH), part) for part in parsed.text_body] == [b"the bottom"]


def test_many_distinct_boundaries():
    # Each part opens a multipart of its own boundary: more boundary sets than the
    # compiled patterns allowed, then lines that all look like delimiters.
    raw = b"Content-Type: multipart/mixed; boundary=top\r\n\r\n"
    part = b"--top\r\nContent-Type: multipart/mixed; boundary=u%d\r\n\r\n--u%d\r\n\r\nx\r\n--u%d--\r\n"
    raw += b"".join(part % (i, i, i) for i in range(2000))
    raw += b"--top\r\nContent-Type: multipart/mixed; boundary=last\r\n\r\n--last\r\n\r\n" + b"--\r\n" * 1_000_000
    parsed = timed(raw, 5.0)
    assert len(parsed.text_body) == 2001


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("delimiter lines", b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\n" * (10 * MB // 4)),
        ("dash lines", b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--\n" * (10 * MB // 3)),
        ("header fields", b"".join(b"X-H%d: v\n" % (i % 100) for i in range(10 * MB // 9)) + b"\nbody"),
        ("one long header", b"Subject: " + b"a " * (5 * MB) + b"\n\nbody"),
        ("long address list", b"To: " + b"a@b.c, " * (10 * MB // 7) + b"\n\nbody"),
        ("open quotes", b"To: " + b'"a' * (5 * MB) + b"\n\nbody"),
        ("open comments", b"To: " + b"(a" * (5 * MB) + b"\n\nbody"),
        ("encoded words", b"Subject: " + b"=?utf-8?q?a?= " * (10 * MB // 14) + b"\n\nbody"),
        ("continuation lines", b"Subject: a\n" + b" b\n" * (10 * MB // 3) + b"\nbody"),
        ("open tags", b"Content-Type: text/html\n\n" + b"<a " * (10 * MB // 3)),
        ("open scripts", b"Content-Type: text/html\n\n" + b"<script>" * (10 * MB // 8)),
        ("base64", b"Content-Transfer-Encoding: base64\n\n" + b"QUJD\n" * (10 * MB // 5)),
        ("base64 junk", b"Content-Transfer-Encoding: base64\n\n" + b"=!=" * (10 * MB // 3)),
        ("quoted-printable", b"Content-Transfer-Encoding: quoted-printable\n\n" + b"a=3D \n" * (10 * MB // 6)),
        ("empty lines", b"Subject: a\n\n" + b"\n" * (10 * MB)),
        ("parameters", b"Content-Type: text/plain" + b"; a*1*=x" * (MB) + b"\n\nbody"),
        ("date", b"Date: " + b"1 " * (5 * MB) + b"\n\nbody"),
        ("nul", b"Subject: \x00\n\n" + b"\x00" * (10 * MB)),
    ],
)
def test_ten_megabytes_of_hostile_input(name, raw):
    timed(raw, 5.0)


def test_random_messages_never_raise():
    pieces = [
        b"--b", b"\r\n", b"\n", b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: multipart/mixed; boundary=c", b"--c", b"--", b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable", b"=",
        b"x", b":", b" ", b"\xff", b"Content-Type: text/html", b"<a", b"Content-Type: message/rfc822",
        b"Content-Disposition: attachment; filename*0*=utf-8''%FF", b"Content-Type: multipart/digest; boundary=b",
    ]  # fmt: skip
    chooser = random.Random(2046)
    for _ in range(2000):
        raw = b"".join(chooser.choice(pieces) for _ in range(chooser.randint(0, 80)))
        parsed = parse_message(raw)
        assert "internal parser error" not in parsed.defects, raw
        for part in parsed.body_structure.leaves():  # type: ignore[union-attr]
            value = body_value(raw, part, chooser.randint(0, 50))
            json.dumps(value)
