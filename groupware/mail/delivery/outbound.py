"""Messages that delivery sends out: vacation replies and redirects.

``queue_outbound`` stores the message (in the caller's transaction, so it exists exactly
when the delivery that caused it committed) and, after the commit, queues the Celery task
``groupware.mail.tasks.send_outbound``. That task hands the message to the smarthost named
by ``SMTP_RELAY_HOST``/``SMTP_RELAY_PORT`` when that is set, else hands it to the
submission relay's queue (groupware.mail.submission.services.outbound_queue: the
smarthost of SUBMISSION_SMARTHOST or direct MX delivery, with retries).
"""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from groupware.mail.delivery.models import OutboundMessage

logger = logging.getLogger(__name__)
RELAY_TIMEOUT = 30


def queue_outbound(*, account: Account, raw: bytes, mail_from: str, recipients: list[str]) -> OutboundMessage:
    """Store an outgoing message and send it once the current transaction commits."""
    message = OutboundMessage.objects.create(account=account, raw=raw, mail_from=mail_from, recipients=list(recipients))
    pk = message.pk
    transaction.on_commit(lambda: _enqueue(pk))
    return message


def _enqueue(pk: int) -> None:
    from groupware.mail.tasks import send_outbound

    try:
        send_outbound.delay(pk)
    except Exception:  # the broker is down: the message stays stored, unsent; never fail delivery
        logger.exception("could not queue outbound message %s", pk)


def outbound_send(*, message: OutboundMessage) -> bool:
    """Hand one stored message to the smarthost; True once it is accepted (or was already).

    Without SMTP_RELAY_HOST the message goes into the submission relay's queue
    (groupware.mail.submission: smarthost or MX, retries, DSNs), which then owns it.
    Raises OSError/smtplib.SMTPException on a failure worth retrying.
    """
    if message.sent is not None:
        return True
    host = getattr(settings, "SMTP_RELAY_HOST", None)
    if not host:
        from groupware.mail.submission.services import outbound_queue

        with transaction.atomic():
            outbound_queue(
                account=message.account,
                raw=bytes(message.raw),
                mail_from=message.mail_from,
                recipients=list(message.recipients),
                is_report=not message.mail_from,  # an auto-reply: never a DSN about it
            )
            OutboundMessage.objects.filter(pk=message.pk).update(sent=timezone.now(), attempts=message.attempts + 1)
        return True
    port = int(getattr(settings, "SMTP_RELAY_PORT", 25))
    with smtplib.SMTP(host, port, timeout=RELAY_TIMEOUT) as client:
        refused = client.sendmail(message.mail_from, message.recipients, bytes(message.raw))
    if refused:
        logger.warning("relay refused recipients of outbound message %s: %s", message.pk, refused)
    OutboundMessage.objects.filter(pk=message.pk).update(sent=timezone.now(), attempts=message.attempts + 1)
    return True
