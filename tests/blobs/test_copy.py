"""Blob/copy (RFC 8620 §6.3)."""

from __future__ import annotations

import pytest

from accounts.models import Account
from groupware.core.models import AccountBlob
from tests.blobs.conftest import body, download, random_bytes, upload_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_account(user) -> Account:
    # A second account the user can access (as a shared account will be).
    return Account.objects.create(owner=user, name="Team", is_personal=False)


def copy(jmap, arguments: dict) -> list:
    return jmap.call("Blob/copy", arguments)


def test_copy_to_another_account(jmap, second_account):
    data = random_bytes(2000)
    blob_id = upload_ok(jmap, data, "image/jpeg")["blobId"]
    target = second_account.jmap_id
    assert download(jmap, blob_id, account_id=target).status_code == 404

    name, result, call_id = copy(jmap, {"fromAccountId": jmap.account_id, "accountId": target, "blobIds": [blob_id]})
    assert (name, call_id) == ("Blob/copy", "c0")
    assert result == {
        "fromAccountId": jmap.account_id,
        "accountId": target,
        "copied": {blob_id: blob_id},
        "notCopied": None,
    }
    assert body(download(jmap, blob_id, account_id=target)) == data
    copied = AccountBlob.objects.get(account=second_account)
    assert (copied.type, copied.refcount) == ("image/jpeg", 0)


def test_copy_within_one_account(jmap):
    blob_id = upload_ok(jmap, random_bytes(10))["blobId"]
    _, result, _ = copy(jmap, {"fromAccountId": jmap.account_id, "accountId": jmap.account_id, "blobIds": [blob_id]})
    assert result["copied"] == {blob_id: blob_id}
    assert result["notCopied"] is None


def test_missing_and_foreign_blobs_are_not_found(jmap, other_jmap, second_account):
    mine = upload_ok(jmap, random_bytes(10))["blobId"]
    theirs = upload_ok(other_jmap, random_bytes(10))["blobId"]
    unknown = "b" + "0" * 64
    other_syntax = "Mxyz"
    _, result, _ = copy(
        jmap,
        {
            "fromAccountId": jmap.account_id,
            "accountId": second_account.jmap_id,
            "blobIds": [mine, theirs, unknown, other_syntax],
        },
    )
    assert result["copied"] == {mine: mine}
    errors = result["notCopied"]
    assert set(errors) == {theirs, unknown, other_syntax}
    assert {error["type"] for error in errors.values()} == {"notFound"}
    # The foreign blob's error is the same as the error for one that never existed.
    assert errors[theirs] == errors[unknown]
    assert not AccountBlob.objects.filter(account=second_account, blob_id=theirs[1:]).exists()


def test_nothing_copied(jmap, second_account):
    _, result, _ = copy(
        jmap, {"fromAccountId": jmap.account_id, "accountId": second_account.jmap_id, "blobIds": ["b" + "1" * 64]}
    )
    assert result["copied"] is None
    assert list(result["notCopied"]) == ["b" + "1" * 64]
    _, result, _ = copy(jmap, {"fromAccountId": jmap.account_id, "accountId": second_account.jmap_id, "blobIds": []})
    assert result["copied"] is None
    assert result["notCopied"] is None


def test_from_account_not_found(jmap, other_jmap):
    blob_id = upload_ok(other_jmap, random_bytes(10))["blobId"]
    for source in (other_jmap.account_id, "a99999", "nonsense"):
        response = copy(jmap, {"fromAccountId": source, "accountId": jmap.account_id, "blobIds": [blob_id]})
        assert response == ["error", {"type": "fromAccountNotFound"}, "c0"]
    assert not AccountBlob.objects.filter(account__owner=jmap.user).exists()


def test_account_not_found(jmap, other_jmap):
    blob_id = upload_ok(jmap, random_bytes(10))["blobId"]
    response = copy(jmap, {"fromAccountId": jmap.account_id, "accountId": other_jmap.account_id, "blobIds": [blob_id]})
    assert response == ["error", {"type": "accountNotFound"}, "c0"]
    assert not AccountBlob.objects.filter(account__owner=other_jmap.user).exists()


@pytest.mark.parametrize(
    "arguments",
    [
        {"accountId": "A", "blobIds": []},
        {"fromAccountId": "A", "blobIds": []},
        {"fromAccountId": "A", "accountId": "A"},
        {"fromAccountId": "A", "accountId": "A", "blobIds": "b00"},
        {"fromAccountId": "A", "accountId": "A", "blobIds": ["not/an id"]},
        {"fromAccountId": "A", "accountId": "A", "blobIds": [""]},
        {"fromAccountId": "A", "accountId": "A", "blobIds": [7]},
        {"fromAccountId": "A", "accountId": "A", "blobIds": [], "extra": 1},
    ],
)
def test_invalid_arguments(jmap, arguments):
    arguments = {key: (jmap.account_id if value == "A" else value) for key, value in arguments.items()}
    response = copy(jmap, arguments)
    assert response[0] == "error"
    assert response[1]["type"] == "invalidArguments"


def test_too_many_blob_ids(jmap, limits):
    limits["maxObjectsInSet"] = 2
    response = copy(
        jmap, {"fromAccountId": jmap.account_id, "accountId": jmap.account_id, "blobIds": ["b1", "b2", "b3"]}
    )
    assert response[0] == "error"
    assert response[1]["type"] == "requestTooLarge"


def test_copy_resets_the_expiry_of_an_unreferenced_copy(jmap, second_account):
    from datetime import timedelta

    from django.utils import timezone

    blob_id = upload_ok(jmap, random_bytes(10))["blobId"]
    arguments = {"fromAccountId": jmap.account_id, "accountId": second_account.jmap_id, "blobIds": [blob_id]}
    copy(jmap, arguments)
    old = timezone.now() - timedelta(days=3)
    AccountBlob.objects.filter(account=second_account).update(created=old)
    copy(jmap, arguments)
    assert AccountBlob.objects.get(account=second_account).created > old
