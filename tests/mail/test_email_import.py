"""Email/import (RFC 8621 §4.8), Email/parse (§4.9) and Email/copy (§4.7)."""

from __future__ import annotations

from accounts.services import account_grant
from groupware.core.models import AccountBlob
from groupware.mail.models import Email
from groupware.mail.services.counts import email_id, thread_id
from groupware.mail.services.emails import part_blob_id
from tests.mail.factories import MailApi, counts_are_exact, ingest, mail_fixture, message, other_mail_fixture  # noqa: F401 (fixtures)

RECEIVED = (
    b"Received: from mx.example.net by mail.example.com; Tue, 01 Oct 2024 10:00:00 +0000\r\n"
    b"Received: from client by mx.example.net; Tue, 01 Oct 2024 09:59:00 +0000\r\n"
)

FORWARD = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Fwd: Hello\r\n"
    b"Message-ID: <fwd@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="fw"\r\n'
    b"\r\n"
    b"--fw\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See below.\r\n"
    b"--fw\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Disposition: attachment\r\n"
    b"\r\n"
    b"From: Joe <joe@example.com>\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <inner@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"The inner message.\r\n"
    b"--fw--\r\n"
)


def test_import(mail):
    raw = message(subject="Imported")
    state = mail.state()
    created = mail.import_message(raw, keywords={"$Seen": True}, receivedAt="2024-01-02T03:04:05Z")
    assert set(created) == {"id", "blobId", "threadId", "size"}
    assert created["size"] == len(raw)
    item = mail.email(
        created["id"], properties=["subject", "keywords", "receivedAt", "mailboxIds", "blobId", "threadId"]
    )
    assert item == {
        "id": created["id"],
        "subject": "Imported",
        "keywords": {"$seen": True},
        "receivedAt": "2024-01-02T03:04:05Z",
        "mailboxIds": {mail.mailbox_id("inbox"): True},
        "blobId": created["blobId"],
        "threadId": created["threadId"],
    }
    changes = mail.ok("Email/changes", {"sinceState": state})
    assert changes["created"] == [created["id"]]
    # The message blob is referenced now.
    assert AccountBlob.objects.get(account=mail.account, blob_id=created["blobId"][1:]).refcount == 1
    assert counts_are_exact(mail.account)


def test_import_received_at_defaults_to_received_header(mail):
    created = mail.import_message(RECEIVED + message())
    assert mail.email(created["id"], properties=["receivedAt"])["receivedAt"] == "2024-10-01T10:00:00Z"


def test_import_lf_only(mail):
    raw = message(crlf=False)
    created = mail.import_message(raw)
    item = mail.email(created["id"], properties=["subject", "size", "bodyValues"], fetchTextBodyValues=True)
    assert item["subject"] == "Hello" and item["size"] == len(raw)
    assert [value["value"] for value in item["bodyValues"].values()] == ["Hello there.\n"]


def test_import_errors(mail, other_mail, settings):
    blob = mail.upload(message())
    theirs = other_mail.upload(message(subject="theirs"))
    inbox = {mail.mailbox_id("inbox"): True}
    emails = {
        "noblob": {"blobId": "b" + "1" * 64, "mailboxIds": inbox},
        "theirs": {"blobId": theirs, "mailboxIds": inbox},
        "nombox": {"blobId": blob, "mailboxIds": {}},
        "badmbox": {"blobId": blob, "mailboxIds": {"mzz": True}},
        "missing": {"blobId": blob},
        "badkw": {"blobId": blob, "mailboxIds": inbox, "keywords": {"$seen": False}},
        "unknown": {"blobId": blob, "mailboxIds": inbox, "subject": "no"},
        "baddate": {"blobId": blob, "mailboxIds": inbox, "receivedAt": "2024-01-02"},
    }
    result = mail.ok("Email/import", {"emails": emails})
    assert result["created"] is None
    expected = {
        "noblob": ["blobId"],
        "theirs": ["blobId"],
        "nombox": ["mailboxIds"],
        "badmbox": ["mailboxIds"],
        "missing": ["mailboxIds"],
        "badkw": ["keywords"],
        "unknown": ["subject"],
        "baddate": ["receivedAt"],
    }
    for cid, properties in expected.items():
        error = result["notCreated"][cid]
        assert error["type"] == "invalidProperties", (cid, error)
        assert error["properties"] == properties, (cid, error)
    assert not Email.objects.filter(account=mail.account).exists()
    # Too large (MAIL_MAX_MESSAGE_SIZE) is a clear tooLarge error.
    settings.MAIL_MAX_MESSAGE_SIZE = 100
    result = mail.ok("Email/import", {"emails": {"big": {"blobId": blob, "mailboxIds": inbox}}})
    assert result["notCreated"]["big"]["type"] == "tooLarge"
    assert result["notCreated"]["big"]["maxSize"] == 100


def test_import_not_a_message(mail):
    blob = mail.upload(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png")
    result = mail.ok("Email/import", {"emails": {"png": {"blobId": blob, "mailboxIds": {mail.mailbox_id(): True}}}})
    assert result["notCreated"]["png"]["type"] == "invalidEmail"


def test_import_if_in_state(mail):
    blob = mail.upload(message())
    item = {"blobId": blob, "mailboxIds": {mail.mailbox_id("inbox"): True}}
    error = mail.error("Email/import", {"ifInState": "12345", "emails": {"a": item}})
    assert error["type"] == "stateMismatch"
    state = mail.state()
    result = mail.ok("Email/import", {"ifInState": state, "emails": {"a": item, "b": item}})
    assert result["oldState"] == state and len(result["created"]) == 2
    # Duplicates are allowed: separate Emails with their own ids (§4.8).
    assert result["created"]["a"]["id"] != result["created"]["b"]["id"]
    assert result["newState"] == mail.state()


def test_import_read_only_account(mail, other_mail):
    account_grant(account=other_mail.account, user=mail.client.user, may_write=False)
    blob = other_mail.upload(message())
    error = mail.error(
        "Email/import",
        {
            "accountId": other_mail.account_id,
            "emails": {"a": {"blobId": blob, "mailboxIds": {other_mail.mailbox_id("inbox"): True}}},
        },
    )
    assert error["type"] == "accountReadOnly"


def test_parse(mail):
    forward = mail.upload(FORWARD)
    result = mail.ok(
        "Email/parse",
        {"blobIds": [forward, "b" + "2" * 64], "fetchTextBodyValues": True},
    )
    assert result["notFound"] == ["b" + "2" * 64]
    assert result["notParsable"] is None
    parsed = result["parsed"][forward]
    assert parsed["subject"] == "Fwd: Hello"
    assert parsed["from"] == [{"name": "Alice", "email": "alice@example.com"}]
    assert parsed["messageId"] == ["fwd@example.com"]
    [attached] = parsed["attachments"]
    assert attached["type"] == "message/rfc822"
    assert attached["blobId"] == part_blob_id(forward, attached["partId"])
    assert "See below." in "".join(value["value"] for value in parsed["bodyValues"].values())
    # The attached message parses through its part blob id.
    inner = mail.ok(
        "Email/parse",
        {
            "blobIds": [attached["blobId"]],
            "properties": ["id", "threadId", "mailboxIds", "keywords", "receivedAt", "subject", "blobId", "size"],
        },
    )["parsed"][attached["blobId"]]
    assert inner["subject"] == "Hello"
    assert inner["id"] is None and inner["mailboxIds"] is None and inner["keywords"] is None
    assert inner["receivedAt"] is None and inner["threadId"] is None
    assert inner["blobId"] == attached["blobId"]
    assert inner["size"] == attached["size"]


def test_parse_part_blob_of_stored_email_and_import_it(mail):
    created = mail.import_message(FORWARD)
    [attached] = mail.email(created["id"], properties=["attachments"])["attachments"]
    assert attached["blobId"] == part_blob_id(created["blobId"], attached["partId"])
    parsed = mail.ok("Email/parse", {"blobIds": [attached["blobId"]], "properties": ["subject"]})
    assert parsed["parsed"] == {attached["blobId"]: {"subject": "Hello"}}
    # An attached message can be imported as an Email of its own, with its own blob.
    result = mail.ok(
        "Email/import",
        {"emails": {"x": {"blobId": attached["blobId"], "mailboxIds": {mail.mailbox_id("inbox"): True}}}},
    )
    inner = result["created"]["x"]
    assert inner["blobId"].startswith("b") and inner["blobId"] != created["blobId"]
    assert mail.email(inner["id"], properties=["subject"])["subject"] == "Hello"


def test_parse_not_parsable_and_invalid(mail, other_mail):
    binary = mail.upload(bytes(range(256)) * 4, "application/octet-stream")
    theirs = other_mail.upload(message())
    result = mail.ok("Email/parse", {"blobIds": [binary, theirs, "pnotreal_1"]})
    assert result["notParsable"] == [binary]
    assert sorted(result["notFound"]) == sorted([theirs, "pnotreal_1"])
    error = mail.error("Email/parse", {"blobIds": [binary], "properties": ["header:From:asDate"]})
    assert error["type"] == "invalidArguments"


def test_copy_between_accounts(mail, other_mail):
    # Bob shares his account with Alice, who copies one of her Emails into it.
    account_grant(account=other_mail.account, user=mail.client.user, may_write=True)
    source = ingest(mail.account, message(subject="Copy me"), keywords={"$seen": True})
    target_inbox = other_mail.mailbox_id("inbox")
    response = mail.request(
        [
            [
                "Email/copy",
                {
                    "fromAccountId": mail.account_id,
                    "accountId": other_mail.account_id,
                    "create": {
                        "k45": {
                            "id": email_id(source.pk),
                            "mailboxIds": {target_inbox: True},
                            "keywords": {"$flagged": True},
                        }
                    },
                    "onSuccessDestroyOriginal": True,
                },
                "0",
            ]
        ]
    )
    copy_response, set_response = response
    assert copy_response[0] == "Email/copy", copy_response
    created = copy_response[1]["created"]["k45"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    assert created["blobId"] == f"b{source.blob_id}" and created["size"] == source.size
    assert set_response[0] == "Email/set" and set_response[1]["destroyed"] == [email_id(source.pk)]
    assert not Email.objects.filter(pk=source.pk).exists()
    copy = other_mail.email(created["id"], properties=["subject", "keywords", "mailboxIds", "receivedAt"])
    assert copy["subject"] == "Copy me"
    assert copy["keywords"] == {"$flagged": True}
    assert copy["mailboxIds"] == {target_inbox: True}
    assert AccountBlob.objects.get(account=other_mail.account, blob_id=source.blob_id).refcount == 1
    assert counts_are_exact(mail.account) and counts_are_exact(other_mail.account)


def test_copy_restrictions(mail, other_mail):
    source = ingest(mail.account, message())
    # Without access to the target account.
    error = mail.error(
        "Email/copy",
        {
            "fromAccountId": mail.account_id,
            "accountId": other_mail.account_id,
            "create": {"c": {"id": email_id(source.pk), "mailboxIds": {other_mail.mailbox_id("inbox"): True}}},
        },
    )
    assert error["type"] == "accountNotFound"
    account_grant(account=other_mail.account, user=mail.client.user, may_write=True)
    target = {other_mail.mailbox_id("inbox"): True}
    result = mail.ok(
        "Email/copy",
        {
            "fromAccountId": mail.account_id,
            "accountId": other_mail.account_id,
            "create": {
                "subject": {"id": email_id(source.pk), "mailboxIds": target, "subject": "changed"},
                "blob": {"id": email_id(source.pk), "mailboxIds": target, "blobId": "b" + "0" * 64},
                "nomailbox": {"id": email_id(source.pk)},
                "missing": {"id": "e999999", "mailboxIds": target},
                "badkw": {"id": email_id(source.pk), "mailboxIds": target, "keywords": {"a b": True}},
            },
        },
    )
    errors = result["notCreated"]
    assert errors["subject"]["type"] == "invalidProperties" and errors["subject"]["properties"] == ["subject"]
    assert errors["blob"]["type"] == "invalidProperties" and errors["blob"]["properties"] == ["blobId"]
    # The source's mailboxes don't exist in the target account.
    assert errors["nomailbox"]["type"] == "invalidProperties" and errors["nomailbox"]["properties"] == ["mailboxIds"]
    assert errors["missing"]["type"] == "notFound"
    assert errors["badkw"]["type"] == "invalidProperties"
    assert result["created"] is None
    assert not Email.objects.filter(account=other_mail.account).exists()


def test_thread_id_of_import_follows_threading(mail):
    first = mail.import_message(message(subject="Plans", message_id="<a@x>"))
    reply = mail.import_message(message(subject="Re: Plans", message_id="<b@x>", in_reply_to="<a@x>"))
    assert reply["threadId"] == first["threadId"]
    thread = mail.ok("Thread/get", {"ids": [first["threadId"]]})["list"][0]
    assert thread["emailIds"] == [first["id"], reply["id"]]
    assert thread_id(Email.objects.get(pk=int(first["id"][1:], 32)).thread_id) == first["threadId"]


def _import_batch(mail, raws: list[bytes], **extra_items) -> dict:
    emails = {
        f"m{index}": {"blobId": mail.upload(raw), "mailboxIds": {mail.mailbox_id("inbox"): True}}
        for index, raw in enumerate(raws)
    }
    emails.update(extra_items)
    return mail.ok("Email/import", {"emails": emails})


def _thread_raws(count: int, tag: str) -> list[bytes]:
    """A thread of ``count`` messages, each replying to the one before."""
    raws = []
    for index in range(count):
        parent = f"<{tag}{index - 1}@example.com>" if index else None
        raws.append(
            message(
                subject=("Re: " if index else "") + f"Topic {tag}",
                message_id=f"<{tag}{index}@example.com>",
                in_reply_to=parent,
                references=parent,
                body=f"Message {index} of {tag}.\n",
            )
        )
    return raws


def test_import_batch_threads_replies_within_the_batch(mail):
    # A reply and its parent in one Email/import: one Thread, as if imported one by one.
    result = _import_batch(mail, _thread_raws(3, "a") + _thread_raws(2, "b"))
    created = result["created"]
    assert result["notCreated"] is None
    a_threads = {created[f"m{index}"]["threadId"] for index in range(3)}
    b_threads = {created[f"m{index}"]["threadId"] for index in range(3, 5)}
    assert len(a_threads) == 1 and len(b_threads) == 1 and a_threads != b_threads
    thread = mail.ok("Thread/get", {"ids": sorted(a_threads)})["list"][0]
    assert thread["emailIds"] == [created[f"m{index}"]["id"] for index in range(3)]
    inbox = mail.ok("Mailbox/get", {"ids": [mail.mailbox_id("inbox")]})["list"][0]
    assert (inbox["totalEmails"], inbox["totalThreads"]) == (5, 2)
    assert counts_are_exact(mail.account)
    # The search index has every message of the batch.
    found = mail.ok("Email/query", {"filter": {"body": "Message"}})["ids"]
    assert sorted(found) == sorted(item["id"] for item in created.values())


def test_import_batch_merges_threads_linked_by_a_later_message(mail):
    # Two Threads exist; a message of the batch references both: they merge, and the
    # rest of the batch (a reply to it) joins the merged Thread.
    first = mail.import_message(message(subject="Merge", message_id="<x1@example.com>"))
    second = mail.import_message(message(subject="Merge", message_id="<x2@example.com>"))
    assert first["threadId"] != second["threadId"]
    linking = message(
        subject="Re: Merge", message_id="<x3@example.com>", references="<x1@example.com> <x2@example.com>"
    )
    reply = message(subject="Re: Merge", message_id="<x4@example.com>", in_reply_to="<x3@example.com>")
    other = message(subject="Other", message_id="<y1@example.com>")
    result = _import_batch(mail, [other, linking, reply])
    created = result["created"]
    merged = created["m1"]["threadId"]
    assert created["m2"]["threadId"] == merged and created["m0"]["threadId"] != merged
    emails = mail.ok("Thread/get", {"ids": [merged]})["list"][0]["emailIds"]
    assert len(emails) == 4
    assert counts_are_exact(mail.account)
    # The moved Email's search row went with it to its new id: found under that, not the old.
    found = mail.ok("Email/query", {"filter": {"subject": "merge"}})["ids"]
    assert sorted(found) == sorted(emails)
    assert first["id"] in found and second["id"] not in found


def test_import_batch_refuses_items_one_by_one(mail):
    good = message(subject="Good", message_id="<good@example.com>")
    bad_mailbox = {"blobId": mail.upload(message(message_id="<bad@example.com>")), "mailboxIds": {"m999999": True}}
    bad_keyword = {
        "blobId": mail.upload(message(message_id="<kw@example.com>")),
        "mailboxIds": {mail.mailbox_id("inbox"): True},
        "keywords": {"bad(keyword": True},
    }
    missing_blob = {"blobId": "b" + "0" * 64, "mailboxIds": {mail.mailbox_id("inbox"): True}}
    result = _import_batch(mail, [good], bad_mailbox=bad_mailbox, bad_keyword=bad_keyword, missing=missing_blob)
    assert set(result["created"]) == {"m0"}
    not_created = result["notCreated"]
    assert not_created["bad_mailbox"]["type"] == "invalidProperties"
    assert not_created["bad_mailbox"]["properties"] == ["mailboxIds"]
    assert not_created["bad_keyword"]["type"] == "invalidProperties"
    assert not_created["missing"]["type"] == "invalidProperties"
    assert not_created["missing"]["properties"] == ["blobId"]
    assert Email.objects.filter(account=mail.account).count() == 1
    assert counts_are_exact(mail.account)


def test_import_query_count_does_not_grow_with_the_batch(mail):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(raws: list[bytes]) -> int:
        emails = {
            f"m{index}": {"blobId": mail.upload(raw), "mailboxIds": {mail.mailbox_id("inbox"): True}}
            for index, raw in enumerate(raws)
        }
        with CaptureQueriesContext(connection) as captured:
            result = mail.ok("Email/import", {"emails": emails})
        assert result["notCreated"] is None and len(result["created"]) == len(raws)
        return len(captured.captured_queries)

    small = queries_for(_thread_raws(2, "s") + _thread_raws(1, "t"))
    large = queries_for(_thread_raws(12, "u") + _thread_raws(8, "v"))
    # The message blobs are found in one query, like everything else: per batch.
    assert large == small, (small, large)
