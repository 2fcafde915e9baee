"""deliver_message: storage, trace fields, dedup, limits, bad input, Sieve actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import Account
from accounts.services import user_create
from groupware.core import events
from groupware.core.changes import type_state
from groupware.mail.delivery.models import DeliveryRecord, OutboundMessage, SieveDuplicate, VacationReply
from groupware.mail.delivery.services import deliver_message
from groupware.mail.models import Email, Mailbox
from groupware.mail.services.emails import email_raw
from groupware.mail.services.mailboxes import mailbox_create
from groupware.mail.services.vacation import vacation_response_update
from tests.delivery.helpers import activate_script, emails_in, raw_message
from tests.mail.factories import counts_are_exact

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(user) -> Account:
    return Account.objects.get(owner=user, is_personal=True)


def deliver(raw: bytes, *recipients: str, mail_from: str = "joe@example.net"):
    return deliver_message(raw=raw, mail_from=mail_from, recipients=list(recipients) or ["alice@example.com"])


def test_delivered_to_inbox_with_trace_fields_and_state_bump(account, django_capture_on_commit_callbacks):
    heard = []

    def listener(pk, states):
        heard.append((pk, states))

    events.subscribe(listener)
    before = type_state(account, "Email")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            [result] = deliver(raw_message(), "alice@example.com")
    finally:
        events.unsubscribe(listener)
    assert (result.code, result.status) == (250, "2.0.0") and result.email_id and not result.duplicate
    [email] = emails_in(account, "inbox")
    stored = email_raw(email)
    assert stored.startswith(b"Return-Path: <joe@example.net>\r\nReceived: from ")
    assert stored.endswith(raw_message())
    assert email.subject == "Hello" and email.keywords == {}
    assert type_state(account, "Email") != before
    assert counts_are_exact(account)
    # The change is published after the commit (push hears it).
    assert heard and heard[-1][0] == account.pk and "Email" in heard[-1][1] and "Mailbox" in heard[-1][1]


def test_retransmission_is_not_stored_twice(account):
    raw = raw_message()
    first = deliver(raw)[0]
    second = deliver(raw)[0]
    assert first.code == second.code == 250 and second.duplicate and not first.duplicate
    assert Email.objects.filter(account=account).count() == 1
    # Same Message-ID, different content: a different message.
    assert not deliver(raw_message(body="Changed.\r\n"))[0].duplicate
    assert Email.objects.filter(account=account).count() == 2


def test_retransmission_after_the_window_is_stored_again(account):
    raw = raw_message()
    deliver(raw)
    DeliveryRecord.objects.update(created=timezone.now() - timedelta(days=30))
    with override_settings(MAIL_DEDUP_WINDOW=3600):
        assert not deliver(raw)[0].duplicate
    assert Email.objects.filter(account=account).count() == 2


def test_recipients_answered_in_order_one_email_per_account(user, account):
    other = user_create(email="carol@example.com", password="x" * 12)
    addresses = ("alice@example.com", "nobody@example.com", "carol@example.com", "ALICE@example.com")
    results = deliver(raw_message(), *addresses)
    assert [r.code for r in results] == [250, 550, 250, 250]
    assert results[1].status == "5.1.1"
    assert results[0].email_id == results[3].email_id
    assert Email.objects.filter(account=account).count() == 1
    assert Email.objects.filter(account__owner=other).count() == 1


def test_size_limit_552(account):
    with override_settings(MAIL_MAX_MESSAGE_SIZE=500):
        [result] = deliver(raw_message(body="x" * 600))
    assert (result.code, result.status) == (552, "5.3.4")
    assert not Email.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\xff\xfe garbage with no header at all",
        b"Subject: bare LF\nFrom: a@b.c\n\nline one\nline two\rstray CR\n",
        b"Subject: " + b"long " * 20000 + b"\r\n\r\nbody\r\n",
        b"X-Folded: a\r\n" + b"\t continued\r\n" * 5000 + b"\r\nbody",
        b"",
    ],
    ids=["binary", "bare-lf-cr", "long-header", "many-folds", "empty"],
)
def test_malformed_input_is_stored_degraded_or_refused_never_a_crash(account, raw):
    [result] = deliver(raw)
    assert result.code in (250, 554), result
    if result.code == 250:
        assert Email.objects.filter(account=account).count() == 1
        assert email_raw(Email.objects.get(account=account)).endswith(raw)


def test_loop_refused(account):
    hops = "".join(f"Received: from hop{i} by x; Sun, 13 Oct 2013 14:12:00 +0000\r\n" for i in range(60))
    [result] = deliver(hops.encode() + raw_message())
    assert (result.code, result.status) == (554, "5.4.6")


# -- Sieve at delivery ---------------------------------------------------------------------


def test_fileinto_and_flags(account):
    mailbox_create(account=account, name="Lists")
    activate_script(
        account,
        'require ["fileinto", "imap4flags"];\r\n'
        'if header :contains "subject" "digest" { fileinto :flags "\\\\Seen" "Lists"; stop; }\r\n'
        'addflag "$important";\r\n',
    )
    deliver(raw_message(subject="Weekly digest", message_id="<a@x>"))
    deliver(raw_message(subject="Personal", message_id="<b@x>"))
    [listed] = emails_in(account, "Lists")
    assert listed.keywords == {"$seen": True}
    [kept] = emails_in(account, "inbox")
    assert kept.subject == "Personal" and kept.keywords == {"$important": True}
    assert counts_are_exact(account)


def test_fileinto_create_and_missing_mailbox(account):
    activate_script(
        account,
        'require ["fileinto", "mailbox"];\r\n'
        'if header :is "subject" "new" { fileinto :create "Projects/2026"; }\r\n'
        'else { fileinto "Does not exist"; }\r\n',
    )
    deliver(raw_message(subject="new", message_id="<c@x>"))
    deliver(raw_message(subject="other", message_id="<d@x>"))
    parent = Mailbox.objects.get(account=account, name="Projects", parent=None)
    child = Mailbox.objects.get(account=account, name="2026", parent=parent)
    assert [e.subject for e in Email.objects.filter(memberships__mailbox=child)] == ["new"]
    assert [e.subject for e in emails_in(account, "inbox")] == ["other"]


def test_mailbox_names_in_any_unicode_form_name_the_same_mailbox(account):
    """Mailbox names are stored NFC (RFC 8621 §2, RFC 5198): a script naming one in another
    normalization form (here decomposed) means the same mailbox, for fileinto,
    mailboxexists and :create (which must not create a second one or fall back to keep)."""
    existing = mailbox_create(account=account, name="Caf\u00e9")
    activate_script(
        account,
        'require ["fileinto", "mailbox"];\r\n'
        'if allof (header :is "subject" "a", mailboxexists "Cafe\u0301") { fileinto "Cafe\u0301"; stop; }\r\n'
        'if header :is "subject" "b" { fileinto :create "Ne\u0301w/Sub"; stop; }\r\n'
        'if header :is "subject" "c" { fileinto :create "Caf\u00e9/Bar"; stop; }\r\n',
    )
    deliver(raw_message(subject="a", message_id="<n1@x>"))
    deliver(raw_message(subject="b", message_id="<n2@x>"))
    deliver(raw_message(subject="b", message_id="<n3@x>"))
    deliver(raw_message(subject="c", message_id="<n4@x>"))
    assert [e.subject for e in Email.objects.filter(memberships__mailbox=existing)] == ["a"]
    created = Mailbox.objects.get(account=account, name="N\u00e9w", parent=None)
    sub = Mailbox.objects.get(account=account, name="Sub", parent=created)
    assert sorted(e.message_id[0] for e in Email.objects.filter(memberships__mailbox=sub)) == ["n2@x", "n3@x"]
    bar = Mailbox.objects.get(account=account, name="Bar", parent=existing)
    assert [e.subject for e in Email.objects.filter(memberships__mailbox=bar)] == ["c"]
    assert emails_in(account, "inbox") == []
    assert Mailbox.objects.filter(account=account, parent=None, name__startswith="N").count() == 1
    assert counts_are_exact(account)


def test_inbox_names_any_case_and_below(account):
    activate_script(
        account,
        'require ["fileinto", "mailbox"];\r\n'
        'if header :is "subject" "a" { fileinto "inbox"; } else { fileinto :create "INBOX/Receipts"; }\r\n',
    )
    deliver(raw_message(subject="a", message_id="<q1@x>"))
    deliver(raw_message(subject="b", message_id="<q2@x>"))
    inbox = Mailbox.objects.get(account=account, role="inbox")
    child = Mailbox.objects.get(account=account, name="Receipts", parent=inbox)
    assert [e.subject for e in emails_in(account, "inbox")] == ["a"]
    assert [e.subject for e in Email.objects.filter(memberships__mailbox=child)] == ["b"]
    assert not Mailbox.objects.filter(account=account, name__iexact="INBOX", parent=None).exclude(pk=inbox.pk)


def test_discard_redirect_and_reject(account):
    activate_script(
        account,
        'require ["reject"];\r\n'
        'if header :is "subject" "spam" { discard; stop; }\r\n'
        'if header :is "subject" "fwd" { redirect "boss@example.org"; stop; }\r\n'
        'if header :is "subject" "no" { reject "Not wanted here."; stop; }\r\n',
    )
    discarded = deliver(raw_message(subject="spam", message_id="<e@x>"))[0]
    assert discarded.code == 250 and discarded.email_id is None
    assert not Email.objects.exists()
    forwarded = deliver(raw_message(subject="fwd", message_id="<f@x>"))[0]
    assert forwarded.code == 250 and not Email.objects.exists()
    [outbound] = OutboundMessage.objects.all()
    assert outbound.recipients == ["boss@example.org"] and outbound.mail_from == "joe@example.net"
    assert bytes(outbound.raw).endswith(raw_message(subject="fwd", message_id="<f@x>"))
    # The retransmitted redirect is not sent twice.
    assert deliver(raw_message(subject="fwd", message_id="<f@x>"))[0].duplicate
    assert OutboundMessage.objects.count() == 1
    rejected = deliver(raw_message(subject="no", message_id="<g@x>"))[0]
    assert (rejected.code, rejected.status) == (550, "5.7.1") and "Not wanted here." in rejected.text
    assert not Email.objects.exists()


def test_script_vacation_once_per_sender(account):
    activate_script(account, 'require "vacation";\r\nvacation :days 3 :subject "Away" "Back on Monday.";\r\n')
    deliver(raw_message(message_id="<h@x>"))
    deliver(raw_message(message_id="<i@x>"))
    assert Email.objects.filter(account=account).count() == 2
    [reply] = OutboundMessage.objects.all()
    assert reply.mail_from == "" and reply.recipients == ["joe@example.net"]
    assert b"Subject: Away" in bytes(reply.raw) and b"Auto-Submitted: auto-replied" in bytes(reply.raw)
    assert VacationReply.objects.filter(sender="joe@example.net").count() == 1


def test_vacation_response_replies_within_its_dates(account):
    now = timezone.now()
    vacation_response_update(
        account=account,
        is_enabled=True,
        from_date=now - timedelta(days=1),
        to_date=now + timedelta(days=1),
        subject="Out of office",
        text_body="I am away.",
        html_body="<p>I am <b>away</b>.</p>",
    )
    deliver(raw_message(message_id="<j@x>"))
    [reply] = OutboundMessage.objects.all()
    body = bytes(reply.raw)
    assert b"Subject: Out of office" in body and b"text/html" in body and b"text/plain" in body
    assert reply.recipients == ["joe@example.net"]
    # Outside the dates: no reply (a new sender, so tracking isn't what stops it).
    vacation_response_update(account=account, to_date=now - timedelta(hours=1), from_date=now - timedelta(days=2))
    deliver(raw_message(message_id="<k@x>", from_="Ann <ann@example.net>"), mail_from="ann@example.net")
    assert OutboundMessage.objects.count() == 1
    assert Email.objects.filter(account=account).count() == 2


def test_no_vacation_reply_to_lists_or_null_sender(account):
    vacation_response_update(account=account, is_enabled=True, text_body="Away")
    deliver(raw_message(message_id="<l@x>", extra="List-Id: <dev.example.net>\r\n"))
    deliver(raw_message(message_id="<m@x>"), mail_from="")
    assert not OutboundMessage.objects.exists()
    assert Email.objects.filter(account=account).count() == 2


def test_duplicate_extension_rfc7352(account):
    # RFC 7352 §3 example: file a second copy of a Message-ID as a duplicate.
    mailbox_create(account=account, name="Trash-dups")
    activate_script(account, 'require ["duplicate", "fileinto"];\r\nif duplicate { fileinto "Trash-dups"; }\r\n')
    deliver(raw_message(message_id="<dup@x>", body="one\r\n"))
    deliver(raw_message(message_id="<dup@x>", body="two\r\n"))
    assert [e.subject for e in emails_in(account, "inbox")] == ["Hello"]
    assert len(emails_in(account, "Trash-dups")) == 1
    assert SieveDuplicate.objects.count() == 1


def test_subaddress_detail_reaches_the_script(account):
    mailbox_create(account=account, name="lists")
    activate_script(
        account,
        'require ["envelope", "subaddress", "fileinto"];\r\nif envelope :detail "to" "lists" { fileinto "lists"; }\r\n',
    )
    deliver(raw_message(message_id="<n@x>"), "alice+lists@example.com")
    assert len(emails_in(account, "lists")) == 1


def test_runtime_error_keeps_the_message(account):
    activate_script(
        account,
        'require "fileinto";\r\n'
        'redirect "a@example.org"; redirect "b@example.org"; redirect "c@example.org";\r\n'
        'redirect "d@example.org"; redirect "e@example.org"; redirect "f@example.org";\r\n',
    )
    [result] = deliver(raw_message(message_id="<o@x>"))
    assert result.code == 250
    assert len(emails_in(account, "inbox")) == 1


def test_vacation_from_must_be_an_own_address(account):
    activate_script(
        account, 'require "vacation";\r\nvacation :from "ceo@bank.example" :subject "Away" "Back soon.";\r\n'
    )
    deliver(raw_message(message_id="<p@x>"))
    [reply] = OutboundMessage.objects.all()
    assert b"ceo@bank.example" not in bytes(reply.raw)
    assert b"From: alice@example.com" in bytes(reply.raw)


def test_over_quota_is_answered_so_the_sender_retries_or_bounces(account):
    # RFC 9425 limits reached at delivery: 452 4.2.2 while mail could fit once some is
    # deleted (the sender retries), 552 5.2.2 for a message bigger than the quota itself.
    from accounts.quotas import quota_set

    first = raw_message(message_id="<q1@x>")
    quota_set(scope="account", account=account, resource_type="octets", hard_limit=3000)
    [stored] = deliver(first, "alice@example.com")
    assert stored.code == 250 and len(first) < 350
    # About 2,900 octets stored: it fits an empty quota, not beside the first message.
    [retry] = deliver(raw_message(message_id="<q2@x>", body="x" * 2600), "alice@example.com")
    assert (retry.code, retry.status) == (452, "4.2.2")
    [bounce] = deliver(raw_message(message_id="<q3@x>", body="y" * 4000), "alice@example.com")
    assert (bounce.code, bounce.status) == (552, "5.2.2")
    assert len(emails_in(account, "inbox")) == 1


HTML_PART = (
    b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>caf=E9 <b>needle-two</b></p>"
)


def _multipart(inner: bytes, *, message_id: str, subject: str) -> bytes:
    """multipart/mixed with a prologue, a base64 text part, ``inner`` as a second part and
    an epilogue."""
    return (
        (
            f"From: joe@example.net\r\nTo: alice@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "prologue-word\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            "Ym9keSB3aXRoIG5lZWRsZS1vbmUgaW4gaXQK\r\n--b1\r\n"
        ).encode()
        + inner
        + b"\r\n--b1--\r\nepilogue-word\r\n"
    )


def test_body_test_reads_the_stored_parse_and_looks_into_embedded_messages(account):
    """RFC 5173: :text sees the decoded text parts (read from the store's parse of the
    message), the text inside an attached message/rfc822 too, and :content "multipart"
    a multipart's prologue and epilogue."""
    for name in ("One", "Two", "Three", "Prologue"):
        mailbox_create(account=account, name=name)
    activate_script(
        account,
        'require ["fileinto", "body"];\r\n'
        'if body :content "multipart" :contains "prologue-word" { fileinto "Prologue"; }\r\n'
        'if body :text :contains "needle-one" { fileinto "One"; }\r\n'
        'if body :text :contains "needle-two" { fileinto "Two"; }\r\n'
        'if body :content "image" :contains "needle-one" { fileinto "Three"; }\r\n',
    )
    deliver(_multipart(HTML_PART, message_id="<body1@x>", subject="plain and html"))
    forwarded = (
        b"Content-Type: message/rfc822\r\n\r\nFrom: bob@example.org\r\nSubject: inner\r\n"
        b"Content-Type: text/plain\r\n\r\nthe needle-two is inside\r\n"
    )
    deliver(_multipart(forwarded, message_id="<body2@x>", subject="forwarded"))
    image = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nbmVlZGxlLW9uZQ==\r\n"
    deliver(_multipart(image, message_id="<body3@x>", subject="picture"))

    def subjects(name: str) -> set[str]:
        return {email.subject for email in emails_in(account, name)}

    assert subjects("One") == {"plain and html", "forwarded", "picture"}
    assert subjects("Two") == {"plain and html", "forwarded"}
    assert subjects("Three") == {"picture"}  # a non-text part is matched only when asked for
    assert subjects("Prologue") == {"plain and html", "forwarded", "picture"}
    assert subjects("inbox") == set()
    assert counts_are_exact(account)


def test_body_test_does_not_parse_the_message_again(account, monkeypatch):
    """The text parts come from the parse the store made; only an embedded message (whose
    parts that parse doesn't open) sends the body test to a parse of its own."""
    from groupware.mail.sieve import message as sieve_message

    parses = []
    original = sieve_message._body_parts
    monkeypatch.setattr(sieve_message, "_body_parts", lambda raw: parses.append(raw) or original(raw))
    mailbox_create(account=account, name="Found")
    activate_script(
        account, 'require ["fileinto", "body"];\r\nif body :text :contains "needle" { fileinto "Found"; }\r\n'
    )
    plain = b"Content-Type: text/plain\r\n\r\nno pins here\r\n"
    deliver(_multipart(plain, message_id="<np1@x>", subject="no second parse"))
    assert parses == []
    forwarded = b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhay\r\n"
    deliver(_multipart(forwarded, message_id="<np2@x>", subject="parsed again"))
    assert len(parses) == 1
    assert {email.subject for email in emails_in(account, "Found")} == {"no second parse", "parsed again"}


def test_body_test_uses_the_text_the_parse_decoded(account, monkeypatch):
    """The text parts the store's parse decoded (base64, quoted-printable, a charset) and
    the text of its HTML part without markup are what the body test reads: no part is
    decoded, and no HTML converted, a second time. The verdicts stay those of RFC 5173."""
    from groupware.mail import mime
    from groupware.mail.sieve import message as sieve_message

    decoded, converted = [], []
    original_content, original_html = sieve_message.part_content, mime.html_to_text
    monkeypatch.setattr(
        sieve_message, "part_content", lambda raw, node: decoded.append(node) or original_content(raw, node)
    )
    monkeypatch.setattr(mime, "html_to_text", lambda text: converted.append(text) or original_html(text))
    monkeypatch.setattr(sieve_message, "html_to_text", lambda text: converted.append(text) or original_html(text))
    for name in ("Text", "Markup", "Html"):
        mailbox_create(account=account, name=name)
    activate_script(
        account,
        'require ["fileinto", "body", "imap4flags"];\r\n'
        'if body :text :contains "needle-one" { addflag "$one"; }\r\n'
        'if body :text :contains "needle-two" { fileinto "Text"; }\r\n'
        'if body :text :contains "<b>" { fileinto "Markup"; }\r\n'
        'if body :content "text/html" :contains "<b>needle-two</b>" { fileinto "Html"; }\r\n',
    )
    deliver(_multipart(HTML_PART, message_id="<reuse1@x>", subject="decoded once"))
    assert decoded == []
    assert len(converted) == 1  # the parse's, for the preview and the index
    (email,) = emails_in(account, "Text")
    assert email.subject == "decoded once"
    assert "$one" in email.keywords  # the base64 text part, read from the parse
    assert emails_in(account, "Markup") == []  # :text reads the HTML without its markup
    assert [email.subject for email in emails_in(account, "Html")] == ["decoded once"]  # :content: as is


def test_the_script_decodes_each_header_field_once(account, monkeypatch):
    """Rules testing the same fields read them from the view's memo: one RFC 2047 decode
    and one address parse of each field per message."""
    from groupware.mail.sieve import message as sieve_message

    decodes = []
    original = sieve_message.decode_header_value
    monkeypatch.setattr(sieve_message, "decode_header_value", lambda value: decodes.append(value) or original(value))
    sieve_message._addresses.cache_clear()
    mailbox_create(account=account, name="Hit")
    activate_script(
        account,
        'require ["fileinto", "imap4flags"];\r\n'
        'if header :contains "subject" "nothing" { addflag "$a"; }\r\n'
        'if header :contains "subject" "caf\u00e9" { addflag "$b"; }\r\n'
        'if header :matches "Subject" "*report*" { addflag "$c"; }\r\n'
        'if address :domain :is "from" "example.net" { addflag "$d"; }\r\n'
        'if address :localpart :is "from" "joe" { fileinto "Hit"; }\r\n',
    )
    deliver(
        b"From: Joe <joe@example.net>\r\nTo: alice@example.com\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9_report?=\r\nMessage-ID: <once@x>\r\n\r\nhello\r\n"
    )
    assert decodes == ["=?utf-8?q?caf=C3=A9_report?="]
    assert sieve_message._addresses.cache_info().misses == 1
    (email,) = emails_in(account, "Hit")
    assert {"$b", "$c", "$d"} <= set(email.keywords) and "$a" not in email.keywords


def test_a_filtered_delivery_runs_a_fixed_set_of_statements(account):
    """Pinned: a message filed by the Sieve script into a folder, as a reply joining an
    existing thread. The counts after the insert are worked out (no second read of the
    thread), and whether a quota exists comes with the account lock."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    mailbox_create(account=account, name="Filed")
    activate_script(account, 'require "fileinto";\r\nif header :contains "subject" "Hello" { fileinto "Filed"; }\r\n')
    deliver_message(
        raw=raw_message(message_id="<first@example.net>"),
        mail_from="joe@example.net",
        recipients=["alice@example.com"],
        cached_recipients=True,
    )
    reply = raw_message(
        subject="Re: Hello", message_id="<second@example.net>", extra="In-Reply-To: <first@example.net>\r\n"
    )
    with CaptureQueriesContext(connection) as captured:
        # As the listeners call it: the recipient was resolved at RCPT moments ago.
        [result] = deliver_message(
            raw=reply, mail_from="joe@example.net", recipients=["alice@example.com"], cached_recipients=True
        )
    assert result.code == 250 and not result.duplicate
    statements = [query["sql"] for query in captured.captured_queries]
    assert sum("FROM mail_emailmailbox em JOIN" in sql for sql in statements) == 1, statements
    assert sum("accounts_quota" in sql for sql in statements) == 1, statements  # with the account lock
    # PostgreSQL: the plan's read, then (between the test's SAVEPOINT and RELEASE) the lock,
    # the mailboxes' roles, the blob rows, the thread lookup, the snapshot, the new Email's
    # key, one statement writing the Email, its membership, its index row, the count update
    # and the search row, the dedup record, and the change records with the account row in
    # one. SQLite: the Email, the membership, the index row and the count update each a
    # statement, the blob rows three, the search row a savepoint, a delete and an insert,
    # and the change records and the account row two.
    expected = {"postgresql": 12, "sqlite": 20}[connection.vendor]
    assert len(statements) == expected, statements
    if connection.vendor == "postgresql":
        [written] = [sql for sql in statements if sql.startswith("WITH w0 AS (INSERT INTO")]
        for table in ("mail_email", "mail_emailmailbox", "mail_messageidindex", "mail_email_search"):
            assert f'INTO "{table}"' in written or f"INTO {table} " in written, table
        assert "UPDATE mail_mailbox SET total_emails" in written
    [email] = emails_in(account, "Filed")[1:]
    assert email.subject == "Re: Hello"
    assert counts_are_exact(account)
