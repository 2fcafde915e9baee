"""A Celery task for tests/test_celery_worker.py: a real database write through a service that
records which process ran it. A worker loads it with ``-I tests.celery_probe``."""

from __future__ import annotations

import os

from celery import shared_task

from accounts.services import user_create


@shared_task(name="tests.celery_probe.user_create_here", acks_late=True)
def user_create_here(email: str) -> int:
    return user_create(email=email, name=f"created by pid {os.getpid()}").pk


@shared_task(name="tests.celery_probe.deliver_here", acks_late=True)
def deliver_here(account_pk: int, subject: str) -> int:
    """Store a message in an account's inbox from this process (as delivery would)."""
    from accounts.models import Account
    from tests.mail.factories import ingest, message

    account = Account.objects.get(pk=account_pk)
    return ingest(account, message(subject=subject, message_id=f"<{subject}.{os.getpid()}@example.com>")).pk
