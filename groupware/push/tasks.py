"""Web Push as Celery tasks: thin, retried with back-off, safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from groupware.push import webpush

MAX_RETRIES = 5


def _run(task: Any, subscription_pk: int, payload: dict[str, Any], *, verification: bool) -> bool:
    outcome = webpush.deliver(subscription_pk, payload, verification=verification)
    if outcome.retry_after is not None:
        # RFC 8620 §7.2: a 429 must slow pushes down; back off exponentially.
        countdown = max(outcome.retry_after, 2.0**task.request.retries)
        if task.request.retries >= MAX_RETRIES:
            return False
        raise task.retry(countdown=countdown, max_retries=MAX_RETRIES)
    return outcome.delivered


@shared_task(bind=True, name="groupware.push.tasks.push_deliver", acks_late=True, ignore_result=True)
def push_deliver(self: Any, subscription_pk: int, payload: dict[str, Any]) -> bool:
    return _run(self, subscription_pk, payload, verification=False)


@shared_task(bind=True, name="groupware.push.tasks.push_verify", acks_late=True, ignore_result=True)
def push_verify(self: Any, subscription_pk: int) -> bool:
    from groupware.push.models import PushSubscription

    subscription = PushSubscription.objects.filter(pk=subscription_pk).first()
    if subscription is None:
        return False
    payload = {
        "@type": "PushVerification",
        "pushSubscriptionId": subscription.jmap_id,
        "verificationCode": subscription.verification_code,
    }
    return _run(self, subscription_pk, payload, verification=True)


@shared_task(name="groupware.push.tasks.purge_expired", acks_late=True, ignore_result=True)
def purge_expired() -> int:
    from groupware.push.services import push_subscriptions_purge_expired

    return push_subscriptions_purge_expired()
