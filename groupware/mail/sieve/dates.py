"""Date parts for the date and currentdate tests (RFC 5260 §4-5)."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

MJD_EPOCH = date(1858, 11, 17).toordinal()


def parse_zone(value: str) -> timezone | None:
    """'+hhmm' / '-hhmm' as in RFC 5260 §4.1."""
    if len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        return None
    hours, minutes = int(value[1:3]), int(value[3:5])
    if minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if value[0] == "-" else offset)


def parse_date_header(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": time in UTC, zone unknown (RFC 5322 §3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _zone(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


DATE_PARTS: dict[str, Callable[[datetime], str]] = {
    "year": lambda moment: f"{moment.year:04d}",
    "month": lambda moment: f"{moment.month:02d}",
    "day": lambda moment: f"{moment.day:02d}",
    "date": lambda moment: f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}",
    "julian": lambda moment: str(moment.date().toordinal() - MJD_EPOCH),  # Modified Julian Day
    "hour": lambda moment: f"{moment.hour:02d}",
    "minute": lambda moment: f"{moment.minute:02d}",
    "second": lambda moment: f"{moment.second:02d}",
    "time": lambda moment: f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}",
    "iso8601": lambda moment: moment.isoformat(timespec="seconds"),
    "std11": email.utils.format_datetime,
    "zone": _zone,
    "weekday": lambda moment: str((moment.weekday() + 1) % 7),  # 0 is Sunday
}


def date_part(moment: datetime, part: str) -> str | None:
    """RFC 5260 §4.2 date-part of an aware datetime; None for an unknown part."""
    extract = DATE_PARTS.get(part.lower())
    return extract(moment) if extract else None
