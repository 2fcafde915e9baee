"""Uploading binary data (RFC 8620 §6.1)."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.test.client import FakePayload

from groupware.core.models import AccountBlob, Blob
from jmap import blob_views
from tests.blobs.conftest import body, download, problem, random_bytes, upload, upload_ok
from tests.conftest import basic

pytestmark = pytest.mark.django_db


def test_upload_response_and_round_trip(jmap):
    data = b"hello, blobs\n"
    response = upload(jmap, data, "text/plain")
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    result = orjson.loads(response.content)
    # RFC 8620 §6.1: exactly these four properties.
    assert result == {
        "accountId": jmap.account_id,
        "blobId": "b" + hashlib.sha256(data).hexdigest(),
        "type": "text/plain",
        "size": len(data),
    }
    assert body(download(jmap, result["blobId"])) == data


@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 1024 * 1024, 3 * 1024 * 1024 + 7])
def test_binary_round_trip(jmap, size):
    data = random_bytes(size) if size > 256 else bytes(range(256))[:size]
    result = upload_ok(jmap, data)
    assert result["size"] == size
    response = download(jmap, result["blobId"])
    assert response.status_code == 200
    assert int(response["Content-Length"]) == size
    assert body(response) == data


def test_every_byte_value_survives(jmap):
    data = bytes(range(256)) * 64
    result = upload_ok(jmap, data, "application/x-test")
    assert body(download(jmap, result["blobId"])) == data


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/png", "image/png"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('multipart/mixed; boundary="a b"', 'multipart/mixed; boundary="a b"'),
        ("", "application/octet-stream"),
        ("not a media type", "application/octet-stream"),
        ("text/", "application/octet-stream"),
        ("text/plain" + "; x=y" * 60, "application/octet-stream"),  # longer than the column
    ],
)
def test_type_is_the_request_content_type(jmap, content_type, expected):
    result = upload_ok(jmap, random_bytes(10), content_type)
    assert result["type"] == expected
    assert AccountBlob.objects.get(blob_id=result["blobId"][1:]).type == expected


def test_same_content_twice_gives_the_same_blob(jmap):
    data = random_bytes(1000)
    first = upload_ok(jmap, data, "text/plain")
    second = upload_ok(jmap, data, "application/pdf")
    assert first["blobId"] == second["blobId"]
    assert second["type"] == "application/pdf"  # the type of this upload
    assert AccountBlob.objects.filter(blob_id=first["blobId"][1:]).count() == 1


def test_session_upload_url_works(jmap):
    session = jmap.session()
    url = session["uploadUrl"].replace("{accountId}", jmap.account_id).removeprefix("http://testserver")
    response = jmap.http.post(url, b"via session", content_type="text/plain", HTTP_AUTHORIZATION=jmap.auth)
    assert response.status_code == 201


# -- limits ---------------------------------------------------------------------------


def test_max_size_upload(jmap, limits):
    limits["maxSizeUpload"] = 1000
    assert upload_ok(jmap, random_bytes(1000))["size"] == 1000
    response = upload(jmap, random_bytes(1001))
    assert response.status_code == 400
    assert problem(response) == {
        "type": "urn:ietf:params:jmap:error:limit",
        "status": 400,
        "detail": "The upload is larger than 1000 octets.",
        "limit": "maxSizeUpload",
    }


def test_too_large_is_refused_from_content_length_before_reading(jmap, limits):
    limits["maxSizeUpload"] = 1000

    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

        readline = read

    response = upload(jmap, b"", CONTENT_LENGTH="1001", **{"wsgi.input": Unreadable()})
    assert response.status_code == 400
    assert problem(response)["limit"] == "maxSizeUpload"


def test_too_large_upload_stores_nothing(jmap, limits):
    limits["maxSizeUpload"] = 1000
    blobs = Blob.objects.count()
    assert upload(jmap, random_bytes(5000)).status_code == 400
    assert Blob.objects.count() == blobs
    assert not AccountBlob.objects.exists()


def _asgi_upload(jmap, payload: bytes, headers: list[tuple[bytes, bytes]]):
    """POST through Django's ASGI request handling (as served by daphne or granian)."""
    client = AsyncClient()
    return async_to_sync(client.request)(
        method="POST",
        path=f"/jmap/upload/{jmap.account_id}/",
        headers=[(b"host", b"testserver"), (b"authorization", jmap.auth.encode()), *headers],
        _body_file=FakePayload(payload),
    )


def test_asgi_upload_without_content_length(jmap, limits):
    limits["maxSizeUpload"] = 1000
    data = random_bytes(1000)
    response = _asgi_upload(jmap, data, [(b"content-type", b"image/gif")])
    assert response.status_code == 201, response.content
    result = orjson.loads(response.content)
    assert result["size"] == 1000
    assert result["type"] == "image/gif"
    assert body(download(jmap, result["blobId"])) == data

    response = _asgi_upload(jmap, random_bytes(1001), [])
    assert response.status_code == 400
    assert problem(response)["limit"] == "maxSizeUpload"


def test_asgi_upload_with_a_lying_content_length(jmap, limits):
    limits["maxSizeUpload"] = 1000
    response = _asgi_upload(jmap, random_bytes(50_000), [(b"content-length", b"10")])
    assert response.status_code == 400
    assert problem(response)["limit"] == "maxSizeUpload"
    assert not AccountBlob.objects.exists()


def test_max_concurrent_upload(jmap, limits):
    limits["maxConcurrentUpload"] = 2
    # Two uploads of this user are in progress in this process...
    with blob_views._uploads.slot(jmap.user.pk, 2), blob_views._uploads.slot(jmap.user.pk, 2):
        response = upload(jmap, b"third")
        assert response.status_code == 400
        assert problem(response)["limit"] == "maxConcurrentUpload"
    # ...and once they are done, uploads are accepted again.
    assert upload(jmap, b"third").status_code == 201


def test_concurrent_upload_limit_is_per_user(jmap, other_jmap, limits):
    limits["maxConcurrentUpload"] = 1
    with blob_views._uploads.slot(jmap.user.pk, 1):
        assert upload(other_jmap, b"bob's").status_code == 201
        assert upload(jmap, b"alice's").status_code == 400


# -- authentication and access ------------------------------------------------------


def test_authentication_required(jmap):
    response = Client().post(f"/jmap/upload/{jmap.account_id}/", b"x", content_type="text/plain")
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"]
    response = Client().post(
        f"/jmap/upload/{jmap.account_id}/",
        b"x",
        content_type="text/plain",
        HTTP_AUTHORIZATION=basic(jmap.user.email, "wrong password"),
    )
    assert response.status_code == 401
    assert not AccountBlob.objects.exists()


def test_session_cookie_is_not_enough(jmap, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(f"/jmap/upload/{jmap.account_id}/", b"x", content_type="text/plain")
    assert response.status_code == 401


def test_foreign_and_unknown_accounts_are_not_found(jmap, other_jmap):
    foreign = upload(jmap, b"x", account_id=other_jmap.account_id)
    unknown = upload(jmap, b"x", account_id="a999999")
    garbage = upload(jmap, b"x", account_id="not-an-account")
    for response in (foreign, unknown, garbage):
        assert response.status_code == 404
        assert problem(response)["status"] == 404
    assert foreign.content == unknown.content
    assert not AccountBlob.objects.exists()


def test_only_post(jmap):
    response = jmap.http.get(f"/jmap/upload/{jmap.account_id}/", HTTP_AUTHORIZATION=jmap.auth)
    assert response.status_code == 405
