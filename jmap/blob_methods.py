"""Blob/copy (RFC 8620 §6.3): make blobs of one account usable in another."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from groupware.core import blobs
from jmap import args as a
from jmap.context import CallContext
from jmap.errors import MethodError, SetError
from jmap.registry import CORE, registry

BLOB_COPY_ARGS = (
    a.arg("fromAccountId", a.id_),
    a.arg("accountId", a.id_),
    # Every id is checked for Id syntax (RFC 8620 §1.2); a bad one fails the whole call.
    a.arg("blobIds", a.list_of(a.id_)),
)


@registry.method("Blob/copy", capability=CORE, writes=True)
def blob_copy(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(BLOB_COPY_ARGS, arguments)
    try:
        # Only read access is needed on the source account.
        from_account = call.account(parsed["fromAccountId"], write=False)
    except MethodError as error:
        if error.kind == "accountNotFound":
            raise MethodError("fromAccountNotFound") from None  # RFC 8620 §6.3
        raise
    to_account = call.account(parsed["accountId"])
    blob_ids: list[str] = parsed["blobIds"]
    if len(blob_ids) > settings.JMAP["maxObjectsInSet"]:
        raise MethodError("requestTooLarge", f"At most {settings.JMAP['maxObjectsInSet']} blobIds per call.")

    copied: dict[str, str] = {}
    not_copied: dict[str, dict[str, Any]] = {}
    for blob_id in blob_ids:
        target = blobs.blob_copy(from_account=from_account, to_account=to_account, blob_id=blob_id, user=call.user)
        if target is None:
            # RFC 8620 §6.3 names this SetError "notFound"; a blob of an account the
            # user can't see, or another user's unreferenced upload (§6.1), looks exactly
            # like one that doesn't exist.
            not_copied[blob_id] = SetError("notFound", "No such blob in the source account.").as_dict()
        else:
            copied[blob_id] = blobs.blob_id(target.blob_id)
    return {
        "fromAccountId": from_account.jmap_id,
        "accountId": to_account.jmap_id,
        "copied": copied or None,
        "notCopied": not_copied or None,
    }
