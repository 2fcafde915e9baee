"""Every message of the shared MIME corpus parses (LF and CRLF), quickly and sanely."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from groupware.mail.mime import BodyPart, ParsedMessage, body_value, parse_message, part_content

CORPUS = Path("/work/shared/corpus/mime")
FILES = sorted(CORPUS.glob("*/*.eml"))


def test_the_corpus_is_there():
    assert len(FILES) == 107


def _variants(raw: bytes) -> dict[str, bytes]:
    lf = raw.replace(b"\r\n", b"\n")
    return {"as-is": raw, "lf": lf, "crlf": lf.replace(b"\n", b"\r\n")}


def _check_structure(parsed: ParsedMessage, raw: bytes) -> None:
    structure = parsed.body_structure
    assert structure is not None
    part_ids: list[str] = []
    for part in structure.walk():
        assert isinstance(part, BodyPart)
        assert part.type and part.type == part.type.lower() and "/" in part.type
        assert 0 <= part.start <= part.body_start <= part.body_end <= len(raw)
        if part.sub_parts is None:
            # §4.1.4: partId is null if and only if the part is multipart/*.
            assert part.part_id is not None and not part.type.startswith("multipart/")
            part_ids.append(part.part_id)
            assert len(part_content(raw, part)) == part.size
        else:
            assert part.part_id is None and part.type.startswith("multipart/")
    assert len(part_ids) == len(set(part_ids))
    listed = parsed.text_body + parsed.html_body + parsed.attachments
    assert all(part.sub_parts is None for part in listed)
    assert {part.part_id for part in listed} <= set(part_ids)
    body_types = {part.type for part in parsed.text_body + parsed.html_body}
    assert all(
        type_ in ("text/plain", "text/html") or type_.startswith(("image/", "audio/", "video/")) for type_ in body_types
    )
    assert len(parsed.preview) <= 256
    assert parsed.size == len(raw)


@pytest.mark.parametrize("path", FILES, ids=[f"{path.parent.name}/{path.name}" for path in FILES])
def test_corpus_message(path):
    for variant, raw in _variants(path.read_bytes()).items():
        started = time.process_time()
        parsed = parse_message(raw)
        elapsed = time.process_time() - started
        assert elapsed < 1.0, f"{variant}: {elapsed:.2f}s"
        assert "internal parser error" not in parsed.defects, variant
        _check_structure(parsed, raw)
        # Stored as JSON and read back, it is the same parse.
        stored = json.loads(json.dumps(parsed.to_dict()))
        assert ParsedMessage.from_dict(stored).to_dict() == stored
        for part in parsed.body_structure.leaves():  # type: ignore[union-attr]
            if part.type.startswith("text/"):
                value = body_value(raw, part, 100)
                assert len(value["value"].encode()) <= 100
                json.dumps(value)


def test_corpus_lf_and_crlf_have_the_same_shape():
    for path in FILES:
        variants = _variants(path.read_bytes())
        shapes = []
        for raw in (variants["lf"], variants["crlf"]):
            parsed = parse_message(raw)
            shapes.append(
                (
                    [(part.part_id, part.type, part.name, part.disposition) for part in parsed.body_structure.walk()],  # type: ignore[union-attr]
                    [part.part_id for part in parsed.text_body],
                    [part.part_id for part in parsed.html_body],
                    [part.part_id for part in parsed.attachments],
                    parsed.subject,
                    parsed.from_,
                    parsed.message_id,
                )
            )
        assert shapes[0] == shapes[1], path


@pytest.mark.parametrize(
    ("name", "subject", "from_"),
    [
        ("legacy/001.eml", "Die Hasen und die Frösche (Microsoft Outlook 00)", None),
        ("thirdparty/010.eml", "こんにちは", None),
        ("malformed/015.eml", "Hello world", [{"name": "Test User", "email": "test@example.org"}]),
    ],
)
def test_corpus_headers(name, subject, from_):
    parsed = parse_message((CORPUS / name).read_bytes())
    assert parsed.subject == subject
    if from_ is not None:
        assert parsed.from_ == from_


def test_corpus_attached_message_parses_on_its_own():
    # Email/parse of an attached message: the part's content is a message itself.
    raw = (CORPUS / "thirdparty" / "008.eml").read_bytes()
    parsed = parse_message(raw)
    attached = next(part for part in parsed.attachments if part.type == "message/rfc822")
    inner = parse_message(part_content(raw, attached))
    assert inner.subject == "submsg"
    assert inner.body_structure is not None and inner.body_structure.type == "multipart/alternative"
    # alternative(html, alternative(alternative(text, text), text)), by the §4.1.4 algorithm:
    assert [part.part_id for part in inner.text_body] == ["2", "3", "4"]
    assert [part.part_id for part in inner.html_body] == ["1", "2", "3"]
