"""EmailSubmission/get, /changes, /query, /queryChanges, /set (RFC 8621 §7)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from accounts.models import Account
from groupware.core.ids import decode, encode
from groupware.mail.services.counts import EMAIL_ID_PREFIX, THREAD_ID_PREFIX
from groupware.mail.submission import services
from groupware.mail.submission.identities import IDENTITY_ID_PREFIX
from groupware.mail.submission.models import EmailSubmission
from groupware.mail.submission.reports import SUBMISSION_ID_PREFIX, SUBMISSION_TYPE
from groupware.mail.submission.services import SubmissionError
from jmap import args as a
from jmap.context import CallContext
from jmap.email import EMAIL, _check_utc_date, utc_date
from jmap.errors import MethodError, invalid_properties
from jmap.registry import Method, registry
from jmap.standard import Filter, ModelDataType, Prop, SetContext, Sort
from jmap.standard.changes import standard_changes
from jmap.standard.get import standard_get
from jmap.standard.query import standard_query, standard_query_changes
from jmap.standard.set import perform_set, standard_set
from jmap.submission_capability import SUBMISSION, sending_account, set_errors

UNDO_STATUSES = ("pending", "final", "canceled")


def _undo_status(value: Any, name: str) -> str:
    if value not in UNDO_STATUSES:
        raise MethodError("invalidArguments", f"{name} must be pending, final or canceled")
    return value


def _envelope(value: Any, name: str) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise MethodError("invalidArguments", f"{name} must be an Envelope object or null")
    return value


def _pks(prefix: str) -> Any:
    def check(value: Any, name: str) -> list[int]:
        ids = a.list_of(a.id_)(value, name)
        return [pk for pk in (decode(prefix, item) for item in ids) if pk is not None]

    return check


def _date_q(field: str) -> Any:
    return lambda value: Q(**{field: value})


class EmailSubmissionType(ModelDataType):
    name = SUBMISSION_TYPE
    capability = SUBMISSION
    model = EmailSubmission
    id_prefix = SUBMISSION_ID_PREFIX
    properties = {
        "id": Prop("id", server_set=True),
        "identityId": Prop("identityId", a.id_, immutable=True, id_ref=True),
        "emailId": Prop("emailId", a.id_, immutable=True, id_ref=True),
        "threadId": Prop("threadId", server_set=True),
        "envelope": Prop("envelope", _envelope, immutable=True, default=None),
        "sendAt": Prop("sendAt", server_set=True),
        "undoStatus": Prop("undoStatus", _undo_status, default="pending"),
        "deliveryStatus": Prop("deliveryStatus", server_set=True),
        "dsnBlobIds": Prop("dsnBlobIds", server_set=True),
        "mdnBlobIds": Prop("mdnBlobIds", server_set=True),
    }
    filters = {
        "identityIds": Filter(_pks(IDENTITY_ID_PREFIX), lambda pks: Q(identity_pk__in=pks)),
        "emailIds": Filter(_pks(EMAIL_ID_PREFIX), lambda pks: Q(email_pk__in=pks)),
        "threadIds": Filter(_pks(THREAD_ID_PREFIX), lambda pks: Q(thread_pk__in=pks)),
        "undoStatus": Filter(_undo_status, lambda value: Q(undo_status=value)),
        "before": Filter(_check_utc_date, _date_q("send_at__lt")),
        "after": Filter(_check_utc_date, _date_q("send_at__gte")),
    }
    # RFC 8621 §7.3 names the sort "sentAt" (the property is sendAt): both are accepted.
    sorts = {
        "emailId": Sort("email_pk", "number"),
        "threadId": Sort("thread_pk", "number"),
        "sentAt": Sort("send_at", "date"),
        "sendAt": Sort("send_at", "date"),
    }
    extra_args = {
        "set": (
            a.arg("onSuccessUpdateEmail", a.nullable(a.map_of(a.obj)), None),
            a.arg("onSuccessDestroyEmail", a.nullable(a.list_of(a.string)), None),
        )
    }

    def queryset(self, account: Any) -> Any:
        return EmailSubmission.objects.filter(account=account)

    def to_json(self, record: EmailSubmission, properties: Iterable[str]) -> dict[str, Any]:
        values = {
            "id": lambda: self.object_id(record),
            "identityId": lambda: encode(IDENTITY_ID_PREFIX, record.identity_pk),
            "emailId": lambda: encode(EMAIL_ID_PREFIX, record.email_pk),
            "threadId": lambda: encode(THREAD_ID_PREFIX, record.thread_pk),
            "envelope": lambda: record.envelope,
            "sendAt": lambda: utc_date(record.send_at),
            "undoStatus": lambda: record.undo_status,
            "deliveryStatus": lambda: record.delivery_status,
            "dsnBlobIds": lambda: list(record.dsn_blob_ids),
            "mdnBlobIds": lambda: list(record.mdn_blob_ids),
        }
        return {name: values[name]() for name in properties}

    def create(self, ctx: SetContext, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if values.get("undoStatus", "pending") != "pending":
            raise invalid_properties(["undoStatus"], "a new submission is pending")
        identity_pk = decode(IDENTITY_ID_PREFIX, values["identityId"])
        email_pk = decode(EMAIL_ID_PREFIX, values["emailId"])
        if identity_pk is None:
            raise invalid_properties(["identityId"], "no such Identity")
        if email_pk is None:
            raise invalid_properties(["emailId"], "no such Email")
        with set_errors(SubmissionError):
            submission = services.email_submission_create(
                account=ctx.account,
                user=ctx.call.user,
                identity_pk=identity_pk,
                email_pk=email_pk,
                envelope=values.get("envelope"),
            )
        self._note_email(ctx, submission)
        extra = self.to_json(
            submission, ["threadId", "sendAt", "undoStatus", "deliveryStatus", "dsnBlobIds", "mdnBlobIds"]
        )
        if values.get("envelope") is None:
            extra["envelope"] = submission.envelope  # derived from the headers by the server
        return submission, extra

    def _note_email(self, ctx: SetContext, record: EmailSubmission) -> None:
        # For onSuccessUpdateEmail/onSuccessDestroyEmail: which Email each submission sent.
        ctx.options["_emails"][self.object_id(record)] = encode(EMAIL_ID_PREFIX, record.email_pk)

    def update(self, ctx: SetContext, record: EmailSubmission, values: dict[str, Any]) -> dict[str, Any] | None:
        if set(values) != {"undoStatus"} or values["undoStatus"] != "canceled":
            raise invalid_properties(list(values), "only undoStatus may change, and only to canceled")
        with set_errors(SubmissionError):
            services.email_submission_cancel(submission=record)
        self._note_email(ctx, record)
        return None

    def destroy(self, ctx: SetContext, record: EmailSubmission) -> None:
        self._note_email(ctx, record)
        services.email_submission_destroy(submission=record)


EMAIL_SUBMISSION = EmailSubmissionType()


def email_submission_set(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """The standard /set, then one implicit Email/set for onSuccessUpdateEmail and
    onSuccessDestroyEmail, whose response follows this one (RFC 8621 §7.5)."""
    chosen: dict[str, Account] = {}

    def account_for(account_id: str) -> Account:
        chosen["account"] = sending_account(call, account_id, write=True)
        return chosen["account"]

    options: dict[str, Any] = {"_emails": {}}
    response = standard_set(EMAIL_SUBMISSION, call, arguments, account_for=account_for, options=options)
    account = chosen["account"]
    succeeded: dict[str, str] = options["_emails"]  # submission id -> email id

    def email_for(key: str) -> str | None:
        if key.startswith("#"):  # a submission created by this call (RFC 8621 §7.5)
            key = call.created_id(key[1:]) or ""
        return succeeded.get(key)

    email_update: dict[str, dict] = {}
    for key, patch in (options["onSuccessUpdateEmail"] or {}).items():
        target = email_for(key)
        if target is not None:
            email_update[target] = {**email_update.get(target, {}), **patch}
    email_destroy = [target for key in options["onSuccessDestroyEmail"] or [] if (target := email_for(key))]
    if email_update or email_destroy:
        try:
            result = perform_set(
                EMAIL, call, account, if_in_state=None, create={}, update=email_update,
                destroy=list(dict.fromkeys(email_destroy)),
            )  # fmt: skip
            call.emit("Email/set", result)
        except MethodError as error:
            call.emit("error", error.arguments())
    return response


def _sending(implementation: Any) -> Any:
    def handler(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        sending_account(call, arguments.get("accountId"), write=False)
        return implementation(EMAIL_SUBMISSION, call, arguments)

    return handler


for _suffix, _handler, _writes in (
    ("get", _sending(standard_get), False),
    ("changes", _sending(standard_changes), False),
    ("query", _sending(standard_query), False),
    ("queryChanges", _sending(standard_query_changes), False),
    ("set", email_submission_set, True),
):
    registry.add_method(
        Method(name=f"EmailSubmission/{_suffix}", capability=SUBMISSION, handler=_handler, writes=_writes)
    )
