"""IMAP flags (RFC 5232) as JMAP keywords (RFC 8621 §4.1.1)."""

from __future__ import annotations

SYSTEM_FLAGS = {
    "\\seen": "$seen",
    "\\flagged": "$flagged",
    "\\answered": "$answered",
    "\\draft": "$draft",
    "\\deleted": "$deleted",
}


def imap_flag_to_keyword(flag: str) -> str | None:
    """'\\\\Seen' -> '$seen'; other keywords lower-cased; None for invalid or \\Recent."""
    lowered = flag.lower()
    if lowered in SYSTEM_FLAGS:
        return SYSTEM_FLAGS[lowered]
    if lowered.startswith("\\") or not lowered:
        return None
    if any(char in '()]{%*"\\' or ord(char) <= 0x20 or ord(char) >= 0x7F for char in lowered):
        return None
    return lowered
