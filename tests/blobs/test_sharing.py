"""Blobs in shared accounts: unreferenced uploads are the uploader's alone (RFC 8620 §6.1)."""

from __future__ import annotations

import pytest

from accounts.services import account_grant
from groupware.core import blobs
from tests.blobs.conftest import body, download, problem, random_bytes, upload, upload_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_account(user):
    return user.jmap_accounts.get(is_personal=True)


@pytest.fixture
def shared(alice_account, other_user):
    """Alice's account, shared with Bob (who may write)."""
    account_grant(account=alice_account, user=other_user, may_write=True)
    return alice_account


def test_unreferenced_upload_is_only_visible_to_its_uploader(jmap, other_jmap, shared):
    data = random_bytes(100)
    blob_id = upload_ok_into(other_jmap, shared.jmap_id, data)
    assert body(download(other_jmap, blob_id, account_id=shared.jmap_id)) == data
    # The owner of the account can't see Bob's unreferenced upload...
    hidden = download(jmap, blob_id)
    assert hidden.status_code == 404
    assert hidden.content == download(jmap, "b" + "3" * 64).content
    assert blobs.blob_find(shared, blob_id, user=jmap.user) is None
    with pytest.raises(blobs.BlobNotFound):
        blobs.blob_pin(shared, blob_id, user=jmap.user)
    # ...until an object of the account references it.
    blobs.blob_pin(shared, blob_id, user=other_jmap.user)
    assert body(download(jmap, blob_id)) == data


def test_uploading_the_same_content_makes_it_visible_to_both(jmap, other_jmap, shared):
    data = random_bytes(100)
    blob_id = upload_ok_into(other_jmap, shared.jmap_id, data)
    assert upload_ok(jmap, data)["blobId"] == blob_id
    assert body(download(jmap, blob_id)) == data
    assert body(download(other_jmap, blob_id, account_id=shared.jmap_id)) == data


def test_blob_copy_respects_the_uploader(jmap, other_jmap, shared):
    blob_id = upload_ok_into(other_jmap, shared.jmap_id, random_bytes(100))
    bob_account = other_jmap.account_id
    # Alice can't copy Bob's unreferenced upload out of her own account...
    _, result, _ = jmap.call(
        "Blob/copy", {"fromAccountId": shared.jmap_id, "accountId": shared.jmap_id, "blobIds": [blob_id]}
    )
    assert result["notCopied"][blob_id]["type"] == "notFound"
    # ...Bob can copy it to his account, where it is his unreferenced blob.
    _, result, _ = other_jmap.call(
        "Blob/copy", {"fromAccountId": shared.jmap_id, "accountId": bob_account, "blobIds": [blob_id]}
    )
    assert result["copied"] == {blob_id: blob_id}
    assert download(other_jmap, blob_id).status_code == 200


def test_read_only_access(jmap, other_jmap, alice_account, other_user):
    account_grant(account=alice_account, user=other_user, may_write=False)
    response = upload(other_jmap, b"x", account_id=alice_account.jmap_id)
    assert response.status_code == 403
    assert problem(response)["status"] == 403
    # Referenced blobs of the account can be read and copied out...
    data = random_bytes(100)
    blob_id = upload_ok(jmap, data)["blobId"]
    blobs.blob_pin(alice_account, blob_id)
    assert body(download(other_jmap, blob_id, account_id=alice_account.jmap_id)) == data
    _, result, _ = other_jmap.call(
        "Blob/copy", {"fromAccountId": alice_account.jmap_id, "accountId": other_jmap.account_id, "blobIds": [blob_id]}
    )
    assert result["copied"] == {blob_id: blob_id}
    # ...but nothing can be copied into the account.
    mine = upload_ok(other_jmap, random_bytes(10))["blobId"]
    response = other_jmap.call(
        "Blob/copy", {"fromAccountId": other_jmap.account_id, "accountId": alice_account.jmap_id, "blobIds": [mine]}
    )
    assert response[0] == "error"
    assert response[1]["type"] == "accountReadOnly"


def upload_ok_into(client, account_id: str, data: bytes) -> str:
    response = upload(client, data, account_id=account_id)
    assert response.status_code == 201, response.content
    return response.json()["blobId"]
