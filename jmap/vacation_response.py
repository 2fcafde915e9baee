"""VacationResponse/get and /set (RFC 8621 §8): one object per account, id "singleton".

It is applied at delivery as a Sieve vacation action before the user's script
(groupware.mail.delivery.filtering), so both share the reply tracking and rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from groupware.mail.delivery.models import VacationResponse
from groupware.mail.services import vacation as services
from jmap import args as a
from jmap.email import _check_utc_date, utc_date
from jmap.errors import SetError, invalid_properties
from jmap.registry import Capability, registry
from jmap.standard import DataType, Prop, SetContext, register_standard_methods

if TYPE_CHECKING:
    from accounts.models import Account

VACATION = "urn:ietf:params:jmap:vacationresponse"
# RFC 8621 §1.3.2: an empty object in the session and in each account that has one.
registry.add_capability(Capability(urn=VACATION, session_value=dict, account_value=lambda account: {}))


def _date(value: Any, name: str) -> Any:
    return None if value is None else _check_utc_date(value, name)


def _text(value: Any, name: str) -> str | None:
    return None if value is None else a.string(value, name)


# JMAP property -> model field.
_FIELDS = {
    "isEnabled": "is_enabled",
    "fromDate": "from_date",
    "toDate": "to_date",
    "subject": "subject",
    "textBody": "text_body",
    "htmlBody": "html_body",
}


class VacationResponseType(DataType):
    name = services.VACATION_RESPONSE_TYPE
    capability = VACATION
    properties = {
        "id": Prop("id", server_set=True),
        "isEnabled": Prop("isEnabled", a.boolean, default=False),
        "fromDate": Prop("fromDate", _date, default=None),
        "toDate": Prop("toDate", _date, default=None),
        "subject": Prop("subject", _text, default=None),
        "textBody": Prop("textBody", _text, default=None),
        "htmlBody": Prop("htmlBody", _text, default=None),
    }

    def object_id_from_key(self, key: Any) -> str:
        return services.SINGLETON_ID

    def object_id(self, record: Any) -> str:
        return services.SINGLETON_ID

    def parse_id(self, object_id: str) -> Any:
        return services.SINGLETON_ID if object_id == services.SINGLETON_ID else None

    def load(self, account: Account, keys: Iterable[Any] | None, *, for_update: bool = False) -> dict[Any, Any]:
        if keys is not None and services.SINGLETON_ID not in set(keys):
            return {}
        return {services.SINGLETON_ID: services.vacation_response_of(account)}

    def to_json(self, record: VacationResponse, properties: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name in properties:
            if name == "id":
                result["id"] = services.SINGLETON_ID
            elif name in ("fromDate", "toDate"):
                result[name] = utc_date(getattr(record, _FIELDS[name]))
            else:
                result[name] = getattr(record, _FIELDS[name])
        return result

    def create_record(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raise SetError("singleton", "there is exactly one VacationResponse, id singleton: update it")

    def update(self, ctx: SetContext, record: VacationResponse, values: dict[str, Any]) -> dict[str, Any] | None:
        changes = {_FIELDS[name]: value for name, value in values.items()}
        try:
            services.vacation_response_update(account=ctx.account, **changes)
        except services.VacationDatesInvalid as error:
            raise invalid_properties(["fromDate", "toDate"], str(error)) from None
        return None

    def destroy(self, ctx: SetContext, record: Any) -> None:
        raise SetError("singleton", "the VacationResponse can't be destroyed; set isEnabled to false")


VACATION_RESPONSE = VacationResponseType()
register_standard_methods(VACATION_RESPONSE, ("get", "set"))
