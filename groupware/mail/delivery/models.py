"""What delivery stores besides Emails: Sieve scripts, the vacation response, and the
records that keep delivery idempotent (retransmissions, vacation replies, RFC 7352
duplicates). Imported by groupware.mail.models, so they belong to the mail app."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SieveScript(models.Model):
    """RFC 9661 §2: a Sieve script of an account; its content is a blob."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="sieve_scripts")
    name = models.CharField(max_length=512)
    blob = models.ForeignKey("core.Blob", on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "mail"
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="sieve_script_name_unique"),
            # RFC 9661 §2: at most one active script per account.
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(is_active=True), name="sieve_script_one_active"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class VacationResponse(models.Model):
    """RFC 8621 §8: the account's single vacation response (id "singleton")."""

    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="vacation_response")
    is_enabled = models.BooleanField(default=False)
    from_date = models.DateTimeField(null=True, blank=True)
    to_date = models.DateTimeField(null=True, blank=True)
    subject = models.TextField(null=True, blank=True)  # noqa: DJ001  (null is "not set", RFC 8621 §8)
    text_body = models.TextField(null=True, blank=True)  # noqa: DJ001
    html_body = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        app_label = "mail"

    def __str__(self) -> str:
        return f"vacation response of account {self.account_id}"


class DeliveryRecord(models.Model):
    """One message delivered to one account: a retransmission with the same key (Message-ID
    and content digest) within MAIL_DEDUP_WINDOW is answered 250 and not stored again.

    The unique constraint makes the check race-free: two deliveries of one message commit
    one row, the other fails on the constraint and rolls back everything it wrote.
    """

    # Covered by delivery_record_unique.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=64)
    email_id = models.BigIntegerField(null=True, blank=True)  # None: the script discarded it
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "mail"
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="delivery_record_unique")]
        indexes = [models.Index(fields=["created"], name="delivery_record_created")]

    def __str__(self) -> str:
        return self.key


class VacationReply(models.Model):
    """RFC 5230 §4.2: when a sender last got an automatic reply for one vacation handle."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    handle = models.CharField(max_length=64)
    sender = models.CharField(max_length=320)
    sent = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "mail"
        constraints = [models.UniqueConstraint(fields=["account", "handle", "sender"], name="vacation_reply_unique")]

    def __str__(self) -> str:
        return f"{self.sender} ({self.handle})"


class SieveDuplicate(models.Model):
    """RFC 7352: a duplicate-tracking key seen by the account's script, until ``expires``."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)  # SHA-256 of the engine's key
    expires = models.DateTimeField()

    class Meta:
        app_label = "mail"
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="sieve_duplicate_unique")]

    def __str__(self) -> str:
        return self.key


class OutboundMessage(models.Model):
    """A message delivery sends out (vacation reply, redirect, rejection), queued for the
    Celery task that hands it to the relay (groupware.mail.delivery.outbound)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    raw = models.BinaryField()
    mail_from = models.CharField(max_length=320, blank=True)
    recipients = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)
    sent = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(default="", blank=True)

    class Meta:
        app_label = "mail"
        indexes = [models.Index(fields=["sent", "created"], name="delivery_outbound_pending")]

    def __str__(self) -> str:
        return f"outbound {self.pk} to {', '.join(self.recipients)}"
