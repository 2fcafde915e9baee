"""Email/set (RFC 8621 §4.6) and Email/changes (§4.3)."""

from __future__ import annotations

import pytest

from groupware.core.models import AccountBlob
from groupware.mail.models import Email, EmailMailbox, Mailbox
from groupware.mail.services.counts import email_id, thread_id
from groupware.mail.services.emails import (
    InvalidKeywords,
    MailboxesInvalid,
    MessageTooLarge,
    email_ingest,
    keyword_normalize,
)
from tests.mail.factories import counts_are_exact, ingest, mail_fixture, message, other_mail_fixture  # noqa: F401 (fixtures)

DRAFT_TEXT = "I have the most brilliant plan. Let me tell you all about it. What we do is, we"


def _draft(mail, **extra) -> dict:
    # RFC 8621 §4.10, the first draft.
    return {
        "mailboxIds": {mail.mailbox_id("drafts"): True},
        "keywords": {"$seen": True, "$draft": True},
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "subject": "World domination",
        "receivedAt": "2018-07-10T01:03:11Z",
        "sentAt": "2018-07-10T11:03:11+10:00",
        "bodyStructure": {"type": "text/plain", "partId": "bd48", "header:Content-Language": "en"},
        "bodyValues": {"bd48": {"value": DRAFT_TEXT, "isTruncated": False}},
        **extra,
    }


def test_rfc_example_drafts(mail):
    result = mail.ok("Email/set", {"create": {"k192": _draft(mail)}})
    assert result["notCreated"] is None, result["notCreated"]
    created = result["created"]["k192"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    first = created["id"]
    item = mail.email(
        first,
        properties=["mailboxIds", "keywords", "from", "subject", "receivedAt", "messageId", "sentAt", "bodyValues"],
        fetchTextBodyValues=True,
    )
    assert item["mailboxIds"] == {mail.mailbox_id("drafts"): True}
    assert item["keywords"] == {"$seen": True, "$draft": True}
    assert item["from"] == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert item["subject"] == "World domination"
    assert item["receivedAt"] == "2018-07-10T01:03:11Z"
    assert item["messageId"] and len(item["messageId"]) == 1  # the server made one (§4.6)
    assert [value["value"].strip() for value in item["bodyValues"].values()] == [DRAFT_TEXT]
    assert Email.objects.get(pk=Email.objects.latest("pk").pk).size == created["size"]

    # The second draft replaces the first (§4.10).
    second = _draft(
        mail,
        to=[{"name": "John", "email": "john@example.com"}],
        receivedAt="2018-07-10T01:05:08Z",
        bodyStructure={
            "type": "multipart/alternative",
            "subParts": [
                {"partId": "a49d", "type": "text/html", "header:Content-Language": "en"},
                {"partId": "bd48", "type": "text/plain", "header:Content-Language": "en"},
            ],
        },
        bodyValues={
            "bd48": {"value": DRAFT_TEXT, "isTruncated": False},
            "a49d": {"value": f"<!DOCTYPE html><html><body><div>{DRAFT_TEXT}</div></body></html>"},
        },
    )
    result = mail.ok("Email/set", {"create": {"k1546": second}, "destroy": [first]})
    assert result["notCreated"] is None, result["notCreated"]
    assert result["destroyed"] == [first]
    new = result["created"]["k1546"]["id"]
    item = mail.email(new, properties=["to", "textBody", "htmlBody"])
    assert item["to"] == [{"name": "John", "email": "john@example.com"}]
    assert [part["type"] for part in item["htmlBody"]] == ["text/html"]
    assert [part["type"] for part in item["textBody"]] == ["text/plain"]
    assert mail.get([first]) == []
    assert counts_are_exact(mail.account)
    drafts = mail.ok("Mailbox/get", {"ids": [mail.mailbox_id("drafts")], "properties": ["totalEmails"]})
    assert drafts["list"][0]["totalEmails"] == 1


def test_create_creation_reference(mail):
    responses = mail.request(
        [
            ["Email/set", {"accountId": mail.account_id, "create": {"d1": _draft(mail)}}, "0"],
            ["Email/get", {"accountId": mail.account_id, "ids": ["#d1"], "properties": ["subject"]}, "1"],
        ]
    )
    assert responses[1][1]["list"][0]["subject"] == "World domination"


@pytest.mark.parametrize(
    ("values", "properties"),
    [
        ({"mailboxIds": {}}, ["mailboxIds"]),
        ({"mailboxIds": None}, ["mailboxIds"]),
        ({"mailboxIds": {"mnope": True}}, ["mailboxIds"]),
        ({"keywords": {"$seen": False}}, ["keywords"]),
        ({"keywords": {"bad keyword": True}}, ["keywords"]),
        ({"keywords": {"a(b": True}}, ["keywords"]),
        ({"keywords": {"$recent": True}}, ["keywords"]),
        ({"keywords": {"x" * 256: True}}, ["keywords"]),
        ({"receivedAt": "yesterday"}, ["receivedAt"]),
        ({"id": "e1"}, ["id"]),
        ({"threadId": "t1"}, ["threadId"]),
        ({"size": 12}, ["size"]),
    ],
)
def test_create_invalid_properties(mail, values, properties):
    draft = _draft(mail)
    draft.update(values)
    result = mail.ok("Email/set", {"create": {"c": draft}})
    error = result["notCreated"]["c"]
    assert error["type"] == "invalidProperties", error
    assert error["properties"] == properties


def test_create_requires_mailbox_ids(mail):
    draft = _draft(mail)
    del draft["mailboxIds"]
    error = mail.ok("Email/set", {"create": {"c": draft}})["notCreated"]["c"]
    assert error["type"] == "invalidProperties" and error["properties"] == ["mailboxIds"]


def test_create_other_accounts_mailbox(mail, other_mail):
    draft = _draft(mail, mailboxIds={other_mail.mailbox_id("inbox"): True})
    error = mail.ok("Email/set", {"create": {"c": draft}})["notCreated"]["c"]
    assert error["type"] == "invalidProperties" and error["properties"] == ["mailboxIds"]


def test_create_blob_not_found(mail, other_mail):
    theirs = other_mail.upload(b"secret", "application/octet-stream")
    mine = mail.upload(b"%PDF-1.4 mine", "application/pdf")
    missing = "b" + "0" * 64
    draft = _draft(
        mail,
        bodyStructure={
            "type": "multipart/mixed",
            "subParts": [
                {"type": "text/plain", "partId": "bd48"},
                {"type": "application/pdf", "blobId": mine, "name": "mine.pdf"},
                {"type": "application/octet-stream", "blobId": theirs},
                {"type": "application/octet-stream", "blobId": missing},
            ],
        },
    )
    error = mail.ok("Email/set", {"create": {"c": draft}})["notCreated"]["c"]
    assert error["type"] == "blobNotFound"
    assert sorted(error["notFound"]) == sorted([theirs, missing])


def test_create_with_attachment_blob(mail):
    pdf = b"%PDF-1.4 attached"
    blob = mail.upload(pdf, "application/pdf")
    draft = _draft(
        mail,
        bodyStructure={
            "type": "multipart/mixed",
            "subParts": [
                {"type": "text/plain", "partId": "bd48"},
                {"type": "application/pdf", "blobId": blob, "name": "plan.pdf", "disposition": "attachment"},
            ],
        },
    )
    created = mail.ok("Email/set", {"create": {"c": draft}})["created"]["c"]
    item = mail.email(created["id"], properties=["attachments", "hasAttachment"])
    assert item["hasAttachment"] is True
    [attachment] = item["attachments"]
    assert attachment["type"] == "application/pdf" and attachment["size"] == len(pdf)


def test_create_reads_its_attachment_blobs_in_one_query(mail):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(count: int) -> int:
        parts = [{"type": "text/plain", "partId": "bd48"}]
        for index in range(count):
            blob = mail.upload(f"%PDF-1.4 number {count}.{index}".encode(), "application/pdf")
            parts.append({"type": "application/pdf", "blobId": blob, "name": f"{index}.pdf"})
        draft = _draft(mail, bodyStructure={"type": "multipart/mixed", "subParts": parts})
        with CaptureQueriesContext(connection) as captured:
            created = mail.ok("Email/set", {"create": {"c": draft}})["created"]
        assert set(created) == {"c"}
        return len(captured.captured_queries)

    assert queries_for(1) == queries_for(4)


def test_too_many_keywords(mail, settings):
    settings.MAIL_MAX_KEYWORDS_PER_EMAIL = 2
    draft = _draft(mail, keywords={"a": True, "b": True, "c": True})
    assert mail.ok("Email/set", {"create": {"c": draft}})["notCreated"]["c"]["type"] == "tooManyKeywords"
    email = ingest(mail.account, message())
    result = mail.ok("Email/set", {"update": {email_id(email.pk): {"keywords": {"a": True, "b": True, "c": True}}}})
    assert result["notUpdated"][email_id(email.pk)]["type"] == "tooManyKeywords"


def test_too_many_mailboxes(mail, settings):
    settings.MAIL_MAX_MAILBOXES_PER_EMAIL = 1
    draft = _draft(mail, mailboxIds={mail.mailbox_id("drafts"): True, mail.mailbox_id("inbox"): True})
    assert mail.ok("Email/set", {"create": {"c": draft}})["notCreated"]["c"]["type"] == "tooManyMailboxes"


def test_update_keywords_patch(mail):
    email = ingest(mail.account, message(), keywords={"$flagged": True})
    eid = email_id(email.pk)
    state = mail.state()
    inbox = mail.ok("Mailbox/get", {"ids": [mail.mailbox_id("inbox")]})["list"][0]
    assert inbox["unreadEmails"] == 1 and inbox["unreadThreads"] == 1
    result = mail.ok("Email/set", {"update": {eid: {"keywords/$seen": True}}})
    assert result["updated"] == {eid: None}
    assert mail.email(eid, properties=["keywords"])["keywords"] == {"$flagged": True, "$seen": True}
    inbox = mail.ok("Mailbox/get", {"ids": [mail.mailbox_id("inbox")]})["list"][0]
    assert inbox["unreadEmails"] == 0 and inbox["unreadThreads"] == 0 and inbox["totalEmails"] == 1
    # RFC 8621 §4.10: mark unread again by removing $seen; keywords are case-insensitive.
    mail.ok("Email/set", {"update": {eid: {"keywords/$seen": None, "keywords/$Forwarded": True}}})
    assert mail.email(eid, properties=["keywords"])["keywords"] == {"$flagged": True, "$forwarded": True}
    changes = mail.ok("Email/changes", {"sinceState": state})
    assert changes["updated"] == [eid] and changes["created"] == [] and changes["destroyed"] == []
    assert counts_are_exact(mail.account)


def test_update_replace_keywords_and_noop(mail):
    email = ingest(mail.account, message(), keywords={"$flagged": True})
    eid = email_id(email.pk)
    mail.ok("Email/set", {"update": {eid: {"keywords": {"$Seen": True}}}})
    assert mail.email(eid, properties=["keywords"])["keywords"] == {"$seen": True}
    state = mail.state()
    result = mail.ok("Email/set", {"update": {eid: {"keywords": {"$seen": True}}}})
    assert result["updated"] == {eid: None}
    assert result["newState"] == state  # nothing changed


@pytest.mark.parametrize(
    "patch",
    [
        {"keywords/$seen": False},
        {"keywords/bad word": True},
        {"keywords": {"$seen": "yes"}},
        {"keywords": ["$seen"]},
        {"mailboxIds": {}},
        {"mailboxIds": {"mnope": True}},
        {"mailboxIds/mnope": True},
    ],
)
def test_update_invalid(mail, patch):
    email = ingest(mail.account, message())
    result = mail.ok("Email/set", {"update": {email_id(email.pk): patch}})
    error = result["notUpdated"][email_id(email.pk)]
    assert error["type"] == "invalidProperties", error


@pytest.mark.parametrize("prop", ["subject", "from", "receivedAt", "bodyStructure", "id", "blobId", "threadId"])
def test_update_immutable(mail, prop):
    email = ingest(mail.account, message())
    result = mail.ok("Email/set", {"update": {email_id(email.pk): {prop: "x"}}})
    error = result["notUpdated"][email_id(email.pk)]
    assert error["type"] == "invalidProperties" and error["properties"] == [prop]


def test_update_mailbox_patch_moves_only_changes(mail):
    email = ingest(mail.account, message(), roles=("inbox", "archive"))
    eid = email_id(email.pk)
    archive_row = EmailMailbox.objects.get(email=email, mailbox__role="archive")
    # Move from inbox to trash, by patch (§4.6): archive stays as it is.
    result = mail.ok(
        "Email/set",
        {
            "update": {
                eid: {f"mailboxIds/{mail.mailbox_id('inbox')}": None, f"mailboxIds/{mail.mailbox_id('trash')}": True}
            }
        },
    )
    assert result["updated"] == {eid: None}
    assert mail.email(eid, properties=["mailboxIds"])["mailboxIds"] == {
        mail.mailbox_id("archive"): True,
        mail.mailbox_id("trash"): True,
    }
    assert EmailMailbox.objects.get(email=email, mailbox__role="archive").pk == archive_row.pk
    assert counts_are_exact(mail.account)
    # Removing the last mailbox is refused: an Email is always in a Mailbox.
    result = mail.ok(
        "Email/set",
        {
            "update": {
                eid: {f"mailboxIds/{mail.mailbox_id('archive')}": None, f"mailboxIds/{mail.mailbox_id('trash')}": None}
            }
        },
    )
    assert result["notUpdated"][eid]["type"] == "invalidProperties"


def test_update_with_new_mailbox_reference(mail):
    email = ingest(mail.account, message())
    eid = email_id(email.pk)
    responses = mail.request(
        [
            ["Mailbox/set", {"accountId": mail.account_id, "create": {"new": {"name": "Projects"}}}, "0"],
            ["Email/set", {"accountId": mail.account_id, "update": {eid: {"mailboxIds": {"#new": True}}}}, "1"],
        ]
    )
    assert responses[1][1]["updated"] == {eid: None}, responses
    projects = Mailbox.objects.get(account=mail.account, name="Projects")
    assert list(EmailMailbox.objects.filter(email=email).values_list("mailbox_id", flat=True)) == [projects.pk]
    assert counts_are_exact(mail.account)


def test_destroy(mail, other_mail):
    email = ingest(mail.account, message(), keywords={})
    theirs = ingest(other_mail.account, message())
    reply = ingest(mail.account, message(subject="Re: Hello", message_id="<r@x>", references="<m1@example.com>"))
    state = mail.state()
    thread_state = mail.state("Thread")
    account_blob = AccountBlob.objects.get(account=mail.account, blob_id=email.blob_id)
    assert account_blob.refcount == 1
    result = mail.ok(
        "Email/set", {"destroy": [email_id(email.pk), email_id(theirs.pk), "nonsense", email_id(reply.pk)]}
    )
    assert result["destroyed"] == [email_id(email.pk), email_id(reply.pk)]
    assert set(result["notDestroyed"]) == {email_id(theirs.pk), "nonsense"}
    assert all(error["type"] == "notFound" for error in result["notDestroyed"].values())
    assert Email.objects.filter(pk=theirs.pk).exists()
    account_blob.refresh_from_db()
    assert account_blob.refcount == 0
    changes = mail.ok("Email/changes", {"sinceState": state})
    assert sorted(changes["destroyed"]) == sorted([email_id(email.pk), email_id(reply.pk)])
    assert mail.ok("Thread/changes", {"sinceState": thread_state})["destroyed"] == [thread_id(email.thread_id)]
    assert counts_are_exact(mail.account)
    inbox = mail.ok("Mailbox/get", {"ids": [mail.mailbox_id("inbox")]})["list"][0]
    assert inbox["totalEmails"] == inbox["totalThreads"] == inbox["unreadEmails"] == 0


def test_foreign_update_not_found(mail, other_mail):
    theirs = ingest(other_mail.account, message())
    result = mail.ok("Email/set", {"update": {email_id(theirs.pk): {"keywords/$seen": True}}})
    assert result["notUpdated"][email_id(theirs.pk)]["type"] == "notFound"
    assert Email.objects.get(pk=theirs.pk).keywords == {}


def test_if_in_state(mail):
    email = ingest(mail.account, message())
    error = mail.error("Email/set", {"ifInState": "999999", "update": {email_id(email.pk): {"keywords/$seen": True}}})
    assert error["type"] == "stateMismatch"
    state = mail.state()
    result = mail.ok("Email/set", {"ifInState": state, "update": {email_id(email.pk): {"keywords/$seen": True}}})
    assert result["oldState"] == state and result["newState"] != state


def test_changes_paging(mail):
    state = mail.state()
    emails = [ingest(mail.account, message(message_id=f"<p{i}@x>")) for i in range(5)]
    first = mail.ok("Email/changes", {"sinceState": state, "maxChanges": 3})
    assert first["hasMoreChanges"] is True and len(first["created"]) == 3
    rest = mail.ok("Email/changes", {"sinceState": first["newState"], "maxChanges": 3})
    assert rest["hasMoreChanges"] is False
    assert first["created"] + rest["created"] == [email_id(email.pk) for email in emails]


def test_counts_follow_many_changes(mail):
    inbox, archive = mail.mailbox_id("inbox"), mail.mailbox_id("archive")
    a = ingest(mail.account, message(subject="A", message_id="<a@x>"))
    b = ingest(mail.account, message(subject="Re: A", message_id="<b@x>", references="<a@x>"), roles=("archive",))
    c = ingest(mail.account, message(subject="C", message_id="<c@x>"), keywords={"$seen": True})
    mail.ok(
        "Email/set",
        {
            "update": {
                email_id(a.pk): {"keywords/$seen": True, f"mailboxIds/{archive}": True},
                email_id(b.pk): {"mailboxIds": {inbox: True, mail.mailbox_id("trash"): True}},
                email_id(c.pk): {"keywords": {}},
            }
        },
    )
    assert counts_are_exact(mail.account)
    mail.ok("Email/set", {"destroy": [email_id(a.pk)]})
    assert counts_are_exact(mail.account)


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("$Seen", "$seen"),
        ("$flagged", "$flagged"),
        ("Custom-Label_1", "custom-label_1"),
        ("x" * 255, "x" * 255),
        ("x" * 256, None),
        ("", None),
        ("has space", None),
        ("tab\t", None),
        ("é", None),
        ("$recent", None),
        ("$Recent", None),
        *((f"a{char}b", None) for char in '(){]%*"\\'),
        ("[ok", "[ok"),  # only "]" is excluded, not "["
        (7, None),
    ],
)
def test_keyword_rules(keyword, expected):
    # RFC 8621 §4.1.1.
    assert keyword_normalize(keyword) == expected


def test_ingest_limits(mail, settings):
    settings.MAIL_MAX_MESSAGE_SIZE = 50
    with pytest.raises(MessageTooLarge) as error:
        ingest(mail.account, message())
    assert "50 octets" in str(error.value)
    settings.MAIL_MAX_MESSAGE_SIZE = 10_000
    with pytest.raises(InvalidKeywords):
        ingest(mail.account, message(), keywords={"bad word": True})
    with pytest.raises(MailboxesInvalid):
        email_ingest(account=mail.account, raw=message(), mailbox_ids=[], keywords={})
    assert not Email.objects.exists()


def test_forward_attachment_by_part_blob_id(mail):
    original = mail.import_message(
        b"From: a@example.com\r\nSubject: report\r\nMessage-ID: <rep@x>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
    )
    [attachment] = mail.email(original["id"], properties=["attachments"])["attachments"]
    assert attachment["blobId"].startswith("p")
    draft = _draft(
        mail,
        bodyStructure={
            "type": "multipart/mixed",
            "subParts": [
                {"type": "text/plain", "partId": "bd48"},
                {"type": "application/pdf", "blobId": attachment["blobId"], "name": "r.pdf"},
            ],
        },
    )
    created = mail.ok("Email/set", {"create": {"fwd": draft}})["created"]["fwd"]
    [forwarded] = mail.email(created["id"], properties=["attachments"])["attachments"]
    assert forwarded["size"] == attachment["size"] == 9
