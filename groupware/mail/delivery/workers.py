"""Delivery in worker processes: one listener uses every core.

Delivering is CPU-bound Python (parsing, Sieve, the search index), so the threads of one
process share one core. ``DeliveryWorkers`` runs deliveries in ``processes`` spawned
processes, each with Django set up and its own database connection; the listener's event
loop only speaks the protocol. A worker that dies (killed, out of memory) answers the
deliveries it held with 451, so senders retry, and the pool is started again; the
retransmission dedup of ``deliver_message`` keeps a delivery that committed just before the
crash from being stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _worker_start() -> None:
    """In each spawned worker: die with the listener (Linux), then set up Django."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux: the pool's own pipe closing ends the worker instead
        logger.debug("no parent-death signal for this worker", exc_info=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the listener decides when to stop
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
    import django

    django.setup()


def _ready() -> bool:
    return True


def _close_connections() -> bool:
    from django.db import connections

    connections.close_all()
    return True


class DeliveryWorkers:
    """A process pool for delivery calls that replaces itself when a worker dies."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        self._executor()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                )
                # Start every worker now (the pool starts one per submission that finds
                # none idle), so no delivery waits for a worker to set Django up.
                for _ in range(self.processes):
                    self._pool.submit(_ready)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a worker; raises ``BrokenProcessPool`` if the
        worker died (the caller answers 4xx) after arranging a fresh pool."""
        pool = self._executor()
        try:
            future = pool.submit(function, *args, **kwargs)
        except (BrokenProcessPool, RuntimeError):
            self._discard(pool)
            pool = self._executor()
            future = pool.submit(function, *args, **kwargs)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            logger.warning("a delivery worker died; starting the pool again")
            self._discard(pool)
            raise

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            # One close per worker is not guaranteed to reach each one, but exit closes too.
            for future in [pool.submit(_close_connections) for _ in range(self.processes)]:
                future.result(timeout=10)
        except Exception:
            logger.debug("closing the workers' connections failed", exc_info=True)
        pool.shutdown(wait=True, cancel_futures=True)


class ThreadWorkers:
    """The same interface over a thread pool of this process (the embedded default)."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: function(*args, **kwargs))
