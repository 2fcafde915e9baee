"""HTTP plumbing shared by the JMAP views: JSON and problem responses, auth, limits."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from jmap.errors import RequestError
from jmap.jsonio import dumps


def json_response(value: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(value), status=status, content_type="application/json")


def problem_response(error: RequestError) -> HttpResponse:
    return HttpResponse(dumps(error.problem()), status=error.status, content_type="application/problem+json")


def simple_problem(status: int, title: str, detail: str, **headers: str) -> HttpResponse:
    body = {"type": "about:blank", "status": status, "title": title, "detail": detail}
    response = HttpResponse(dumps(body), status=status, content_type="application/problem+json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def method_not_allowed(allowed: list[str]) -> HttpResponse:
    return simple_problem(405, "Method Not Allowed", f"Use {' or '.join(allowed)} here.", Allow=", ".join(allowed))


def authenticated(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate with Basic or Bearer credentials (never a session cookie) and guard errors."""
    from accounts.auth import AuthenticationFailed, authenticate_api

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            user = authenticate_api(request)
        except AuthenticationFailed as failure:
            return failure.response()
        except (OperationalError, InterfaceError):
            return simple_problem(503, "Service Unavailable", "The database is unavailable.", Retry_After="5")
        request.jmap_user = user
        try:
            return view(request, *args, **kwargs)
        except RequestError as error:
            return problem_response(error)
        except (OperationalError, InterfaceError):
            return simple_problem(503, "Service Unavailable", "The database is unavailable.", Retry_After="5")
        except DatabaseError:
            import logging

            logging.getLogger("jmap.http").exception("database error")
            return simple_problem(500, "Internal Server Error", "An internal error occurred.")

    wrapper.csrf_exempt = True  # type: ignore[attr-defined]  # no cookies are accepted here
    return wrapper


class ConcurrencyLimiter:
    """Caps simultaneous operations per user within this server process."""

    def __init__(self, limit_name: str) -> None:
        self.limit_name = limit_name
        self._lock = threading.Lock()
        self._running: dict[int, int] = defaultdict(int)

    @contextmanager
    def slot(self, user_pk: int, maximum: int) -> Iterator[None]:
        from jmap import errors

        with self._lock:
            if self._running[user_pk] >= maximum:
                raise errors.limit(self.limit_name, f"Too many concurrent operations ({self.limit_name}).")
            self._running[user_pk] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[user_pk] -= 1
                if self._running[user_pk] <= 0:
                    del self._running[user_pk]
