"""Mailbox services (placeholder until the mailbox work lands)."""

from __future__ import annotations


def mailboxes_provision_defaults(account) -> None:  # noqa: ANN001
    """Create the standard mailboxes of a new account."""
