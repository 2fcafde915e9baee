"""Storage shared by every data type: blobs and change tracking."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Blob(models.Model):
    """Binary content, stored once per distinct SHA-256 digest (content addressing)."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.sha256


class AccountBlob(models.Model):
    """Makes a blob visible in one account (RFC 8620 §6: blobs belong to an account).

    ``refcount`` counts the objects of the account that reference the blob; an uploaded
    blob with no reference is removed after ``BLOB_UNREFERENCED_TTL`` by a periodic task.
    """

    # Covered by account_blob_unique and account_blob_by_blob (no pattern-ops copy either).
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="blobs", db_index=False)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="account_refs", db_index=False)
    type = models.CharField(max_length=255, default="application/octet-stream")
    refcount = models.IntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    # RFC 8620 §6.1: while unreferenced, a blob is visible only to the users who uploaded
    # (or copied) it into the account, even in a shared account.
    uploaders = models.ManyToManyField("accounts.User", related_name="+", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "blob"], name="account_blob_unique")]
        indexes = [
            models.Index(fields=["created"], condition=models.Q(refcount=0), name="account_blob_unreferenced"),
            models.Index(fields=["blob"], name="account_blob_by_blob"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.blob_id}"


class ObjectChange(models.Model):
    """The last change to one object: the data behind /changes and /queryChanges.

    One row per object and type, rewritten on each change (created_modseq stays, modseq
    moves, destroyed marks a tombstone). /changes is one range scan on
    (account, type, modseq), whatever the number of objects (RFC 8620 §5.2).
    """

    # Covered by object_change_unique.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    type_name = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255)
    created_modseq = models.BigIntegerField()
    modseq = models.BigIntegerField()
    destroyed = models.BooleanField(default=False)
    changed = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "type_name", "object_id"], name="object_change_unique"),
        ]
        indexes = [
            models.Index(fields=["account", "type_name", "modseq"], name="object_change_by_modseq"),
            models.Index(fields=["changed"], condition=models.Q(destroyed=True), name="object_change_tombstones"),
        ]

    def __str__(self) -> str:
        state = "destroyed" if self.destroyed else "changed"
        return f"{self.type_name} {self.object_id} {state} at {self.modseq}"
