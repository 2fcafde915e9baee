"""Blob management (RFC 9404): Blob/upload, Blob/get, Blob/lookup and the capability.

The first tests replay the RFC's examples (§4.1-§4.3): "hello world", the concatenation
that makes "How quick was that?" out of text, base64 and slices of another blob created
in the same call, ranged and digested reads, and a lookup of a stored message's blob.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from accounts.models import Account
from accounts.quotas import quota_set
from tests.blobs.conftest import download, upload_ok
from tests.conftest import CORE, CallAssertions, JmapClient
from tests.mail.factories import MAIL, MailApi, ingest, message

BLOB = "urn:ietf:params:jmap:blob"
QUICK = "The quick brown fox jumped over the lazy dog."


class BlobApi(CallAssertions):
    def __init__(self, client: JmapClient) -> None:
        self.client = client
        self.account_id = client.account_id

    def call(self, name: str, arguments: dict) -> list:
        return self.client.call(name, {"accountId": self.account_id, **arguments}, using=[CORE, MAIL, BLOB])

    def request(self, calls: list) -> list:
        return self.client.request(calls, using=[CORE, MAIL, BLOB])["methodResponses"]

    def upload(self, create: dict) -> dict:
        return self.ok("Blob/upload", {"create": create})


@pytest.fixture
def api(jmap) -> BlobApi:
    return BlobApi(jmap)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_capability(jmap):
    session = jmap.session()
    assert session["capabilities"][BLOB] == {}
    assert session["accounts"][jmap.account_id]["accountCapabilities"][BLOB] == {
        "maxSizeBlobSet": 50_000_000,
        "maxDataSources": 64,
        "supportedTypeNames": ["Mailbox", "Thread", "Email"],
        "supportedDigestAlgorithms": ["sha", "sha-256"],
    }


def test_hello_world_upload_and_get(api, jmap):
    created = api.upload({"1": {"data": [{"data:asText": "hello world"}], "type": "text/plain"}})
    blob = created["created"]["1"]
    assert blob["type"] == "text/plain" and blob["size"] == 11
    assert created["notCreated"] is None
    got = api.ok("Blob/get", {"ids": [blob["id"]], "properties": ["data:asText", "digest:sha", "size"]})
    assert got["list"] == [
        {"id": blob["id"], "data:asText": "hello world", "digest:sha": "Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "size": 11}
    ]
    assert got["notFound"] == []
    # The same blob through the download URL of RFC 8620.
    assert download(jmap, blob["id"]).data == b"hello world"


def test_concatenation_with_creation_references(api):
    created = api.upload(
        {
            "b4": {"data": [{"data:asText": QUICK}]},
            "cat": {
                "data": [
                    {"data:asText": "How"},
                    {"blobId": "#b4", "length": 7, "offset": 3},
                    {"data:asText": "was t"},
                    {"blobId": "#b4", "length": 1, "offset": 1},
                    {"data:asBase64": "YXQ/"},
                ]
            },
        }
    )
    assert created["notCreated"] is None
    cat = created["created"]["cat"]
    assert cat["size"] == len("How quick was that?")
    assert cat["type"] == "application/octet-stream"
    got = api.ok("Blob/get", {"ids": [cat["id"]], "properties": ["data:asText", "size"]})
    assert got["list"][0]["data:asText"] == "How quick was that?"


def test_get_by_creation_reference_in_a_later_call(api):
    responses = api.request(
        [
            ["Blob/upload", {"accountId": api.account_id, "create": {"q": {"data": [{"data:asText": QUICK}]}}}, "0"],
            ["Blob/get", {"accountId": api.account_id, "ids": ["#q"], "properties": ["data:asText"]}, "1"],
        ]
    )
    assert responses[1][1]["list"] == [{"id": "#q", "data:asText": QUICK}]


def test_ranges_digests_and_truncation(api):
    blob = api.upload({"q": {"data": [{"data:asText": QUICK}]}})["created"]["q"]["id"]
    properties = ["data:asText", "digest:sha", "digest:sha-256", "size"]
    got = api.ok("Blob/get", {"ids": [blob], "properties": properties, "offset": 4, "length": 9})["list"][0]
    assert got["data:asText"] == "quick bro"
    assert got["digest:sha"] == b64(hashlib.sha1(b"quick bro").digest())
    assert got["digest:sha-256"] == b64(hashlib.sha256(b"quick bro").digest())
    assert got["size"] == len(QUICK)  # the whole blob's size
    assert "isTruncated" not in got
    past = api.ok("Blob/get", {"ids": [blob], "properties": ["data:asText"], "offset": 36, "length": 100})
    assert past["list"][0] == {"id": blob, "data:asText": "lazy dog.", "isTruncated": True}
    beyond = api.ok("Blob/get", {"ids": [blob], "properties": ["data:asText"], "offset": 1000})
    assert beyond["list"][0] == {"id": blob, "data:asText": "", "isTruncated": True}


def test_binary_data_and_encoding_problems(api):
    octets = bytes([0xFF, 0xFE, 0x00, 0x41])
    blob = api.upload({"bin": {"data": [{"data:asBase64": b64(octets)}]}})["created"]["bin"]["id"]
    text = api.ok("Blob/get", {"ids": [blob], "properties": ["data:asText"]})["list"][0]
    assert text == {"id": blob, "data:asText": None, "isEncodingProblem": True}
    either = api.ok("Blob/get", {"ids": [blob]})["list"][0]  # default: data, size
    assert either == {"id": blob, "data:asBase64": b64(octets), "size": 4}
    both = api.ok("Blob/get", {"ids": [blob], "properties": ["data:asBase64"]})["list"][0]
    assert base64.b64decode(both["data:asBase64"]) == octets


def test_upload_errors_are_per_creation(api, other_jmap):
    foreign = upload_ok(other_jmap, b"other user's data")["blobId"]
    short = api.upload({"s": {"data": [{"data:asText": "abc"}]}})["created"]["s"]["id"]
    result = api.upload(
        {
            "two": {"data": [{"data:asText": "a", "data:asBase64": "YQ=="}]},
            "bad64": {"data": [{"data:asBase64": "not base64!"}]},
            "range": {"data": [{"blobId": short, "offset": 2, "length": 5}]},
            "missing": {"data": [{"blobId": foreign}]},
            "extra": {"data": [], "name": "x"},
            "type": {"data": [], "type": "not a type"},
            "many": {"data": [{"data:asText": "x"}] * 65},
            "ok": {"data": []},
        }
    )
    errors = result["notCreated"]
    assert errors["two"]["type"] == "invalidProperties"
    assert errors["bad64"]["type"] == "invalidProperties"
    assert errors["range"]["type"] == "invalidProperties"
    assert errors["missing"] == {
        "type": "blobNotFound",
        "description": f"data/0: blob {foreign} not found",
        "notFound": [foreign],
    }
    assert errors["extra"]["properties"] == ["name"]
    assert errors["type"]["properties"] == ["type"]
    assert errors["many"]["type"] == "invalidProperties"
    assert result["created"]["ok"]["size"] == 0


def test_upload_larger_than_max_size_blob_set(api, settings):
    settings.JMAP = {**settings.JMAP, "maxSizeUpload": 10}
    result = api.upload({"big": {"data": [{"data:asText": "12345"}, {"data:asText": "678901"}]}})
    assert result["notCreated"]["big"]["type"] == "tooLarge"


def test_upload_over_quota(api, user):
    account = Account.objects.get(owner=user)
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=5)
    result = api.upload({"q": {"data": [{"data:asText": QUICK}]}})
    assert result["notCreated"]["q"]["type"] == "overQuota"
    assert "5 octets" in result["notCreated"]["q"]["description"]


def test_get_unknown_and_foreign_blobs(api, other_jmap):
    foreign = upload_ok(other_jmap, b"secret")["blobId"]
    got = api.ok("Blob/get", {"ids": [foreign, "bnope", "x"]})
    assert got["list"] == [] and got["notFound"] == [foreign, "bnope", "x"]
    assert api.error("Blob/get", {"ids": ["b1"], "properties": ["digest:md5"]})["type"] == "invalidArguments"
    assert api.error("Blob/get", {"ids": None})["type"] == "requestTooLarge"


def test_blob_methods_need_the_capability(jmap):
    response = jmap.call("Blob/get", {"accountId": jmap.account_id, "ids": []}, using=[CORE])
    assert response[0] == "error" and response[1]["type"] == "unknownMethod"


def test_lookup_finds_mailboxes_threads_and_emails(api, jmap, user):
    mail = MailApi(jmap)
    imported = mail.import_message(message(), role="inbox")
    email = mail.email(imported["id"], properties=["blobId", "threadId", "mailboxIds", "attachments"])
    unused = api.upload({"u": {"data": [{"data:asText": "nobody uses me"}]}})["created"]["u"]["id"]
    result = api.ok(
        "Blob/lookup",
        {"typeNames": ["Mailbox", "Thread", "Email"], "ids": [email["blobId"], unused, "bnotablob"]},
    )
    assert result["list"] == [
        {
            "id": email["blobId"],
            "matchedIds": {
                "Mailbox": list(email["mailboxIds"]),
                "Thread": [email["threadId"]],
                "Email": [imported["id"]],
            },
        },
        {"id": unused, "matchedIds": {"Mailbox": [], "Thread": [], "Email": []}},
    ]
    assert result["notFound"] == ["bnotablob"]
    only_emails = api.ok("Blob/lookup", {"typeNames": ["Email"], "ids": [email["blobId"]]})
    assert only_emails["list"] == [{"id": email["blobId"], "matchedIds": {"Email": [imported["id"]]}}]


def test_lookup_of_a_part_blob_and_errors(api, user, other_user, django_assert_num_queries):
    from groupware.mail.services.counts import email_id

    account = Account.objects.get(owner=user)
    stored = ingest(account, message())
    part = f"p{stored.blob_id}_1"
    result = api.ok("Blob/lookup", {"typeNames": ["Email"], "ids": [part]})
    assert result["list"] == [{"id": part, "matchedIds": {"Email": [email_id(stored.pk)]}}]
    assert api.error("Blob/lookup", {"typeNames": ["Calendar"], "ids": []})["type"] == "unknownDataType"
    # Another user's message is not found, not even its existence.
    other = ingest(Account.objects.get(owner=other_user), message(body="only for bob\n"))
    foreign = api.ok("Blob/lookup", {"typeNames": ["Email"], "ids": [f"b{other.blob_id}"]})
    assert foreign == {"accountId": api.account_id, "list": [], "notFound": [f"b{other.blob_id}"]}
    many = [f"b{stored.blob_id}", part, f"b{other.blob_id}", "bnope", *(f"b{n:064x}" for n in range(20))]
    # auth, accounts, the visible blobs, emails, memberships: whatever the number of ids
    with django_assert_num_queries(5):
        api.ok("Blob/lookup", {"typeNames": ["Mailbox", "Thread", "Email"], "ids": many})


def test_get_query_count(api, django_assert_num_queries):
    created = api.upload({str(n): {"data": [{"data:asText": f"blob {n}"}]} for n in range(10)})["created"]
    ids = [item["id"] for item in created.values()]
    # auth, accounts, one query for the blobs (their files are opened, not queried)
    with django_assert_num_queries(3):
        got = api.ok("Blob/get", {"ids": [*ids, "bmissing"], "properties": ["data:asText"]})
    assert sorted(item["data:asText"] for item in got["list"]) == sorted(f"blob {n}" for n in range(10))
    assert got["notFound"] == ["bmissing"]
