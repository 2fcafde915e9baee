"""Uploads, copies and garbage collection running at the same time (real threads, real
transactions: each thread has its own database connection)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.services import user_create
from groupware.core import blobs
from groupware.core.models import AccountBlob, Blob
from tests.blobs.conftest import random_bytes, upload
from tests.conftest import PASSWORD, JmapClient

pytestmark = pytest.mark.django_db(transaction=True)

# The in-memory SQLite test database shares one cache between connections, and writers
# that meet there fail at once ("database table is locked") instead of waiting as they do
# on a database file; concurrent writers are exercised on PostgreSQL (or a file).
_database = settings.DATABASES["default"]
concurrent_writers = pytest.mark.skipif(
    _database["ENGINE"].endswith("sqlite3") and not _database.get("TEST", {}).get("NAME"),
    reason="concurrent writers need PostgreSQL or an SQLite file",
)


def run_in_threads(*targets: Callable[[], Any]) -> list[Any]:
    """Run the callables at once; return their results (or raise the first failure)."""
    results: list[Any] = [None] * len(targets)
    failures: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(index: int, target: Callable[[], Any]) -> None:
        try:
            start.wait()
            results[index] = target()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if failures:
        raise failures[0]
    return results


@pytest.fixture
def clients() -> list[JmapClient]:
    users = [user_create(email=f"user{i}@example.com", password=PASSWORD) for i in range(4)]
    return [JmapClient(user) for user in users]


def stored_content(sha256: str) -> bytes:
    with blobs.blob_storage().open(blobs.storage_name(sha256), "rb") as handle:
        return handle.read()


@concurrent_writers
def test_identical_uploads_at_once(clients):
    data = random_bytes(400_000)
    sha256 = hashlib.sha256(data).hexdigest()
    responses = run_in_threads(*[lambda c=c: upload(c, data) for c in clients])
    assert [r.status_code for r in responses] == [201] * len(clients)
    assert {orjson.loads(r.content)["blobId"] for r in responses} == {"b" + sha256}
    assert Blob.objects.filter(pk=sha256).count() == 1
    assert AccountBlob.objects.filter(blob_id=sha256).count() == len(clients)
    assert stored_content(sha256) == data


def test_max_concurrent_upload_with_uploads_in_flight(clients, limits):
    limits["maxConcurrentUpload"] = 1
    client = clients[0]
    reading = threading.Event()
    release = threading.Event()

    class SlowBody:
        """A request body that arrives only when the test says so."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            reading.set()
            assert release.wait(30)
            chunk, self.data = self.data[:size], self.data[size:]
            return chunk

        readline = read

    def slow_upload():
        return upload(client, b"", CONTENT_LENGTH="5", **{"wsgi.input": SlowBody(b"slow!")})

    def second_upload():
        assert reading.wait(30)
        try:
            return upload(client, b"fast")
        finally:
            release.set()

    first, second = run_in_threads(slow_upload, second_upload)
    assert second.status_code == 400
    assert orjson.loads(second.content)["limit"] == "maxConcurrentUpload"
    assert first.status_code == 201
    assert orjson.loads(first.content)["size"] == 5
    # Another user is not limited by this one's uploads.
    assert upload(clients[1], b"fast").status_code == 201


@concurrent_writers
def test_gc_racing_uploads_of_the_same_content(clients):
    """Whoever wins, content that an account can see always has its complete file."""
    expired, uploader = (client.user.jmap_accounts.get() for client in clients[:2])
    for _ in range(8):
        data = random_bytes(150_000)
        row = blobs.blob_store(account=expired, stream_or_bytes=data, type="a/b")
        AccountBlob.objects.filter(pk=row.pk).update(created=timezone.now() - timedelta(days=30))
        run_in_threads(
            blobs.blob_gc,
            lambda data=data: blobs.blob_store(account=uploader, stream_or_bytes=data, type="a/b"),
        )
        assert not AccountBlob.objects.filter(pk=row.pk).exists()
        assert AccountBlob.objects.filter(account=uploader, blob_id=row.blob_id).exists()
        assert Blob.objects.filter(pk=row.blob_id).exists()
        assert stored_content(row.blob_id) == data


@concurrent_writers
def test_gc_racing_copies_and_pins(clients):
    source, target = (client.user.jmap_accounts.get() for client in clients[:2])
    for _ in range(8):
        data = random_bytes(1000)
        row = blobs.blob_store(account=source, stream_or_bytes=data, type="a/b")
        blob_id = blobs.blob_id(row.blob_id)
        AccountBlob.objects.filter(pk=row.pk).update(created=timezone.now() - timedelta(days=30))

        def pin(blob_id=blob_id) -> bool:
            try:
                blobs.blob_pin(source, blob_id)
            except blobs.BlobNotFound:
                return False
            return True

        _, copied, pinned = run_in_threads(
            blobs.blob_gc,
            lambda blob_id=blob_id: blobs.blob_copy(from_account=source, to_account=target, blob_id=blob_id),
            pin,
        )
        # Every reference that survived points at content that is still there.
        visible = [account for account in (source, target) if blobs.blob_find(account, blob_id) is not None]
        if pinned:
            assert source in visible
        if visible:
            assert stored_content(row.blob_id) == data
        else:
            assert not Blob.objects.filter(pk=row.blob_id).exists()
        assert (copied is not None) == (target in visible)
