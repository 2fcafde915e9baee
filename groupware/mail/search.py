"""Full-text search index for emails (interface; the engine-specific parts land with the search work).

The ingest service calls ``search_index_add`` in the transaction that stores the email,
and the destroy service calls ``search_index_remove``; Email/query's text filters call
``search_match``.
"""

from __future__ import annotations

from typing import Any


def search_index_add(*, email: Any, fields: dict[str, str]) -> None:
    """Index one email. ``fields``: subject, from, to, cc, bcc, body, attachments, headers."""


def search_index_remove(*, email_ids: list[int]) -> None:
    """Drop emails from the index."""
