"""The mail store: mailboxes, threads, emails and their membership (RFC 8621).

An email's raw message is a blob (content-addressed, groupware.core.blobs); everything
/get and /query need is parsed once at ingest into columns and JSON here.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Mailbox(models.Model):
    """RFC 8621 §2. Counts are kept up to date by the services, never counted per request."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="mailboxes")
    name = models.CharField(max_length=255)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # NULL, not "", for "no role": the per-account uniqueness constraint skips NULLs.
    role = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    sort_order = models.PositiveIntegerField(default=0)
    # isSubscribed of the account's owner; other users who may see the account subscribe
    # separately (RFC 8621 §2: "MUST be stored separately per user"): their user pks.
    is_subscribed = models.BooleanField(default=True)
    shared_subscribers = models.JSONField(default=list, blank=True)
    total_emails = models.PositiveIntegerField(default=0)
    unread_emails = models.PositiveIntegerField(default=0)
    total_threads = models.PositiveIntegerField(default=0)
    unread_threads = models.PositiveIntegerField(default=0)
    # The modseq of the last change to anything but the four counts: Mailbox/changes
    # answers updatedProperties (counts only) when no changed mailbox moved this (§2.2).
    props_modseq = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "role"], condition=models.Q(role__isnull=False), name="mailbox_role_unique"
            ),
        ]
        indexes = [models.Index(fields=["account", "parent", "name"], name="mailbox_siblings")]

    def __str__(self) -> str:
        return self.name


class Thread(models.Model):
    """RFC 8621 §3: a conversation; its emails are ordered by receivedAt."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="threads")
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"thread {self.pk}"


class Email(models.Model):
    """RFC 8621 §4. Immutable message data plus mutable keywords and mailboxes."""

    # No index of their own: email_received, email_thread_order and email_blob lead with
    # these columns (every index is written on each of the many inserts).
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="emails", db_index=False)
    thread = models.ForeignKey(Thread, on_delete=models.PROTECT, related_name="emails", db_index=False)
    blob = models.ForeignKey("core.Blob", on_delete=models.PROTECT, related_name="+", db_index=False)
    size = models.PositiveBigIntegerField()
    received_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # The Date field's own offset from UTC in minutes: sentAt is shown with it (RFC 8621
    # §4.1.3: identical to header:Date:asDate).
    sent_at_offset = models.SmallIntegerField(null=True, blank=True)
    # None without a Subject header field (RFC 8621 §4.1.3 subject: String|null).
    subject = models.TextField(null=True, blank=True)  # noqa: DJ001 (null and "" differ)
    # Subject without Re:/Fwd: prefixes, lower-cased: threading.
    base_subject = models.TextField(default="", blank=True)
    message_id = models.JSONField(null=True, blank=True)
    in_reply_to = models.JSONField(null=True, blank=True)
    references = models.JSONField(null=True, blank=True)
    sender = models.JSONField(null=True, blank=True)
    from_addresses = models.JSONField(null=True, blank=True)
    to = models.JSONField(null=True, blank=True)
    cc = models.JSONField(null=True, blank=True)
    bcc = models.JSONField(null=True, blank=True)
    reply_to = models.JSONField(null=True, blank=True)
    # The sort keys of RFC 8621 §4.4.2 (groupware.mail.services.emails.sort_columns): the
    # base subject and the first From/To address's name (or email) as they are, for the
    # i;octet, i;ascii-casemap and i;ascii-numeric collations (compared in SQL), and their
    # i;unicode-casemap keys (RFC 5051, computed here: no database can).
    sort_subject = models.TextField(default="", blank=True)
    sort_from = models.CharField(max_length=320, default="", blank=True)
    sort_to = models.CharField(max_length=320, default="", blank=True)
    sort_subject_unicode = models.TextField(default="", blank=True)
    sort_from_unicode = models.TextField(default="", blank=True)
    sort_to_unicode = models.TextField(default="", blank=True)
    preview = models.CharField(max_length=256, default="", blank=True)
    has_attachment = models.BooleanField(default=False)
    # {"$seen": true, ...}; is_unread mirrors "neither $seen nor $draft" for the counts.
    keywords = models.JSONField(default=dict)
    is_unread = models.BooleanField(default=True)
    # The parsed message (groupware.mail.mime.ParsedMessage.to_dict()): headers, body
    # structure, textBody/htmlBody/attachments; /get never re-parses the raw message.
    parsed = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["account", "-received_at"], name="email_received"),
            models.Index(fields=["thread", "received_at"], name="email_thread_order"),
            models.Index(fields=["blob"], name="email_blob"),
        ]

    def __str__(self) -> str:
        return self.subject or f"email {self.pk}"


class EmailMailbox(models.Model):
    """Membership of an email in a mailbox, with the columns the common listing needs
    (the inbox sorted by receivedAt) copied in so it is one index scan."""

    # Covered by email_mailbox_by_thread, email_mailbox_received and email_mailbox_unique.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    thread_id = models.BigIntegerField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "mailbox"], name="email_mailbox_unique")]
        indexes = [
            models.Index(fields=["mailbox", "-received_at"], name="email_mailbox_received"),
            models.Index(fields=["mailbox", "thread_id"], name="email_mailbox_thread"),
            models.Index(fields=["account", "thread_id"], name="email_mailbox_by_thread"),
        ]

    def __str__(self) -> str:
        return f"email {self.email_id} in mailbox {self.mailbox_id}"


class MessageIdIndex(models.Model):
    """Message-ID -> thread, for threading new mail by References/In-Reply-To (RFC 8621 §3)."""

    # Covered by message_id_lookup.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=998)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="+")
    base_subject = models.TextField(default="", blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "message_id"], name="message_id_lookup")]

    def __str__(self) -> str:
        return self.message_id


# Delivery's models (Sieve scripts, vacation response, idempotency records) live in their
# own module and belong to this app.
from groupware.mail.delivery.models import (  # noqa: E402, F401
    DeliveryRecord,
    OutboundMessage,
    SieveDuplicate,
    SieveScript,
    VacationReply,
    VacationResponse,
)
