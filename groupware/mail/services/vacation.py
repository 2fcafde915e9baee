"""The vacation response (RFC 8621 §8): one per account, applied at delivery before the
Sieve script (groupware.mail.delivery.filtering)."""

from __future__ import annotations

from typing import Any

from accounts.models import Account
from groupware.core.changes import Change, account_changes
from groupware.mail.delivery.models import VacationResponse

VACATION_RESPONSE_TYPE = "VacationResponse"
SINGLETON_ID = "singleton"
_FIELDS = ("is_enabled", "from_date", "to_date", "subject", "text_body", "html_body")


def vacation_response_of(account: Account) -> VacationResponse:
    """The account's vacation response; an unsaved, disabled one if never set."""
    found = VacationResponse.objects.filter(account_id=account.pk).first()
    return found if found is not None else VacationResponse(account=account)


class VacationDatesInvalid(ValueError):
    """toDate before fromDate (RFC 8621 §8)."""


def vacation_response_update(*, account: Account, **values: Any) -> VacationResponse:
    """Set some of is_enabled, from_date, to_date, subject, text_body, html_body.

    Raises VacationDatesInvalid when the resulting to_date is before from_date."""
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown vacation response fields: {sorted(unknown)}")
    with account_changes(account.pk) as changes:
        vacation, _ = VacationResponse.objects.select_for_update().get_or_create(account=account)
        from_date = values.get("from_date", vacation.from_date)
        to_date = values.get("to_date", vacation.to_date)
        if from_date is not None and to_date is not None and to_date < from_date:
            raise VacationDatesInvalid("toDate is before fromDate")
        changed = [name for name, value in values.items() if getattr(vacation, name) != value]
        for name in changed:
            setattr(vacation, name, values[name])
        if changed:
            vacation.save(update_fields=changed)
            changes.record(VACATION_RESPONSE_TYPE, SINGLETON_ID, Change.UPDATED)
    return vacation
