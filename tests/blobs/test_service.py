"""The blob service (groupware.core.blobs): storage, dedup, references, garbage collection."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from groupware.core import blobs, tasks
from groupware.core.models import AccountBlob, Blob, ObjectChange
from tests.blobs.conftest import body, download, random_bytes, upload_ok

pytestmark = pytest.mark.django_db

TTL = timedelta(seconds=settings.BLOB_UNREFERENCED_TTL)


@pytest.fixture
def account(user) -> Account:
    return user.jmap_accounts.get(is_personal=True)


@pytest.fixture
def other_account(other_user) -> Account:
    return other_user.jmap_accounts.get(is_personal=True)


def stored(sha256: str) -> bool:
    return blobs.blob_storage().exists(blobs.storage_name(sha256))


def test_blob_ids():
    digest = hashlib.sha256(b"x").hexdigest()
    assert blobs.blob_id(digest) == "b" + digest
    assert blobs.parse_blob_id("b" + digest) == digest
    for bad in (None, 7, "", "b", digest, "b" + digest.upper(), "b" + digest[:-1], "c" + digest, "b" + digest + "0"):
        assert blobs.parse_blob_id(bad) is None
    assert blobs.storage_name(digest) == f"{digest[:2]}/{digest[2:4]}/{digest}"


def test_store_bytes_and_streams(account):
    data = random_bytes(200_000)
    from_bytes = blobs.blob_store(account=account, stream_or_bytes=data, type="a/b")
    from_stream = blobs.blob_store(account=account, stream_or_bytes=io.BytesIO(data), type="c/d")
    assert from_bytes.pk == from_stream.pk
    assert from_stream.blob_id == hashlib.sha256(data).hexdigest()
    assert from_stream.blob.size == len(data)
    assert from_stream.type == "c/d"
    assert blobs.blob_read(account, blobs.blob_id(from_stream.blob_id)) == data


def test_store_refuses_too_large_content(account):
    with pytest.raises(blobs.BlobTooLarge):
        blobs.blob_store(account=account, stream_or_bytes=b"x" * 11, type="a/b", max_size=10)
    with pytest.raises(blobs.BlobTooLarge):
        blobs.blob_store(account=account, stream_or_bytes=io.BytesIO(b"x" * 11), type="a/b", max_size=10)
    assert not Blob.objects.filter(pk=hashlib.sha256(b"x" * 11).hexdigest()).exists()
    assert blobs.blob_store(account=account, stream_or_bytes=io.BytesIO(b"x" * 10), type="a/b", max_size=10)


def test_same_content_in_two_accounts_is_stored_once(jmap, other_jmap):
    data = random_bytes(5000)
    first = upload_ok(jmap, data)
    second = upload_ok(other_jmap, data)
    assert first["blobId"] == second["blobId"]
    sha256 = first["blobId"][1:]
    assert Blob.objects.filter(pk=sha256).count() == 1
    assert AccountBlob.objects.filter(blob_id=sha256).count() == 2
    # One file, under its content address, and no second copy beside it.
    directory = blobs.storage_name(sha256).rsplit("/", 1)[0]
    assert [name for name in blobs.blob_storage().listdir(directory)[1] if name.startswith(sha256)] == [sha256]
    assert body(download(jmap, first["blobId"])) == data
    assert body(download(other_jmap, first["blobId"])) == data


def test_foreign_blobs_are_invisible(account, other_account):
    theirs = blobs.blob_store(account=other_account, stream_or_bytes=random_bytes(10), type="a/b")
    blob_id = blobs.blob_id(theirs.blob_id)
    assert blobs.blob_find(account, blob_id) is None
    assert blobs.blob_open(account, blob_id) is None
    assert blobs.blob_read(account, blob_id) is None
    assert blobs.blob_read(account, "nonsense") is None
    with pytest.raises(blobs.BlobNotFound):
        blobs.blob_pin(account, blob_id)
    opened = blobs.blob_open(other_account, blob_id)
    with opened:
        assert (opened.blob_id, opened.size, opened.type) == (blob_id, 10, "a/b")


def test_a_damaged_file_is_repaired_by_the_next_upload(account):
    data = random_bytes(3000)
    sha256 = hashlib.sha256(data).hexdigest()
    storage = blobs.blob_storage()
    storage.save(blobs.storage_name(sha256), io.BytesIO(data[:100]))  # an interrupted write
    blobs.blob_store(account=account, stream_or_bytes=data, type="a/b")
    with storage.open(blobs.storage_name(sha256), "rb") as handle:
        assert handle.read() == data


def test_pin_and_unpin(account):
    row = blobs.blob_store(account=account, stream_or_bytes=random_bytes(10), type="a/b")
    blob_id = blobs.blob_id(row.blob_id)
    blobs.blob_pin(account, blob_id)
    blobs.blob_pin(account, blob_id)
    row.refresh_from_db()
    assert row.refcount == 2
    assert blobs.blob_unpin(account, blob_id)
    assert blobs.blob_unpin(account, blob_id)
    assert not blobs.blob_unpin(account, blob_id)  # never below zero
    row.refresh_from_db()
    assert row.refcount == 0
    with pytest.raises(blobs.BlobNotFound):
        blobs.blob_pin(account, "b" + "2" * 64)
    with pytest.raises(blobs.BlobNotFound):
        blobs.blob_pin(account, "garbage")


def test_reupload_resets_the_expiry(account):
    data = random_bytes(10)
    row = blobs.blob_store(account=account, stream_or_bytes=data, type="a/b")
    old = timezone.now() - 2 * TTL
    AccountBlob.objects.filter(pk=row.pk).update(created=old)
    again = blobs.blob_store(account=account, stream_or_bytes=data, type="a/b")
    assert again.pk == row.pk
    assert again.created > old
    assert blobs.blob_gc().account_blobs == 0


# -- garbage collection ---------------------------------------------------------------


def _age(row: AccountBlob, by: timedelta) -> None:
    AccountBlob.objects.filter(pk=row.pk).update(created=timezone.now() - by)


def test_gc_removes_old_unreferenced_blobs_with_their_files(account):
    row = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    sha256 = row.blob_id
    assert stored(sha256)
    _age(row, TTL + timedelta(minutes=1))
    result = blobs.blob_gc()
    assert result == blobs.BlobGcResult(1, 1)
    assert not AccountBlob.objects.filter(pk=row.pk).exists()
    assert not Blob.objects.filter(pk=sha256).exists()
    assert not stored(sha256)
    assert blobs.blob_open(account, blobs.blob_id(sha256)) is None
    assert blobs.blob_gc() == blobs.BlobGcResult(0, 0)  # idempotent


def test_gc_keeps_young_and_pinned_blobs(account):
    young = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    _age(young, TTL - timedelta(minutes=1))
    pinned = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    blobs.blob_pin(account, blobs.blob_id(pinned.blob_id))
    _age(pinned, 10 * TTL)
    assert blobs.blob_gc() == blobs.BlobGcResult(0, 0)
    for row in (young, pinned):
        assert AccountBlob.objects.filter(pk=row.pk).exists()
        assert stored(row.blob_id)
        assert blobs.blob_read(account, blobs.blob_id(row.blob_id)) is not None


def test_gc_with_an_explicit_now(account):
    row = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    assert blobs.blob_gc(now=timezone.now() + TTL - timedelta(seconds=5)).account_blobs == 0
    assert blobs.blob_gc(now=timezone.now() + TTL + timedelta(seconds=5)).account_blobs == 1
    assert not stored(row.blob_id)


def test_gc_keeps_content_another_account_still_sees(account, other_account):
    data = random_bytes(100)
    mine = blobs.blob_store(account=account, stream_or_bytes=data, type="a/b")
    theirs = blobs.blob_store(account=other_account, stream_or_bytes=data, type="a/b")
    _age(mine, 2 * TTL)
    assert blobs.blob_gc() == blobs.BlobGcResult(1, 0)
    assert not AccountBlob.objects.filter(pk=mine.pk).exists()
    assert stored(theirs.blob_id)
    assert blobs.blob_read(other_account, blobs.blob_id(theirs.blob_id)) == data


def test_unreferenced_again_starts_a_new_ttl(account):
    row = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    blob_id = blobs.blob_id(row.blob_id)
    blobs.blob_pin(account, blob_id)
    _age(row, 10 * TTL)
    blobs.blob_unpin(account, blob_id)
    # RFC 8620 §6: not deleted right after losing its last reference.
    assert blobs.blob_gc().account_blobs == 0
    assert blobs.blob_gc(now=timezone.now() + TTL + timedelta(seconds=5)).account_blobs == 1


def test_gc_collects_content_left_by_a_deleted_account(user):
    extra = Account.objects.create(owner=user, name="Temporary", is_personal=False)
    row = blobs.blob_store(account=extra, stream_or_bytes=random_bytes(100), type="a/b")
    blobs.blob_pin(extra, blobs.blob_id(row.blob_id))
    extra.delete()  # cascades to its AccountBlob rows
    assert blobs.blob_gc().blobs == 1
    assert not stored(row.blob_id)


def test_upload_after_gc_writes_the_file_again(jmap, account):
    data = random_bytes(700)
    blob_id = upload_ok(jmap, data)["blobId"]
    _age(AccountBlob.objects.get(blob_id=blob_id[1:]), 2 * TTL)
    blobs.blob_gc()
    assert not stored(blob_id[1:])
    assert upload_ok(jmap, data)["blobId"] == blob_id
    assert stored(blob_id[1:])
    assert body(download(jmap, blob_id)) == data


def test_gc_in_batches(account):
    rows = [blobs.blob_store(account=account, stream_or_bytes=random_bytes(20), type="a/b") for _ in range(7)]
    AccountBlob.objects.filter(pk__in=[row.pk for row in rows]).update(created=timezone.now() - 2 * TTL)
    assert blobs.blob_gc(batch_size=3) == blobs.BlobGcResult(7, 7)
    assert not any(stored(row.blob_id) for row in rows)


# -- tasks ----------------------------------------------------------------------------


def test_blob_gc_task(account):
    row = blobs.blob_store(account=account, stream_or_bytes=random_bytes(100), type="a/b")
    _age(row, 2 * TTL)
    assert tasks.blob_gc.apply().get() == {"account_blobs": 1, "blobs": 1}
    assert tasks.blob_gc.apply().get() == {"account_blobs": 0, "blobs": 0}
    assert tasks.blob_gc.acks_late


def test_purge_changes_task(account):
    old = timezone.now() - timedelta(seconds=settings.JMAP_CHANGES_RETENTION + 60)
    ObjectChange.objects.create(
        account=account, type_name="Note", object_id="n1", created_modseq=1, modseq=2, destroyed=True, changed=old
    )
    ObjectChange.objects.create(
        account=account, type_name="Note", object_id="n2", created_modseq=3, modseq=3, destroyed=True
    )
    assert tasks.purge_changes.apply().get() == 1
    assert list(ObjectChange.objects.filter(type_name="Note").values_list("object_id", flat=True)) == ["n2"]
    account.refresh_from_db()
    assert account.purged_modseq == 2
    assert tasks.purge_changes.apply().get() == 0
    assert tasks.purge_changes.acks_late


def test_content_is_on_disk_before_its_rows_commit(account, monkeypatch):
    """A committed row never outlives its file across a power loss: the file (written
    beside its name, flushed, then renamed into place), its bucket directory and the one
    above are flushed (fsync, observed as it runs) before the statement that writes the
    rows."""
    import os

    from django.db import connection

    events: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def observed_fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def observed_execute(execute, sql, params, many, context):
        if "core_accountblob" in sql:
            events.append(("rows", sql.split()[0]))
        return execute(sql, params, many, context)

    monkeypatch.setattr(os, "fsync", observed_fsync)
    content = random_bytes(5000)
    with connection.execute_wrapper(observed_execute):
        row = blobs.blob_store(account=account, stream_or_bytes=content, type="text/plain")
    path = blobs.blob_storage().path(blobs.storage_name(row.blob_id))
    flushed = [target for kind, target in events if kind == "fsync"]
    first_rows = next(index for index, (kind, _) in enumerate(events) if kind == "rows")
    before_rows = flushed[:first_rows]
    assert {os.path.dirname(path), os.path.dirname(os.path.dirname(path))} <= set(before_rows)
    # The file was flushed under its temporary name, which the rename then made its own.
    assert any(os.path.dirname(target) == os.path.dirname(path) and ".partial-" in target for target in before_rows)


def test_a_recheck_flushes_only_what_it_writes_again(account, monkeypatch):
    """Under the Blob row lock the file is looked at again: found as flushed moments ago,
    nothing more; gone (the collector removed it meanwhile), written and flushed again."""
    import os

    content = random_bytes(3000)
    row = blobs.blob_store(account=account, stream_or_bytes=content, type="text/plain")
    name = blobs.storage_name(row.blob_id)
    flushed: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda descriptor: (flushed.append(descriptor), real_fsync(descriptor)))
    blobs._ensure_stored(name, io.BytesIO(content), len(content), recheck=True)
    assert flushed == []
    blobs.blob_storage().delete(name)
    blobs._ensure_stored(name, io.BytesIO(content), len(content), recheck=True)
    assert len(flushed) == 3 and stored(row.blob_id)  # the new file, ab/cd/ and ab/
    with blobs.blob_storage().open(name, "rb") as handle:
        assert handle.read() == content


def test_a_partial_file_under_the_name_is_replaced_whole(account):
    """A file cut short (a crash mid-write by an earlier version) is replaced by a complete
    copy in one rename; no temporary file stays behind."""
    import os

    content = random_bytes(10_000)
    sha256 = hashlib.sha256(content).hexdigest()
    path = blobs.blob_storage().path(blobs.storage_name(sha256))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content[:1234])
    row = blobs.blob_store(account=account, stream_or_bytes=content, type="application/octet-stream")
    assert row.blob_id == sha256
    with open(path, "rb") as handle:
        assert handle.read() == content
    assert [entry for entry in os.listdir(os.path.dirname(path)) if entry.startswith(".partial-")] == []
