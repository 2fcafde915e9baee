"""Identities, submissions, the outgoing queue, DKIM keys and per-user sending limits."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Identity(models.Model):
    """RFC 8621 §6: an address (or ``*@domain``) the account's owner sends from."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="identities")
    name = models.CharField(max_length=255, default="", blank=True)
    email = models.CharField(max_length=320)
    reply_to = models.JSONField(null=True, blank=True)
    bcc = models.JSONField(null=True, blank=True)
    text_signature = models.TextField(default="", blank=True)
    html_signature = models.TextField(default="", blank=True)
    may_delete = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        indexes = [models.Index(fields=["account", "email"], name="identity_by_email")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class OutboundMessage(models.Model):
    """One message in the outgoing queue (the database is the queue's source of truth).

    ``blob`` holds the octets to send: Bcc removed, line ends CRLF, DKIM-signed. Its
    recipients are rows of OutboundRecipient, each with its own state and retry time.
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    blob = models.ForeignKey("core.Blob", on_delete=models.PROTECT, related_name="+")
    mail_from = models.CharField(max_length=320, blank=True)
    mail_parameters = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    send_at = models.DateTimeField()
    created = models.DateTimeField(default=timezone.now)
    # Set once every recipient reached a final state; the blob reference is then dropped.
    finished = models.DateTimeField(null=True, blank=True)
    # A DSN is never sent about a DSN or an MDN (RFC 3464 §2, RFC 8098 §2.1).
    is_report = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["finished", "send_at"], name="outbound_pending"),
            models.Index(fields=["user", "created"], name="outbound_by_user"),
        ]

    def __str__(self) -> str:
        return f"outbound {self.pk} from {self.mail_from}"


class OutboundRecipient(models.Model):
    QUEUED = "queued"
    SENT = "sent"  # accepted by the next hop (remote) or stored (local)
    FAILED = "failed"
    CANCELED = "canceled"
    STATES = [(QUEUED, "queued"), (SENT, "sent"), (FAILED, "failed"), (CANCELED, "canceled")]

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=320)
    parameters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=STATES, default=QUEUED)
    is_local = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField()
    # While a relay run holds the recipient (a lease, so two runs never send it twice).
    locked_until = models.DateTimeField(null=True, blank=True)
    lease = models.CharField(max_length=32, blank=True)
    smtp_reply = models.TextField(default="", blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt"], name="outbound_rcpt_due")]

    def __str__(self) -> str:
        return f"{self.address} ({self.state})"


class EmailSubmission(models.Model):
    """RFC 8621 §7. emailId/threadId/identityId are kept as numbers: destroying the Email
    or the Identity must not change the submission (§7.5)."""

    PENDING = "pending"
    FINAL = "final"
    CANCELED = "canceled"

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="submissions")
    user = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    identity_pk = models.BigIntegerField()
    email_pk = models.BigIntegerField()
    thread_pk = models.BigIntegerField()
    envelope = models.JSONField()
    send_at = models.DateTimeField()
    undo_status = models.CharField(max_length=16, default=PENDING)
    delivery_status = models.JSONField(null=True, blank=True)
    dsn_blob_ids = models.JSONField(default=list, blank=True)
    mdn_blob_ids = models.JSONField(default=list, blank=True)
    recipient_count = models.PositiveIntegerField(default=0)
    outbound = models.OneToOneField(OutboundMessage, null=True, on_delete=models.SET_NULL, related_name="submission")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["account", "send_at"], name="submission_send_at"),
        ]

    def __str__(self) -> str:
        return f"submission {self.pk}"


class DkimKey(models.Model):
    """A domain's DKIM signing key (RFC 6376); the public half is published in DNS at
    ``<selector>._domainkey.<domain>``."""

    domain = models.OneToOneField("accounts.Domain", on_delete=models.CASCADE, related_name="dkim_key")
    selector = models.CharField(max_length=63)
    private_key = models.TextField(help_text="PEM (PKCS#8)")
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "DKIM key"

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name}"


class SenderPolicy(models.Model):
    """Per-user sending rights and limits (empty limits: the settings' defaults)."""

    user = models.OneToOneField("accounts.User", on_delete=models.CASCADE, related_name="sender_policy")
    may_send = models.BooleanField(default=True)
    messages_per_hour = models.PositiveIntegerField(null=True, blank=True)
    recipients_per_day = models.PositiveIntegerField(null=True, blank=True)
    # Domains whose every address the user may send from (identities "*@domain").
    owned_domains = models.ManyToManyField("accounts.Domain", blank=True, related_name="+")

    class Meta:
        verbose_name_plural = "sender policies"

    def __str__(self) -> str:
        return f"sending policy of {self.user}"
