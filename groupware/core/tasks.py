"""Periodic maintenance, run by Celery beat (CELERY_BEAT_SCHEDULE in settings).

Thin and idempotent: each task calls one service that is safe to run again, or twice at
once, so late acknowledgement (a task re-run after a worker dies) does no harm.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from groupware.core import blobs, changes


@shared_task(name="groupware.core.tasks.blob_gc", acks_late=True, ignore_result=True)
def blob_gc() -> dict[str, int]:
    """Remove expired unreferenced blobs and content no account can see (RFC 8620 §6)."""
    result = blobs.blob_gc()
    return {"account_blobs": result.account_blobs, "blobs": result.blobs}


@shared_task(name="groupware.core.tasks.purge_changes", acks_late=True, ignore_result=True)
def purge_changes() -> int:
    """Forget tombstones older than JMAP_CHANGES_RETENTION (RFC 8620 §5.2:
    /changes from an older state then answers cannotCalculateChanges)."""
    older_than = timezone.now() - timedelta(seconds=settings.JMAP_CHANGES_RETENTION)
    return changes.purge_tombstones(older_than=older_than)
