"""The urn:ietf:params:jmap:submission (RFC 8621 §1.3.2) and urn:ietf:params:jmap:mdn
(RFC 9007 §1.3) capabilities, and the rule for which accounts may send.

Only a personal account, used by its owner, sends mail: a shared or read-only account
has no Identity or EmailSubmission data (RFC 8621 §1.4), and the user must not send as
someone else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from groupware.mail.submission.services import max_delayed_send
from jmap.errors import MethodError, SetError
from jmap.registry import Capability, registry

if TYPE_CHECKING:
    from accounts.models import Account
    from jmap.context import CallContext

SUBMISSION = "urn:ietf:params:jmap:submission"
MDN = "urn:ietf:params:jmap:mdn"


def submission_extensions() -> dict[str, list[str]]:
    """The SMTP submission extensions clients may use in an Envelope (RFC 8621 §1.3.2)."""
    delay = max_delayed_send()
    extensions: dict[str, list[str]] = {"SIZE": [str(settings.SUBMISSION_MAX_MESSAGE_SIZE)]}
    if delay > 0:
        # RFC 4865 §3: max-future-release-interval and max-future-release-date-time.
        latest = (timezone.now() + timedelta(seconds=delay)).strftime("%Y-%m-%dT%H:%M:%SZ")
        extensions["FUTURERELEASE"] = [str(delay), latest]
    return extensions


def _submission_value(account: Account) -> dict[str, Any] | None:
    if not account.is_personal:
        return None
    return {
        "maxDelayedSend": max_delayed_send(),
        "submissionExtensions": submission_extensions(),
    }


def _mdn_value(account: Account) -> dict[str, Any] | None:
    return {} if account.is_personal else None


def sending_account(call: CallContext, account_id: Any, *, write: bool | None = None) -> Account:
    """The account for a sending method: the caller's own personal account only."""
    account = call.account(account_id, write=write)
    if account.owner_id != call.user.pk:
        raise MethodError("accountNotSupportedByMethod", "only the account's owner may send from it")
    return account


@contextmanager
def set_errors(*kinds: type[Exception]) -> Iterator[None]:
    """The sending services' refusals (``kind``, ``description``, ``extra``) as SetErrors."""
    try:
        yield
    except kinds as error:
        raise SetError(error.kind, error.description, **error.extra) from None  # type: ignore[attr-defined]


def register_capabilities() -> None:
    if SUBMISSION not in registry.capabilities:
        registry.add_capability(Capability(urn=SUBMISSION, session_value=dict, account_value=_submission_value))
    if MDN not in registry.capabilities:
        registry.add_capability(Capability(urn=MDN, session_value=dict, account_value=_mdn_value))


register_capabilities()
