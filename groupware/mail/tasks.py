"""Mail tasks (Celery; in-process when no broker is configured). Thin and idempotent."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)
MAX_SEND_ATTEMPTS = 8


@shared_task(name="groupware.mail.tasks.send_outbound", bind=True, acks_late=True, ignore_result=True)
def send_outbound(self, outbound_id: int) -> bool:
    """Send one queued outbound message (vacation reply, redirect); retried with back-off."""
    from groupware.mail.delivery.models import OutboundMessage
    from groupware.mail.delivery.outbound import outbound_send

    message = OutboundMessage.objects.filter(pk=outbound_id).first()
    if message is None:
        return False
    try:
        return outbound_send(message=message)
    except (OSError, smtplib.SMTPException) as error:
        OutboundMessage.objects.filter(pk=outbound_id).update(attempts=F("attempts") + 1, last_error=str(error)[:2000])
        logger.warning("outbound message %s not sent: %s", outbound_id, error)
        if settings.CELERY_TASK_ALWAYS_EAGER or message.attempts + 1 >= MAX_SEND_ATTEMPTS:
            return False
        raise self.retry(countdown=60 * 2**message.attempts) from None


@shared_task(name="groupware.mail.tasks.purge_delivery_records", acks_late=True, ignore_result=True)
def purge_delivery_records() -> int:
    """Forget delivery records older than the dedup window and expired RFC 7352 marks."""
    from groupware.mail.delivery.models import DeliveryRecord, SieveDuplicate

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.MAIL_DEDUP_WINDOW)
    removed, _ = DeliveryRecord.objects.filter(created__lt=cutoff).delete()
    expired, _ = SieveDuplicate.objects.filter(expires__lt=now).delete()
    return removed + expired
