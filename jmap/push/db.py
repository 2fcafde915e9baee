"""Database work from async push code, in a worker thread, with connections cleaned up.

``channels.db.database_sync_to_async`` closes stale connections around the call, but with
the asgiref in use the function runs in a copied context (``context.run``) where Django's
connection handler keeps its own connection, so the cleanup outside it never sees that
connection and it stays open. Closing inside the function's own context fixes that.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

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
