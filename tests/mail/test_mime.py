"""parse_message, part_content and body_value (RFC 8621 §4.1) on built messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from groupware.mail.mime import BodyPart, ParsedMessage, body_value, html_to_text, parse_message, part_content

CORPUS = Path("/work/shared/corpus/mime")


def crlf(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def letters(parsed: ParsedMessage, raw: bytes, parts: list[BodyPart]) -> list[str]:
    """The one-letter content of each part (the RFC 8621 §4.1.4 example's A..K)."""
    return [part_content(raw, part).decode().strip().splitlines()[-1].replace("<html>", "")[:1] for part in parts]


# -- The RFC 8621 §4.1.4 example -------------------------------------------------------------------------


def test_rfc_body_part_example():
    # multipart/mixed with A, (alternative of (mixed B C D) and (related E F)), G, H, J, K.
    raw = (CORPUS / "rfc" / "007.eml").read_bytes()
    for variant in (raw, crlf(raw)):
        parsed = parse_message(variant)
        assert letters(parsed, variant, parsed.text_body) == ["A", "B", "C", "D", "K"]
        assert letters(parsed, variant, parsed.html_body) == ["A", "E", "K"]
        assert letters(parsed, variant, parsed.attachments) == ["C", "F", "G", "H", "J"]
        assert parsed.has_attachment is True
        assert parsed.preview == "A B D K"


# -- Structure and the flat lists ---------------------------------------------------------------------------

MIXED = crlf(
    "From: Joe Bloggs <joe@example.com>\n"
    "To: alice@example.com\n"
    "Subject: =?UTF-8?Q?Caf=C3=A9?= plans\n"
    "Date: Tue, 10 Jul 2018 11:03:11 +1000\n"
    "Message-ID: <m1@example.com>\n"
    "In-Reply-To: <m0@example.com>\n"
    "References: <r@example.com> <m0@example.com>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "preamble, ignored\n"
    "--outer\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Plain caf=C3=A9 =\n"
    "text.\n"
    "--inner\n"
    'Content-Type: multipart/related; boundary="rel"; type="text/html"\n'
    "\n"
    "--rel\n"
    "Content-Type: text/html; charset=iso-8859-1\n"
    "\n"
    '<html><head><style>p {color: red}</style></head><body><p>HTML caf\xe9</p><img src="cid:logo@x"></body></html>\n'
    "--rel\n"
    "Content-Type: image/png\n"
    "Content-ID: <logo@x>\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "iVBORw0KGgo=\n"
    "--rel--\n"
    "--inner--\n"
    "--outer\n"
    'Content-Type: application/pdf; name="ignored.pdf"\n'
    'Content-Disposition: attachment; filename="report.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: inner@example.com\n"
    "Subject: forwarded\n"
    "Content-Type: multipart/mixed; boundary=deep\n"
    "\n"
    "--deep\n"
    "\n"
    "inside\n"
    "--deep--\n"
    "--outer--\n"
    "epilogue, ignored\n".encode("latin-1")
)


def test_structure_and_lists():
    parsed = parse_message(MIXED)
    structure = parsed.body_structure
    assert structure is not None and structure.type == "multipart/mixed" and structure.part_id is None
    alternative, pdf, message = structure.sub_parts
    assert alternative.type == "multipart/alternative"
    plain, related = alternative.sub_parts
    html, image = related.sub_parts
    assert [plain.part_id, html.part_id, image.part_id, pdf.part_id, message.part_id] == ["1", "2", "3", "4", "5"]
    assert plain.type == "text/plain" and plain.charset == "utf-8"
    assert html.charset == "iso-8859-1"
    assert image.cid == "logo@x" and image.disposition is None
    assert pdf.name == "report.pdf"  # Content-Disposition's filename wins over name
    assert pdf.size == 9 and part_content(MIXED, pdf) == b"%PDF-1.4\n"
    # message/rfc822 is a leaf: not recursed into (§4.1.4 bodyStructure).
    assert message.type == "message/rfc822" and message.sub_parts is None
    assert part_content(MIXED, message).startswith(b"From: inner@example.com\r\n")
    assert parsed.text_body == [plain]
    assert parsed.html_body == [html]
    assert parsed.attachments == [image, pdf, message]
    # hasAttachment: the image is shown by the HTML (cid:), the PDF is an attachment.
    assert parsed.has_attachment is True
    assert [header.name for header in plain.headers] == ["Content-Type", "Content-Transfer-Encoding"]
    assert plain.headers[0].value == " text/plain; charset=utf-8"


def test_convenience_properties():
    parsed = parse_message(MIXED)
    assert parsed.subject == "Café plans"
    assert parsed.from_ == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert parsed.to == [{"name": None, "email": "alice@example.com"}]
    assert parsed.cc is None and parsed.bcc is None and parsed.sender is None and parsed.reply_to is None
    assert parsed.message_id == ["m1@example.com"]
    assert parsed.in_reply_to == ["m0@example.com"]
    assert parsed.references == ["r@example.com", "m0@example.com"]
    assert parsed.sent_at is not None and parsed.sent_at.isoformat() == "2018-07-10T11:03:11+10:00"
    assert parsed.size == len(MIXED)
    assert [header.name for header in parsed.headers][:3] == ["From", "To", "Subject"]
    assert parsed.headers[2].value == " =?UTF-8?Q?Caf=C3=A9?= plans"


def test_body_values_and_text():
    parsed = parse_message(MIXED)
    plain, html = parsed.text_body[0], parsed.html_body[0]
    # The line end before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    assert body_value(MIXED, plain) == {"value": "Plain café text.", "isEncodingProblem": False, "isTruncated": False}
    value = body_value(MIXED, html)
    assert value["value"].startswith("<html><head><style>") and "HTML café" in value["value"]
    assert value["isEncodingProblem"] is False
    assert parsed.preview == "Plain café text."
    assert parsed.search_text["body"] == "Plain café text."
    assert parsed.search_text["subject"] == "Café plans"
    assert parsed.search_text["from"] == "Joe Bloggs joe@example.com"
    assert "report.pdf" in parsed.search_text["attachments"]
    assert "Subject: Café plans" in parsed.search_text["headers"]


def test_lf_and_crlf_parse_alike():
    lf = MIXED.replace(b"\r\n", b"\n")
    one, other = parse_message(lf), parse_message(MIXED)
    assert one.to_dict()["textBody"] == other.to_dict()["textBody"]

    def shape(parsed: ParsedMessage) -> list:
        assert parsed.body_structure is not None
        return [(p.part_id, p.type, p.name, p.charset, p.cid) for p in parsed.body_structure.walk()]

    assert shape(one) == shape(other)
    assert [body_value(lf, part)["value"] for part in one.text_body] == [
        body_value(MIXED, part)["value"] for part in other.text_body
    ]


def test_to_dict_round_trip_and_dict_parts():
    parsed = parse_message(MIXED)
    data = json.loads(json.dumps(parsed.to_dict()))
    assert data["textBody"] == ["1"] and data["htmlBody"] == ["2"] and data["attachments"] == ["3", "4", "5"]
    assert data["sentAt"] == "2018-07-10T11:03:11+10:00"
    assert data["headers"][0] == {"name": "From", "value": " Joe Bloggs <joe@example.com>"}
    again = ParsedMessage.from_dict(data)
    assert again.to_dict() == parsed.to_dict()
    assert again.text_body[0] is again.part("1")
    # The stored (dict) form of a part reads content the same as the part itself.
    stored = data["bodyStructure"]["subParts"][1]
    assert stored["partId"] == "4" and "blobId" not in stored
    assert part_content(MIXED, stored) == b"%PDF-1.4\n"
    plain = data["bodyStructure"]["subParts"][0]["subParts"][0]
    assert body_value(MIXED, plain)["value"] == "Plain café text."
    assert ParsedMessage.from_dict({}).body_structure is None


def test_single_part_message():
    raw = crlf("Subject: hi\n\nJust text.\n")
    parsed = parse_message(raw)
    assert parsed.body_structure is not None
    assert parsed.body_structure.part_id == "1" and parsed.body_structure.type == "text/plain"
    assert parsed.body_structure.charset == "us-ascii"  # implicit (RFC 2045 §5.2)
    assert parsed.text_body == parsed.html_body == [parsed.body_structure]
    assert parsed.attachments == [] and parsed.has_attachment is False
    assert body_value(raw, parsed.body_structure)["value"] == "Just text.\n"


def test_headers_only_and_empty():
    assert parse_message(b"Subject: x\r\n").body_structure.size == 0  # type: ignore[union-attr]
    empty = parse_message(b"")
    assert empty.headers == [] and empty.body_structure is not None and empty.size == 0
    text = parse_message(b"not a header line\nat all\n")
    assert text.headers == [] and text.preview == "not a header line at all"


def test_mbox_from_line_is_skipped():
    parsed = parse_message(b"From joe@example.com Tue Jul 10 11:03:11 2018\nSubject: mbox\n\nbody\n")
    assert parsed.subject == "mbox"


def test_inline_and_attached_images():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nLook:\n"
        "--b\nContent-Type: image/jpeg\nContent-Disposition: inline\n\nJPEG\n"
        "--b\nContent-Type: text/plain\n\nmore text\n"
        "--b\nContent-Type: image/gif; name=a.gif\nContent-Disposition: attachment\n\nGIF\n"
        "--b\nContent-Type: text/plain; name=notes.txt\n\nnamed text\n"
        "--b--\n"
    )
    parsed = parse_message(raw)
    assert letters(parsed, raw, parsed.text_body) == ["L", "J", "m"]
    assert letters(parsed, raw, parsed.html_body) == ["L", "J", "m"]
    # §4.1.4: a named text part that isn't first is an attachment; an inline image in
    # both body lists isn't one.
    assert letters(parsed, raw, parsed.attachments) == ["G", "n"]
    assert parsed.has_attachment is True


def test_inline_only_is_not_has_attachment():
    raw = crlf(
        "Content-Type: multipart/related; boundary=b\n\n"
        "--b\nContent-Type: text/html\n\n<img src=cid:pic>\n"
        "--b\nContent-Type: image/png\nContent-ID: <pic>\n\nPNG\n"
        "--b\nContent-Type: image/png\nContent-Disposition: inline\n\nPNG\n"
        "--b--\n"
    )
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 2 and parsed.has_attachment is False


def test_digest_default_type():
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n"
        "--d\n\nSubject: one\n\nfirst\n"
        "--d\nContent-Type: text/plain\n\nexplicit\n"
        "--d--\n"
    )
    first, second = parse_message(raw).body_structure.sub_parts  # type: ignore[union-attr,misc]
    assert first.type == "message/rfc822" and first.charset is None
    assert second.type == "text/plain"


# -- Charsets and encodings ------------------------------------------------------------------------


def one_part(headers: str, body: bytes) -> tuple[bytes, BodyPart]:
    raw = crlf(headers.encode() + b"\n\n") + body
    parsed = parse_message(raw)
    assert parsed.body_structure is not None
    return raw, parsed.body_structure


@pytest.mark.parametrize(
    ("headers", "body", "value", "problem"),
    [
        ("Content-Type: text/plain", b"caf\xc3\xa9", "café", False),  # 8-bit, no charset: UTF-8 guess
        ("Content-Type: text/plain; charset=us-ascii", b"caf\xe9", "café", True),  # not UTF-8: windows-1252
        ("Content-Type: text/plain; charset=utf-8", b"bad \xff", "bad \ufffd", True),
        ("Content-Type: text/plain; charset=x-nonsense", b"hello", "hello", True),  # unknown charset
        ("Content-Type: text/plain; charset=ISO-8859-1", b"caf\xe9", "café", False),
        ('Content-Type: text/plain; charset="koi8-r"', "Привет".encode("koi8-r"), "Привет", False),
        ("Content-Type: text/plain; charset=shift_jis", "日本語".encode("shift_jis"), "日本語", False),
        ("Content-Type: text/plain; charset=utf-16", "hi".encode("utf-16"), "hi", False),
        ("Content-Type: text/plain; charset=base64", b"aGk=", "aGk=", True),  # not a charset
        ("Content-Type: text/plain\nContent-Transfer-Encoding: x-custom", b"as is", "as is", True),
        ("Content-Type: text/plain\nContent-Transfer-Encoding: base64", b"aGVsbG8=\r\n", "hello", False),
        ("Content-Type: text/plain\nContent-Transfer-Encoding: BASE64", b"aGVs\r\nbG8", "hello", False),
        ("Content-Type: text/plain\nContent-Transfer-Encoding: base64", b"aGVs!!bG8=", "hello", True),  # junk
        ("Content-Type: text/plain\nContent-Transfer-Encoding: base64", b"aGVsbG8=d29ybGQ=", "helloworld", False),
        ("Content-Type: text/plain\nContent-Transfer-Encoding: base64", b"aGVsbG8gd", "hello ", True),
        (
            "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable",
            b"a=3Db =\r\nc  \r\nd=ZZ",
            "a=b c\nd=ZZ",
            False,
        ),
        (
            "Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode",
            b"begin 644 f\r\n%:&5L;&\\`\r\n`\r\nend\r\n",
            "hello",
            False,
        ),
        ("Content-Type: text/plain", b"line1\r\nline2\r\n", "line1\nline2\n", False),  # CRLF -> LF
    ],
)
def test_body_value_decoding(headers, body, value, problem):
    raw, part = one_part(headers, body)
    result = body_value(raw, part)
    assert result["value"] == value
    assert result["isEncodingProblem"] is problem
    assert result["isTruncated"] is False


def test_size_is_decoded_size():
    raw, part = one_part("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64", b"AAECAwQF\r\n")
    assert part.size == 6 and part_content(raw, part) == bytes(range(6))
    assert part.charset is None  # not text/*, no charset parameter


# -- Truncation (RFC 8621 §4.2 maxBodyValueBytes) ---------------------------------------------------------


@pytest.mark.parametrize("text", ["é" * 40, "日本語のテキスト" * 5, "😀" * 20, "aé日😀" * 10])
def test_truncation_on_character_boundaries(text):
    raw, part = one_part("Content-Type: text/plain; charset=utf-8", text.encode())
    full = text.encode()
    for limit in range(1, len(full) + 2):
        value = body_value(raw, part, limit)
        encoded = value["value"].encode()
        assert len(encoded) <= limit
        assert full.startswith(encoded)  # a prefix, never a broken character
        assert value["isTruncated"] is (limit < len(full))
        assert len(full[: limit + 1].decode("utf-8", "ignore").encode()) >= len(encoded)  # as long as possible
    assert body_value(raw, part, 0)["isTruncated"] is False  # 0: no truncation
    assert body_value(raw, part, None)["value"] == text


def test_truncation_counts_bytes_of_utf8_not_source_octets():
    raw, part = one_part("Content-Type: text/plain; charset=iso-8859-1", b"\xe9" * 10)
    value = body_value(raw, part, 5)
    assert value["value"] == "éé" and value["isTruncated"] is True


def test_html_is_not_cut_inside_a_tag():
    raw, part = one_part("Content-Type: text/html", b'<p>Hello <a href="https://example.com/">there</a></p>')
    value = body_value(raw, part, 20)
    assert value["value"] == "<p>Hello " and value["isTruncated"] is True
    assert body_value(raw, part, 9)["value"] == "<p>Hello "


# -- Headers in the wild ---------------------------------------------------------------------------


def test_8bit_headers():
    raw = (
        b"From: J\xc3\xb6ran <j\xc3\xb6ran@ex\xc3\xa4mple.se>\r\n"
        b"Subject: caf\xc3\xa9 \xe9t\xe9\r\n"
        b"X-Nul: a\x00b\r\n"
        b"\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_ == [{"name": "Jöran", "email": "jöran@exämple.se"}]  # RFC 6532
    assert parsed.subject == "café \ufffdt\ufffd"  # §4.1.2.1: not UTF-8 -> U+FFFD
    assert parsed.headers[2].value == " ab"  # NUL dropped


def test_folded_and_odd_headers():
    raw = crlf(
        "Subject: a long\n   folded subject\n"
        "X-Empty:\n"
        "X-Spaced : value\n"
        "Content-Type: text/plain;\n charset=utf-8\n"
        "\nbody"
    )
    parsed = parse_message(raw)
    assert parsed.headers[0].value == " a long\r\n   folded subject"
    assert parsed.subject == "a long   folded subject"
    assert parsed.headers[1] == ("X-Empty", "")
    assert parsed.headers[2] == ("X-Spaced", " value")  # obs: white space before the colon
    assert parsed.body_structure.charset == "utf-8"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content_headers", "name"),
    [
        ('Content-Disposition: attachment; filename="simple.txt"', "simple.txt"),
        ("Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf", "naïve résumé.pdf"),
        ("Content-Disposition: attachment; filename*=iso-8859-1'en'%E9t%E9.txt", "été.txt"),
        (
            "Content-Disposition: attachment;\n filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;\n filename*1*=%E8%AA%9E;\n"
            ' filename*2=".txt"',
            "日本語.txt",
        ),
        ('Content-Disposition: attachment;\n filename*1="two.txt";\n filename*0="part-"', "part-two.txt"),
        ('Content-Disposition: attachment; filename="=?UTF-8?B?w6l0w6kudHh0?="', "été.txt"),  # RFC 2047 in a value
        ('Content-Disposition: inline; filename="C:\\TEMP\\x.png"', "C:\\TEMP\\x.png"),
        ('Content-Disposition: attachment; filename="quo\\"ted.txt"', 'quo"ted.txt'),
        ("Content-Disposition: attachment; filename=", None),
    ],
)
def test_rfc2231_and_other_names(content_headers, name):
    _raw, part = one_part("Content-Type: application/octet-stream\n" + content_headers, b"x")
    assert part.name == name


def test_name_from_content_type():
    _raw, part = one_part('Content-Type: application/pdf; name="from-type.pdf"', b"x")
    assert part.name == "from-type.pdf"


def test_part_properties():
    _raw, part = one_part(
        'Content-Type: Text/HTML (comment) ; CHARSET="UTF-8"\n'
        "Content-Disposition: INLINE\n"
        "Content-ID: (cid) < part1@example.com >\n"
        "Content-Language: en, fr (comment)\n"
        "Content-Location: https://example.com/\n a/b.html",
        b"<p>x</p>",
    )
    assert part.type == "text/html" and part.charset == "UTF-8"
    assert part.disposition == "inline"
    assert part.cid == "part1@example.com"
    assert part.language == ["en", "fr"]
    assert part.location == "https://example.com/a/b.html"


@pytest.mark.parametrize(
    ("content_type", "type_", "charset"),
    [
        ("image/png", "image/png", None),
        ("text/csv", "text/csv", "us-ascii"),
        ("garbage", "text/plain", "us-ascii"),  # RFC 2045 §5.2: invalid means text/plain
        ("text/plain charset=utf-8", "text/plain", "utf-8"),  # missing ";"
        ("multipart/mixed", "text/plain", "us-ascii"),  # no boundary: shown as text
    ],
)
def test_content_type_defaults(content_type, type_, charset):
    _raw, part = one_part("Content-Type: " + content_type, b"body")
    assert (part.type, part.charset) == (type_, charset)


# -- Malformed MIME ---------------------------------------------------------------------------------


def test_unclosed_and_unterminated_multiparts():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n"
        "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
        "--inner\nContent-Type: text/plain\n\nplain\n"
        "--outer\nContent-Type: text/plain\n\nafter\n"
    )  # inner never closed, outer never closed
    parsed = parse_message(raw)
    assert letters(parsed, raw, parsed.text_body) == ["p", "a"]
    assert "multipart closed by an enclosing boundary" in parsed.defects
    assert "multipart not closed" in parsed.defects
    assert parsed.truncated is False


def test_boundary_not_found_shows_the_body_as_text():
    raw = crlf("Content-Type: multipart/mixed; boundary=nope\n\n--other\n\nhello\n")
    parsed = parse_message(raw)
    assert parsed.body_structure.type == "text/plain"  # type: ignore[union-attr]
    assert "hello" in parsed.preview


def test_reused_boundary_does_not_nest():
    # A part declaring its parent's boundary: the delimiters are the parent's.
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=a\n\n"
        "--a\nContent-Type: multipart/mixed; boundary=a\n\n"
        "--a\nContent-Type: text/plain\n\nbody\n"
        "--a--\n"
    )
    parsed = parse_message(raw)
    nested, text = parsed.body_structure.sub_parts  # type: ignore[union-attr,misc]
    assert nested.type == "multipart/mixed" and nested.sub_parts == []
    assert body_value(raw, text)["value"] == "body"


def test_html_to_text():
    source = (
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<script>alert(1)</script><!-- note --><p>One&nbsp;&amp; two</p><div>Three<br>Four</div>"
        "<table><tr><td>a</td><td>b</td></tr></table><p>unclosed <b>tag"
    )
    assert html_to_text(source) == "One & two\nThree\nFour\na b\nunclosed tag"
    assert html_to_text("<script>never closed") == ""


def test_preview_skips_quotes_and_is_short():
    raw = crlf("Subject: x\n\n> quoted line\n>> more\nActual   reply\n\n\ttext " + "word " * 100 + "\n")
    preview = parse_message(raw).preview
    assert preview.startswith("Actual reply text word") and len(preview) <= 256
    only_html = crlf("Content-Type: text/html\n\n<p>Only <b>HTML</b></p>")
    assert parse_message(only_html).preview == "Only HTML"
    emoji = crlf("Content-Type: text/plain; charset=utf-8\n\n") + "😀".encode() * 300
    assert len(parse_message(emoji).preview.encode("utf-16-le")) <= 512  # 256 UTF-16 units


def test_base64_encoded_html_is_checked_for_cid_references():
    html = base64.b64encode(b'<img src="cid:pic@x">').decode()
    raw = crlf(
        "Content-Type: multipart/related; boundary=b\n\n"
        f"--b\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n{html}\n"
        "--b\nContent-Type: image/png\nContent-ID: <pic@x>\n\nPNG\n"
        "--b--\n"
    )
    assert parse_message(raw).has_attachment is False


def test_transfer_encoding_with_comment_and_case():
    raw, part = one_part("Content-Type: text/plain\nContent-Transfer-Encoding: Base64 (encoded)", b"aGk=")
    assert part.encoding == "base64" and body_value(raw, part)["value"] == "hi"


def test_a_parser_bug_still_stores_the_message(monkeypatch, caplog):
    from groupware.mail import mime

    def broken(raw, state):
        raise RuntimeError("bug")

    monkeypatch.setattr(mime, "_parse_structure", broken)
    raw = crlf("Subject: still here\n\nthe body\n")
    parsed = mime.parse_message(raw)
    assert "internal parser error" in parsed.defects
    assert parsed.subject == "still here"
    assert [body_value(raw, part)["value"] for part in parsed.text_body] == ["the body\n"]


def _tidy_by_lines(text: str) -> str:
    """What the index and the preview read of a text part, step by step: every run of
    horizontal white space (space, tab, CR, FF, VT, no-break space) one space, every line
    stripped, runs of blank lines one blank line, the ends stripped."""
    import re

    text = re.sub(
        "[ \t\r\f\v\u00a0]+", lambda run: run.group() if run.group() == " " else " ", text.replace("\r\n", "\n")
    )
    lines = [line.strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def test_text_tidying_equals_the_line_by_line_reading():
    """The tidying the parse does in a few C passes is the line-by-line reading, on random
    strings of the characters that matter (white space of every kind, line breaks,
    letters) and on the text parts of generated messages."""
    import random

    from groupware.mail.mime import _tidy

    rng = random.Random(7)
    alphabet = " \t\r\n\f\v\u00a0\u2003\u3000ab.>é\u200b\x85\u2028"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert _tidy(text) == _tidy_by_lines(text), repr(text)
    sample = "Dear  all,\r\n\r\n\r\n\tthe\u00a0\u00a0plan:\r\n  - one \r\n\r\n-- \r\nJoe\r\n"
    assert _tidy(sample) == _tidy_by_lines(sample) == "Dear all,\n\nthe plan:\n- one\n\n--\nJoe"
