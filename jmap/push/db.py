"""Database work from async push code, in a worker thread, with connections cleaned up.

``channels.db.database_sync_to_async`` closes stale connections around the call, but with
the asgiref in use the function runs in a copied context (``context.run``) where Django's
connection handler keeps its own connection, so the cleanup outside it never sees that
connection and it stays open. Closing inside the function's own context fixes that.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

T = TypeVar("T")


def db_async(func: Callable[..., T], *, thread_sensitive: bool = True) -> Callable[..., Any]:
    @wraps(func)
    def closing(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(closing, thread_sensitive=thread_sensitive)


class PersistentDbThreads:
    """A fixed few threads for JMAP requests over WebSocket, each keeping its connection.

    The push process runs with DATABASE_CONN_MAX_AGE=0 because Django under ASGI runs sync
    code in ever new threads, each of which would keep a connection of its own. These threads
    are few and live on, so their connections may too: a request no longer pays for a new
    PostgreSQL connection. A connection that broke is closed and reopened on the next call.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=settings.PUSH_DB_THREADS, thread_name_prefix="jmap-push-db")
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, self._call, func, args)

    def _call(self, func: Callable[..., T], args: tuple) -> T:
        close_old_connections()  # only broken ones: close_at is cleared below
        try:
            return func(*args)
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close_at = None  # kept, whatever DATABASE_CONN_MAX_AGE says
                connection.close_if_unusable_or_obsolete()  # unless it broke
                if connection.connection is not None:
                    with self._lock:
                        if connection not in self._connections:
                            self._connections.append(connection)

    def close(self) -> None:
        """Stop the threads and close their connections (tests; process shutdown)."""
        with self._lock:
            pool, self._pool = self._pool, None
            opened, self._connections = self._connections, []
        if pool is not None:
            pool.shutdown(wait=True)
        for connection in opened:
            connection.inc_thread_sharing()
            try:
                connection.close()
            finally:
                connection.dec_thread_sharing()


db_threads = PersistentDbThreads()
