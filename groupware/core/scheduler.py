"""Periodic tasks on the embedded default (no Redis, so no Celery beat or worker).

A daemon thread in the server process runs each entry of CELERY_BEAT_SCHEDULE at its
interval, through the same Celery task objects (executed in-process), so the embedded
server does the same maintenance as a production deployment.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import import_module

from django.conf import settings

logger = logging.getLogger(__name__)
_started = threading.Event()


def start_embedded_scheduler() -> bool:
    """Start the thread once per process; only when no broker is configured."""
    if settings.REDIS_URL or _started.is_set():
        return False
    _started.set()
    thread = threading.Thread(target=_loop, name="embedded-scheduler", daemon=True)
    thread.start()
    return True


def run_due_tasks(due: dict[str, float], now: float) -> list[str]:
    """Run every schedule entry whose time has come; move its next time on. Returns their names."""
    ran = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        if now < due.setdefault(name, now):
            continue
        due[name] = now + float(entry["schedule"])
        try:
            module, _, function = entry["task"].rpartition(".")
            getattr(import_module(module), function).apply(throw=True)
            ran.append(name)
        except Exception:
            logger.exception("periodic task %s failed", name)
    return ran


def _loop() -> None:
    start = time.monotonic() + 60  # let start-up finish first
    due = {name: start for name in settings.CELERY_BEAT_SCHEDULE}
    from django.db import close_old_connections

    while True:
        run_due_tasks(due, time.monotonic())
        # This thread's own connection: drop it if it broke or outlived CONN_MAX_AGE.
        close_old_connections()
        time.sleep(max(1.0, min(due.values()) - time.monotonic()))
