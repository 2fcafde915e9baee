"""Celery tasks of the relay: thin, idempotent, acknowledged late (STYLE §8)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from groupware.mail.submission import relay


@shared_task(name="groupware.mail.submission.tasks.relay_message", acks_late=True, ignore_result=True)
def relay_message(message_pk: int) -> dict[str, int]:
    """Send one queued message's due recipients (safe to run twice: recipients are leased)."""
    return relay.relay_message(message_pk)


@shared_task(name="groupware.mail.submission.tasks.relay_due", acks_late=True, ignore_result=True)
def relay_due() -> int:
    """Periodic: hand every message with a due recipient (delayed sends, retries) to a worker.

    On the embedded default (no broker) the messages are sent right here, in-process."""
    pks = relay.due_message_pks()
    for pk in pks:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            relay.relay_message(pk)
        else:
            relay_message.delay(pk)
    return len(pks)
