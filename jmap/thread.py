"""Thread/get and Thread/changes (RFC 8621 §3): standard methods over the Thread model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from groupware.mail.models import Email, Thread
from groupware.mail.services.threads import EMAIL_ID_PREFIX, THREAD_ID_PREFIX, THREAD_TYPE
from jmap.mail_capability import MAIL
from jmap.standard import ModelDataType, Prop, register_standard_methods


class ThreadType(ModelDataType):
    """Threads are created, changed and destroyed by the Email services only: no /set."""

    name = THREAD_TYPE
    capability = MAIL
    model = Thread
    id_prefix = THREAD_ID_PREFIX
    properties = {
        "id": Prop("id", server_set=True),
        "emailIds": Prop("emailIds", server_set=True),
    }

    def to_json(self, record: Thread, properties: Iterable[str]) -> dict[str, Any]:
        return self.records_to_json(record.account, [record], list(properties), {})[0]

    def records_to_json(
        self, account: Any, records: list[Thread], properties: list[str], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        email_ids: dict[int, list[str]] = {record.pk: [] for record in records}
        if "emailIds" in properties and records:
            # One query for every Thread asked for: oldest first, ties by id (RFC 8621 §3).
            rows = (
                Email.objects.filter(account_id=account.pk, thread_id__in=list(email_ids))
                .order_by("thread_id", "received_at", "pk")
                .values_list("thread_id", "pk")
            )
            from groupware.core.ids import encode

            for thread_pk, email_pk in rows:
                email_ids[thread_pk].append(encode(EMAIL_ID_PREFIX, email_pk))
        result = []
        for record in records:
            item: dict[str, Any] = {}
            for name in properties:
                if name == "id":
                    item["id"] = self.object_id(record)
                elif name == "emailIds":
                    item["emailIds"] = email_ids[record.pk]
            result.append(item)
        return result


THREAD = ThreadType()
register_standard_methods(THREAD, ("get", "changes"))
