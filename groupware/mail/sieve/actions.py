"""Actions a script asks for, the run-time environment and the outcome of a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone


@dataclass(frozen=True, slots=True)
class Keep:
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileInto:
    mailbox: str
    flags: tuple[str, ...] = ()
    copy: bool = False
    create: bool = False
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    address: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    extended: bool = False  # ereject (RFC 5429 §2.1)


@dataclass(frozen=True, slots=True)
class Vacation:
    recipient: str  # where the reply goes: the envelope sender (RFC 5230 §4.3)
    subject: str
    from_address: str | None  # :from, or the user's address the message was sent to
    reason: str
    mime: bool
    handle: str
    seconds: int  # the response interval, from :days or :seconds
    in_reply_to: str | None = None
    references: str | None = None


Action = Keep | FileInto | Redirect | Discard | Reject | Vacation


@dataclass(frozen=True, slots=True)
class DuplicateMark:
    """A duplicate-tracking entry to record once delivery succeeded (RFC 7352 §3)."""

    key: str
    seconds: int
    last: bool


@dataclass(frozen=True, slots=True)
class Limits:
    max_script_size: int = 1 << 20
    max_actions: int = 64
    max_redirects: int = 4
    max_runtime: float = 1.0
    max_variable_size: int = 4096
    max_variables: int = 256
    max_nesting: int = 32
    regex_timeout: float = 0.1
    max_vacation_days: int = 365
    default_duplicate_seconds: int = 7 * 86400
    max_duplicate_seconds: int = 30 * 86400


def _false(*_args: object) -> bool:
    return False


def _true(*_args: object) -> bool:
    return True


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Environment:
    user_addresses: Sequence[str] = ()
    now: datetime = field(default_factory=_now)
    # The zone for date tests without :zone (RFC 5260 §4.1 "local time zone").
    local_zone: timezone = field(default_factory=lambda: timezone(timedelta(0)))
    mailbox_exists: Callable[[str], bool] = _false
    special_use_exists: Callable[[str | None, list[str]], bool] = _false
    duplicate_seen: Callable[[str, int, bool], bool] = _false
    vacation_should_reply: Callable[[str, str, int], bool] = _true
    limits: Limits = field(default_factory=Limits)


@dataclass(slots=True)
class Outcome:
    actions: list[Action] = field(default_factory=list)
    implicit_keep: bool = True
    errors: list[str] = field(default_factory=list)
    duplicate_marks: list[DuplicateMark] = field(default_factory=list)
