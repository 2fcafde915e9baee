"""JMAP error values, in one place (RFC 8620 §3.6).

Request-level problems become RFC 7807 problem details; method-level problems become an
``["error", {...}, callId]`` invocation for that call only; /set failures become SetError
objects for one record.
"""

from __future__ import annotations

from typing import Any

URN = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """A request-level error (RFC 8620 §3.6.1), answered as problem details JSON."""

    def __init__(self, kind: str, detail: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": URN + self.kind, "status": self.status, "detail": self.detail}
        body.update(self.extra)
        return body


def unknown_capability(detail: str) -> RequestError:
    return RequestError("unknownCapability", detail)


def not_json(detail: str) -> RequestError:
    return RequestError("notJSON", detail)


def not_request(detail: str) -> RequestError:
    return RequestError("notRequest", detail)


def limit(name: str, detail: str) -> RequestError:
    return RequestError("limit", detail, limit=name)


class MethodError(Exception):
    """A method-level error (RFC 8620 §3.6.2): only the current call fails."""

    def __init__(self, kind: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def arguments(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind}
        if self.description:
            body["description"] = self.description
        body.update(self.extra)
        return body


def invalid_arguments(description: str) -> MethodError:
    return MethodError("invalidArguments", description)


class SetError(Exception):
    """A failure for one record of a /set or /copy (RFC 8620 §5.3)."""

    def __init__(self, kind: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind}
        if self.description:
            body["description"] = self.description
        body.update(self.extra)
        return body


def invalid_properties(properties: list[str], description: str | None = None) -> SetError:
    return SetError("invalidProperties", description, properties=sorted(set(properties)))
