"""Web Push delivery (RFC 8030) of PushVerification and StateChange objects.

Bodies are encrypted with the subscription's keys when it has them (RFC 8291, aes128gcm,
through pywebpush) and every request carries a VAPID signature (RFC 8292, RFC 9749 §4).
Requests go out from Celery tasks (``groupware.push.tasks``), retried on 429, 5xx and
network errors; a 404 or 410 means the subscription is gone at the push service, so it is
destroyed here too.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from accounts.credentials import credential_valid
from accounts.services import ACCOUNT_READERS_SQL
from groupware.core import sql
from groupware.core.ids import account_id
from groupware.push.models import PushSubscription
from groupware.push.services import push_subscription_destroy, push_url_problem, vapid_key_current
from jmap.jsonio import dumps

logger = logging.getLogger(__name__)
REQUEST_TIMEOUT = 10
VAPID_LIFETIME = 12 * 3600  # RFC 8292 §2: exp no more than 24 hours ahead


@dataclass(frozen=True)
class Outcome:
    delivered: bool = False
    retry_after: float | None = None  # set: try again after this many seconds
    gone: bool = False  # the subscription was destroyed


# Plain SQL (groupware.core.sql): this runs after every committed write.
_TARGETS = (
    "SELECT s.id, CAST(s.types AS TEXT) FROM push_pushsubscription s"  # noqa: S608 (a constant sub-select)
    " JOIN accounts_user u ON u.id = s.user_id"
    " WHERE s.verified AND s.expires > %s AND u.is_active"
    f" AND s.user_id IN ({ACCOUNT_READERS_SQL})"
)


def dispatch_state_change(*, account_pk: int, states: dict[str, str]) -> None:
    """Queue a StateChange for every verified, live subscription of a user who sees the account."""
    from groupware.push.tasks import push_deliver

    targets = sql.rows(_TARGETS, [sql.db_datetime(timezone.now()), account_pk, account_pk])
    for pk, types_text in targets:
        types = json.loads(types_text) if types_text is not None else None
        wanted = states if types is None else {name: s for name, s in states.items() if name in types}
        if wanted:
            payload = {"@type": "StateChange", "changed": {account_id(account_pk): wanted}}
            enqueue(push_deliver, pk, payload)


_embedded_pool: ThreadPoolExecutor | None = None


def enqueue(task: Any, *args: Any) -> None:
    """To a Celery worker; on the embedded default, in a background thread of this process
    (the same task code), so a slow push service never holds up the write that caused it."""
    global _embedded_pool
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        task.apply_async(args=args, queue=settings.WEB_PUSH_QUEUE)
        return
    if _embedded_pool is None:
        _embedded_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="web-push")
    _embedded_pool.submit(_run_embedded, task, args)


def _run_embedded(task: Any, args: tuple) -> None:
    from celery.exceptions import Retry
    from django.db import close_old_connections

    retries = 0
    try:
        while True:
            try:
                task.apply(args=args, retries=retries, throw=True)
                return
            except Retry as retry:
                # An eager task can't be scheduled for later: wait here, as a worker would.
                retries += 1
                time.sleep(min(float(retry.when) if isinstance(retry.when, int | float) else 1.0, 60.0))
    except Exception:
        logger.exception("web push task %s failed", task.name)
    finally:
        close_old_connections()


def send_verification(subscription_pk: int) -> None:
    from groupware.push.tasks import push_verify

    enqueue(push_verify, subscription_pk)


def deliver(subscription_pk: int, payload: dict[str, Any], *, verification: bool = False) -> Outcome:
    """POST one object to a subscription's URL, if it may still receive it."""
    # Imported here, not with the module: every process that commits a write imports this
    # module (``dispatch_state_change``), and these HTTP and crypto clients take about a
    # quarter of a second to import (loading the system's certificates); only a sender needs them.
    import requests
    from pywebpush import WebPusher

    subscription = PushSubscription.objects.select_related("user").filter(pk=subscription_pk).first()
    if subscription is None or subscription.expires <= timezone.now():
        return Outcome()
    if not credential_valid(subscription.user, subscription.credential):
        # RFC 8620 §7.2: its credential expired or was revoked: it is destroyed.
        push_subscription_destroy(subscription=subscription)
        return Outcome(gone=True)
    # RFC 8620 §7.2: nothing but the verification before the client proves it got it.
    if verification == subscription.verified:
        return Outcome()
    problem = push_url_problem(subscription.url)  # again: DNS may have changed since
    if problem is not None:
        logger.warning("push subscription %s dropped: %s", subscription_pk, problem)
        push_subscription_destroy(subscription=subscription)
        return Outcome(gone=True)
    body = dumps(payload)
    headers = {
        "TTL": str(settings.WEB_PUSH_TTL),
        # RFC 8030 §5.3: a state change is worth waking a device for, but not urgently.
        "Urgency": "normal",
    }
    if subscription.p256dh:
        pusher = WebPusher(
            {"endpoint": subscription.url, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}
        )
        body = pusher.encode(body, content_encoding="aes128gcm")["body"]
        headers["Content-Encoding"] = "aes128gcm"
        headers["Content-Type"] = "application/octet-stream"
    else:
        headers["Content-Type"] = "application/json"
    headers.update(_vapid_headers(subscription.url))
    try:
        # No redirects: a push service has no business sending the server elsewhere.
        response = requests.post(
            subscription.url, data=body, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        logger.info("push to subscription %s failed: %s", subscription_pk, exc)
        return Outcome(retry_after=0)
    if 200 <= response.status_code < 300:
        return Outcome(delivered=True)
    if response.status_code in (404, 410):
        # RFC 8030 §7.3: the subscription expired or was removed at the push service.
        push_subscription_destroy(subscription=subscription)
        return Outcome(gone=True)
    if response.status_code == 429 or response.status_code >= 500:
        return Outcome(retry_after=_retry_after(response.headers.get("Retry-After")))
    logger.warning("push service answered %s for subscription %s", response.status_code, subscription_pk)
    return Outcome()


def _retry_after(value: str | None) -> float:
    if value and value.strip().isdigit():
        return min(float(value.strip()), 3600.0)
    return 0.0


def _vapid_headers(url: str) -> dict[str, str]:
    from py_vapid import Vapid02  # see ``deliver``

    parts = urlsplit(url)
    claims = {
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int(time.time()) + VAPID_LIFETIME,
        "sub": settings.VAPID_SUBJECT,
    }
    signer = Vapid02.from_pem(vapid_key_current().private_pem.encode())
    return signer.sign(claims)
