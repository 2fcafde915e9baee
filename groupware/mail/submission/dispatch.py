"""Starting the relay for a newly queued message, after the transaction commits.

With a broker (REDIS_URL) the message goes to a Celery worker (a delayed send of under
an hour with a countdown; later ones are picked up by the periodic ``relay_due``).
Without one (the embedded default) a background thread of this process sends it, and a
timer fires delayed sends on time while the process runs; ``relay_due`` catches up on
anything missed (a restart). SUBMISSION_DISPATCH=manual turns this off (the tests run
the relay explicitly).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
MAX_COUNTDOWN = 3000


def _embedded_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relay")
        return _executor


def _run_in_process(message_pk: int) -> None:
    from groupware.mail.submission import relay

    try:
        for attempt in range(3):
            try:
                relay.relay_message(message_pk)
                return
            except OperationalError:  # SQLite busy: the claim was given back, try again
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
    except Exception:
        logger.exception("relaying outbound message %s failed", message_pk)
    finally:
        # These threads are idle between messages: don't hold a database session meanwhile.
        connection.close()


def relay_start(message_pk: int, send_at: datetime) -> None:
    """Arrange for the message to be sent at ``send_at`` (now or later), after commit."""
    mode = getattr(settings, "SUBMISSION_DISPATCH", "auto")
    if mode == "manual":
        return
    transaction.on_commit(lambda: _dispatch(message_pk, send_at))


def _dispatch(message_pk: int, send_at: datetime) -> None:
    delay = max((send_at - timezone.now()).total_seconds(), 0.0)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if delay <= 0:
            _embedded_executor().submit(_run_in_process, message_pk)
        else:
            timer = threading.Timer(delay, lambda: _embedded_executor().submit(_run_in_process, message_pk))
            timer.daemon = True
            timer.start()
        return
    from groupware.mail.submission.tasks import relay_message

    if delay <= 0:
        relay_message.delay(message_pk)
    elif delay <= MAX_COUNTDOWN:
        relay_message.apply_async((message_pk,), countdown=delay)
