"""Blob management (RFC 9404, urn:ietf:params:jmap:blob): Blob/upload, Blob/get and
Blob/lookup. Blob/copy is RFC 8620's (jmap/blob_methods.py).

Blobs are the same content-addressed blobs as HTTP uploads (groupware.core.blobs): a blob
made by Blob/upload is an unreferenced upload of the calling user, visible only to them
until something references it, and expires like one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from django.conf import settings

from accounts.models import Account
from accounts.quotas import OverQuota, quota_check
from groupware.core import blobs
from groupware.core.blobs import DEFAULT_TYPE
from groupware.mail.blob_refs import MAIL_LOOKUP_TYPES, mail_blob_references
from jmap import args as a
from jmap.blob_views import media_type
from jmap.context import CallContext
from jmap.errors import MethodError, SetError, invalid_properties
from jmap.registry import Capability, registry

BLOB = "urn:ietf:params:jmap:blob"
# RFC 9404 §4.1: servers MUST allow at least 64 data sources per creation.
MAX_DATA_SOURCES = 64
DIGESTS = {"sha": hashlib.sha1, "sha-256": hashlib.sha256}
LOOKUP_TYPES = MAIL_LOOKUP_TYPES
GET_DEFAULT_PROPERTIES = ("data", "size")


def max_size_blob_set() -> int:
    return settings.JMAP["maxSizeUpload"]


def _account_value(account: Account) -> dict[str, Any]:
    # RFC 9404 §4.1 (the account capability; the session's is an empty object).
    return {
        "maxSizeBlobSet": max_size_blob_set(),
        "maxDataSources": MAX_DATA_SOURCES,
        "supportedTypeNames": list(LOOKUP_TYPES),
        "supportedDigestAlgorithms": list(DIGESTS),
    }


registry.add_capability(Capability(urn=BLOB, session_value=dict, account_value=_account_value))


# -- Blob/upload ----------------------------------------------------------------------------

UPLOAD_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("create", a.map_of(a.obj, key=a.creation_id_key)),
)


class _Sources:
    """Reads the data sources of one UploadObject, in order, into one bytes object."""

    def __init__(self, call: CallContext, account: Account, created_here: dict[str, str]) -> None:
        self.call = call
        self.account = account
        self.created_here = created_here

    def content(self, sources: Any) -> bytes:
        if not isinstance(sources, list):
            raise invalid_properties(["data"], "data must be a list of DataSourceObjects")
        if len(sources) > MAX_DATA_SOURCES:
            raise invalid_properties(["data"], f"at most {MAX_DATA_SOURCES} data sources (maxDataSources)")
        limit = max_size_blob_set()
        parts: list[bytes] = []
        total = 0
        for index, source in enumerate(sources):
            part = self._one(source, f"data/{index}")
            total += len(part)
            if total > limit:
                raise SetError("tooLarge", f"the blob would be larger than {limit} octets (maxSizeBlobSet)")
            parts.append(part)
        return b"".join(parts)

    def _one(self, source: Any, where: str) -> bytes:
        if not isinstance(source, dict):
            raise invalid_properties([where], f"{where} must be a DataSourceObject")
        kinds = [key for key in ("data:asText", "data:asBase64", "blobId") if key in source]
        allowed = {"blobId", "offset", "length"} if kinds == ["blobId"] else set(kinds)
        extra = sorted(set(source) - allowed)
        if len(kinds) != 1 or extra:
            raise invalid_properties(
                [where], f"{where} needs exactly one of data:asText, data:asBase64 or blobId (with offset, length)"
            )
        kind = kinds[0]
        value = source[kind]
        if kind == "data:asText":
            if not isinstance(value, str):
                raise invalid_properties([where], f"{where}: data:asText must be a String")
            return value.encode("utf-8", "surrogatepass")
        if kind == "data:asBase64":
            if not isinstance(value, str):
                raise invalid_properties([where], f"{where}: data:asBase64 must be a String")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise invalid_properties([where], f"{where}: data:asBase64 is not valid base64") from None
        return self._slice(source, where)

    def _slice(self, source: dict[str, Any], where: str) -> bytes:
        blob_id = source["blobId"]
        if isinstance(blob_id, str) and blob_id.startswith("#"):
            # A blob created earlier in this call, or earlier in the request.
            blob_id = self.created_here.get(blob_id[1:]) or self.call.created_id(blob_id[1:]) or blob_id
        offset, length = source.get("offset"), source.get("length")
        for name, value in (("offset", offset), ("length", length)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise invalid_properties([where], f"{where}: {name} must be an UnsignedInt or null")
        opened = blobs.blob_open(self.account, blob_id, user=self.call.user)
        if opened is None:
            raise SetError("blobNotFound", f"{where}: blob {source['blobId']} not found", notFound=[source["blobId"]])
        with opened:
            start = offset or 0
            end = opened.size if length is None else start + length
            if start > opened.size or end > opened.size:
                raise invalid_properties(
                    [where], f"{where}: offset and length go past the end of the blob ({opened.size} octets)"
                )
            opened.file.seek(start)
            return opened.file.read(end - start)


@registry.method("Blob/upload", capability=BLOB, writes=True)
def blob_upload(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(UPLOAD_ARGS, arguments)
    account = call.account(parsed["accountId"])
    creates: dict[str, dict[str, Any]] = parsed["create"]
    if len(creates) > settings.JMAP["maxObjectsInSet"]:
        raise MethodError("requestTooLarge", f"at most {settings.JMAP['maxObjectsInSet']} creations (maxObjectsInSet)")
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    created_here: dict[str, str] = {}
    sources = _Sources(call, account, created_here)
    for creation_id, upload in creates.items():
        try:
            created[creation_id] = _upload_one(call, account, sources, upload)
        except SetError as error:
            not_created[creation_id] = error.as_dict()
            continue
        created_here[creation_id] = created[creation_id]["id"]
        call.add_created_id(creation_id, created[creation_id]["id"])
    return {"accountId": account.jmap_id, "created": created or None, "notCreated": not_created or None}


def _upload_one(call: CallContext, account: Account, sources: _Sources, upload: dict[str, Any]) -> dict[str, Any]:
    extra = sorted(set(upload) - {"data", "type"})
    if extra or "data" not in upload:
        raise invalid_properties(extra or ["data"], "an UploadObject has data and optionally type")
    given_type = upload.get("type")
    if given_type is not None and (not isinstance(given_type, str) or media_type(given_type) is None):
        raise invalid_properties(["type"], "type must be a media type or null")
    content = sources.content(upload["data"])
    try:
        # The new blob counts once an object references it; refuse what could never fit.
        quota_check(account=account, octets=len(content), count=0)
    except OverQuota as error:
        raise SetError("overQuota", str(error)) from None
    stored = blobs.blob_store(
        account=account,
        stream_or_bytes=content,
        type=media_type(given_type) or DEFAULT_TYPE,
        max_size=max_size_blob_set(),
        user=call.user,
    )
    return {"id": blobs.blob_id(stored.blob_id), "type": stored.type, "size": stored.blob.size}


# -- Blob/get -------------------------------------------------------------------------------

GET_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("ids", a.nullable(a.list_of(a.string)), None),
    a.arg("properties", a.nullable(a.list_of(a.string)), None),
    a.arg("offset", a.nullable(a.unsigned), None),
    a.arg("length", a.nullable(a.unsigned), None),
)


def _get_properties(requested: list[str] | None) -> list[str]:
    names = list(dict.fromkeys(requested if requested is not None else GET_DEFAULT_PROPERTIES))
    fixed = {"id", "data", "data:asText", "data:asBase64", "size"}
    unknown = [name for name in names if name not in fixed and not (name.startswith("digest:") and name[7:] in DIGESTS)]
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    return names


@registry.method("Blob/get", capability=BLOB)
def blob_get(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(GET_ARGS, arguments)
    account = call.account(parsed["accountId"])
    if parsed["ids"] is None:
        raise MethodError("requestTooLarge", "ids must be given: blobs can't be listed")
    limit = settings.JMAP["maxObjectsInGet"]
    if len(parsed["ids"]) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} ids per call (maxObjectsInGet)")
    properties = _get_properties(parsed["properties"])
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    # "#creationId" stands for a blob created earlier in the request.
    wanted = {
        given: (call.created_id(given[1:]) or given) if given.startswith("#") else given for given in parsed["ids"]
    }
    rows = blobs.blob_find_many(account, wanted.values(), user=call.user)  # one query for all plain ids
    for given, blob_id in wanted.items():
        digest = blobs.parse_blob_id(blob_id)
        if digest is not None:
            row = rows.get(digest)
            opened = blobs.blob_open_row(row) if row is not None else None
        else:
            opened = blobs.blob_open(account, blob_id, user=call.user)  # derived (part) blobs
        if opened is None:
            not_found.append(given)
            continue
        with opened:
            found.append(_blob_json(opened, given, properties, parsed["offset"], parsed["length"]))
    return {"accountId": account.jmap_id, "list": found, "notFound": not_found}


def _blob_json(
    opened: blobs.OpenBlob, given_id: str, properties: list[str], offset: int | None, length: int | None
) -> dict[str, Any]:
    """One Blob/get result (RFC 9404 §4.2): the selected range of the blob's octets."""
    start = offset or 0
    end = opened.size if length is None else start + length
    # The range is cut at the end of the blob, and said so (isTruncated).
    truncated = end > opened.size or start > opened.size
    end = min(end, opened.size)
    item: dict[str, Any] = {"id": given_id}
    wants_content = any(name != "id" and name != "size" for name in properties)
    content = b""
    if wants_content and start < opened.size:
        opened.file.seek(start)
        content = opened.file.read(end - start)
    text: str | None = None
    encoding_problem = False
    if "data" in properties or "data:asText" in properties:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            encoding_problem = True
    for name in properties:
        if name == "size":
            item["size"] = opened.size  # of the whole blob
        elif name == "data:asText":
            item["data:asText"] = text
        elif name == "data:asBase64":
            item["data:asBase64"] = base64.b64encode(content).decode("ascii")
        elif name == "data":
            # Text when the octets are UTF-8, else base64 (RFC 9404 §4.2).
            if text is not None:
                item["data:asText"] = text
            else:
                item["data:asBase64"] = base64.b64encode(content).decode("ascii")
        elif name.startswith("digest:"):
            digest = DIGESTS[name[7:]](content).digest()
            item[name] = base64.b64encode(digest).decode("ascii")
    if encoding_problem and "data:asText" in properties:
        item["isEncodingProblem"] = True
    if truncated:
        item["isTruncated"] = True
    return item


# -- Blob/lookup ----------------------------------------------------------------------------

LOOKUP_ARGS = (
    a.arg("accountId", a.id_),
    a.arg("typeNames", a.list_of(a.string)),
    a.arg("ids", a.list_of(a.string)),
)


@registry.method("Blob/lookup", capability=BLOB)
def blob_lookup(call: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
    parsed = a.parse(LOOKUP_ARGS, arguments)
    account = call.account(parsed["accountId"])
    unknown = [name for name in parsed["typeNames"] if name not in LOOKUP_TYPES]
    if unknown:
        # RFC 9404 §4.3: a type name the server can't look up is an error for the call.
        raise MethodError("unknownDataType", f"can't look up {', '.join(unknown)}")
    limit = settings.JMAP["maxObjectsInGet"]
    if len(parsed["ids"]) > limit:
        raise MethodError("requestTooLarge", f"at most {limit} ids per call (maxObjectsInGet)")
    candidates = {given: _message_digest(given) for given in parsed["ids"]}
    visible = blobs.blob_find_many(
        account, [blobs.blob_id(sha256) for sha256 in candidates.values() if sha256], user=call.user
    )
    digests = {given: sha256 for given, sha256 in candidates.items() if sha256 in visible}
    not_found = [given for given in candidates if given not in digests]
    references = mail_blob_references(account, digests.values())
    listed = [
        {"id": given, "matchedIds": {name: references[sha256][name] for name in parsed["typeNames"]}}
        for given, sha256 in digests.items()
    ]
    return {"accountId": account.jmap_id, "list": listed, "notFound": not_found}


def _message_digest(blob_id: str) -> str | None:
    """The digest of the stored blob behind an id: the blob itself, or the message a
    part blob id ("p...", groupware.mail.services.emails) is a part of."""
    from groupware.mail.services.emails import parse_part_blob_id

    sha256 = blobs.parse_blob_id(blob_id)
    if sha256 is not None:
        return sha256
    part = parse_part_blob_id(blob_id)
    return part[0] if part else None
