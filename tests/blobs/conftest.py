"""Helpers for the binary data tests: upload and download through the real views."""

from __future__ import annotations

import os

import orjson
import pytest

from tests.conftest import JmapClient


def upload(
    client: JmapClient,
    data: bytes,
    content_type: str = "application/octet-stream",
    account_id: str | None = None,
    **extra,
):
    """POST to the upload URL; returns the raw response."""
    return client.http.post(
        f"/jmap/upload/{account_id or client.account_id}/",
        data,
        content_type=content_type,
        HTTP_AUTHORIZATION=client.auth,
        **extra,
    )


def upload_ok(client: JmapClient, data: bytes, content_type: str = "application/octet-stream") -> dict:
    response = upload(client, data, content_type)
    assert response.status_code == 201, response.content
    return orjson.loads(response.content)


def download(
    client: JmapClient,
    blob_id: str,
    name: str = "file.bin",
    accept: str | None = "application/octet-stream",
    account_id: str | None = None,
    method: str = "get",
    **extra,
):
    url = f"/jmap/download/{account_id or client.account_id}/{blob_id}/{name}"
    data = {} if accept is None else {"accept": accept}
    response = getattr(client.http, method)(url, data, HTTP_AUTHORIZATION=client.auth, **extra)
    # Read the body now: the test client closes a streamed response (and so the blob's
    # file) once its content is consumed, as a server would.
    response.data = b"".join(response.streaming_content) if response.streaming else response.content
    return response


def body(response) -> bytes:
    if hasattr(response, "data"):
        return response.data
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def problem(response) -> dict:
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    return orjson.loads(response.content)


def random_bytes(size: int) -> bytes:
    # Fresh content for each test: files stay in the test storage between tests.
    return os.urandom(size)


@pytest.fixture
def limits(settings):
    """A mutable copy of settings.JMAP for tests that lower a limit."""
    settings.JMAP = dict(settings.JMAP)
    return settings.JMAP
