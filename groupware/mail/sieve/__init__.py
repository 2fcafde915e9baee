"""Sieve mail filtering (RFC 5228 and extensions): parse scripts, run them at delivery.

Pure Python; the delivery pipeline supplies the message, envelope and an Environment with
callbacks for mailbox lookups and the vacation/duplicate tracking it persists.
"""

from .actions import (
    Action,
    Discard,
    DuplicateMark,
    Environment,
    FileInto,
    Keep,
    Limits,
    Outcome,
    Redirect,
    Reject,
    Vacation,
)
from .errors import SieveParseError, SieveRuntimeError
from .flags import imap_flag_to_keyword
from .interpreter import Script, evaluate, parse
from .message import BodyPart, Envelope, MessageView
from .spec import SUPPORTED_EXTENSIONS
from .vacation import vacation_reply_bytes

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Action",
    "BodyPart",
    "Discard",
    "DuplicateMark",
    "Envelope",
    "Environment",
    "FileInto",
    "Keep",
    "Limits",
    "MessageView",
    "Outcome",
    "Redirect",
    "Reject",
    "Script",
    "SieveParseError",
    "SieveRuntimeError",
    "Vacation",
    "evaluate",
    "imap_flag_to_keyword",
    "parse",
    "vacation_reply_bytes",
]
