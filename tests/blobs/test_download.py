"""Downloading binary data (RFC 8620 §6.2), with HTTP ranges and caching (RFC 9110)."""

from __future__ import annotations

import warnings
from urllib.parse import quote, unquote

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from jmap.blob_views import content_disposition, parse_range
from tests.blobs.conftest import body, download, problem, random_bytes, upload_ok

pytestmark = pytest.mark.django_db

SIZE = 1000


@pytest.fixture
def blob(jmap):
    data = random_bytes(SIZE)
    return upload_ok(jmap, data)["blobId"], data


def test_headers(jmap, blob):
    blob_id, data = blob
    response = download(jmap, blob_id, "report.pdf", accept="application/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Length"] == str(SIZE)
    assert response["Content-Disposition"] == "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    assert response["Cache-Control"] == "private, immutable, max-age=31536000"
    assert response["ETag"] == f'"{blob_id[1:]}"'
    assert response["Accept-Ranges"] == "bytes"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body(response) == data


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("nonsense", "application/octet-stream"),
        ("text/html\r\nSet-Cookie: a=b", "application/octet-stream"),
        ("image/png\x00", "application/octet-stream"),
        ("a/" + "b" * 300, "application/octet-stream"),
    ],
)
def test_accept_sets_the_type_or_falls_back(jmap, blob, accept, expected):
    response = download(jmap, blob[0], accept=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == expected
    assert not response.cookies


def test_session_download_url_works(jmap, blob):
    template = jmap.session()["downloadUrl"].removeprefix("http://testserver")
    url = (
        template.replace("{accountId}", jmap.account_id)
        .replace("{blobId}", blob[0])
        .replace("{name}", quote("my file.txt", safe=""))
        .replace("{type}", quote("text/plain", safe=""))
    )
    response = jmap.http.get(url, HTTP_AUTHORIZATION=jmap.auth)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain"
    assert "filename*=UTF-8''my%20file.txt" in response["Content-Disposition"]
    assert body(response) == blob[1]


# -- not found ------------------------------------------------------------------------


def test_foreign_blob_looks_like_a_missing_one(jmap, other_jmap):
    theirs = upload_ok(other_jmap, random_bytes(100))["blobId"]
    foreign = download(jmap, theirs)
    missing = download(jmap, "b" + "0" * 64)
    malformed = download(jmap, "nonsense")
    for response in (foreign, missing, malformed):
        assert response.status_code == 404
        assert problem(response)["status"] == 404
    assert foreign.content == missing.content == malformed.content
    # The owner still gets it.
    assert download(other_jmap, theirs).status_code == 200


def test_foreign_account_is_not_found(jmap, other_jmap):
    theirs = upload_ok(other_jmap, random_bytes(100))["blobId"]
    response = download(jmap, theirs, account_id=other_jmap.account_id)
    assert response.status_code == 404
    assert problem(response)["detail"] == "No such account."


def test_authentication_required(jmap, blob):
    response = Client().get(f"/jmap/download/{jmap.account_id}/{blob[0]}/x.bin")
    assert response.status_code == 401


def test_only_get_and_head(jmap, blob):
    url = f"/jmap/download/{jmap.account_id}/{blob[0]}/x.bin"
    assert jmap.http.post(url, b"", content_type="text/plain", HTTP_AUTHORIZATION=jmap.auth).status_code == 405


# -- HEAD and conditional requests ----------------------------------------------------


def test_head(jmap, blob):
    blob_id, _ = blob
    response = download(jmap, blob_id, method="head")
    assert response.status_code == 200
    assert response["Content-Length"] == str(SIZE)
    assert response["ETag"] == f'"{blob_id[1:]}"'
    assert body(response) == b""
    # RFC 9110 §14.2: Range is for GET only.
    response = download(jmap, blob_id, method="head", HTTP_RANGE="bytes=0-9")
    assert response.status_code == 200
    assert response["Content-Length"] == str(SIZE)


def test_head_of_missing_blob(jmap):
    assert download(jmap, "b" + "1" * 64, method="head").status_code == 404


def test_if_none_match(jmap, blob):
    blob_id, _ = blob
    etag = f'"{blob_id[1:]}"'
    for header in (etag, f'"x", W/{etag}', "*"):
        response = download(jmap, blob_id, HTTP_IF_NONE_MATCH=header)
        assert response.status_code == 304
        assert response["ETag"] == etag
        assert body(response) == b""
    assert download(jmap, blob_id, HTTP_IF_NONE_MATCH='"other"').status_code == 200


# -- ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),  # the first bytes
        ("bytes=-10", SIZE - 10, SIZE - 1),  # a suffix
        ("bytes=990-", 990, SIZE - 1),  # an open range
        ("bytes=500-5000", 500, SIZE - 1),  # the end clipped to the blob
        ("bytes=-5000", 0, SIZE - 1),  # a suffix longer than the blob
        ("bytes=999-999", 999, 999),
        ("BYTES = 3 - 4", 3, 4),
    ],
)
def test_single_range(jmap, blob, header, start, end):
    blob_id, data = blob
    response = download(jmap, blob_id, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response["Content-Length"] == str(end - start + 1)
    assert body(response) == data[start : end + 1]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range(jmap, blob, header):
    response = download(jmap, blob[0], HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert problem(response)["status"] == 416


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-y", "bytes=-"])
def test_other_ranges_get_the_whole_blob(jmap, blob, header):
    response = download(jmap, blob[0], HTTP_RANGE=header)
    assert response.status_code == 200
    assert body(response) == blob[1]


def test_if_range(jmap, blob):
    blob_id, data = blob
    response = download(jmap, blob_id, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE=f'"{blob_id[1:]}"')
    assert response.status_code == 206
    assert body(response) == data[:2]
    response = download(jmap, blob_id, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"stale"')
    assert response.status_code == 200
    assert body(response) == data


def test_range_of_empty_blob(jmap):
    blob_id = upload_ok(jmap, b"")["blobId"]
    response = download(jmap, blob_id, HTTP_RANGE="bytes=0-")
    assert response.status_code == 200
    assert body(response) == b""


def test_parse_range():
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=0-", 0) is None
    assert parse_range("bytes=1-", 1) == "unsatisfiable"
    assert parse_range("bytes=" + "9" * 40 + "-", 10) == "unsatisfiable"


# -- Content-Disposition --------------------------------------------------------------


def _filename_star(header: str) -> str:
    value = header.split("filename*=", 1)[1]
    assert value.startswith("UTF-8''")
    return unquote(value.removeprefix("UTF-8''"), encoding="utf-8", errors="strict")


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("Résumé 日本.pdf", "Resume __.pdf"),
        ('say "hi".txt', "say 'hi'.txt"),
        ("back\\slash.txt", "back_slash.txt"),
        ("a\r\nSet-Cookie: x=y\r\n.txt", "aSet-Cookie: x=y.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("dir/name.txt", "dir/name.txt"),
        ("日本", "__"),
        ("\r\n", "download"),
        ("100% done;x=y.txt", "100% done;x=y.txt"),
    ],
)
def test_content_disposition_keeps_the_name_and_injects_nothing(jmap, blob, name, fallback):
    response = download(jmap, blob[0], quote(name, safe=""))
    assert response.status_code == 200
    header = response["Content-Disposition"]
    assert "\r" not in header and "\n" not in header
    assert header.startswith(f'attachment; filename="{fallback}"; filename*=')
    # RFC 8620 §6.2: the name MUST be the filename (exactly, in filename*).
    assert _filename_star(header) == name
    assert "Set-Cookie" not in response
    assert not response.cookies


def test_content_disposition_is_all_ascii():
    header = content_disposition("ü" * 10 + "\x00\x7f\u0085")
    header.encode("ascii")
    assert _filename_star(header) == "ü" * 10 + "\x00\x7f\u0085"


# -- ASGI -----------------------------------------------------------------------------


def _asgi_get(jmap, path: str, **headers: str):
    client = AsyncClient()
    response = async_to_sync(client.get)(path, headers={"authorization": jmap.auth, **headers})

    async def consume():
        return b"".join([chunk async for chunk in response.streaming_content])

    content = async_to_sync(consume)() if response.streaming else response.content
    return response, content


def test_asgi_download_streams(jmap):
    data = random_bytes(300_000)
    blob_id = upload_ok(jmap, data)["blobId"]
    path = f"/jmap/download/{jmap.account_id}/{blob_id}/x.bin?accept=image/png"
    with warnings.catch_warnings():
        # Django warns when it has to read a synchronous iterator whole to serve it.
        warnings.simplefilter("error")
        response, content = _asgi_get(jmap, path)
        assert response.status_code == 200
        assert response.is_async
        assert response["Content-Type"] == "image/png"
        assert content == data
        response, content = _asgi_get(jmap, path, range="bytes=100000-100009")
        assert response.status_code == 206
        assert content == data[100000:100010]
