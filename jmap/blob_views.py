"""Upload and download of binary data over HTTP (RFC 8620 §6.1, §6.2).

Both endpoints authenticate with Basic or Bearer credentials only (never a session
cookie, so they need no CSRF token) and answer errors with problem details (RFC 7807).
Accounts and blobs the user can't see are indistinguishable from ones that don't exist.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files import File
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)

from accounts.models import Account
from accounts.quotas import over_quota_for, quota_room
from accounts.services import accessible_accounts
from groupware.core import blobs
from groupware.core.blobs import DEFAULT_TYPE, BlobTooLarge, OpenBlob
from jmap import errors
from jmap.http import ConcurrencyLimiter, authenticated, json_response, method_not_allowed, simple_problem

_uploads = ConcurrencyLimiter("maxConcurrentUpload")

CHUNK_SIZE = 64 * 1024
# RFC 8620 §6.2: blob content never changes, so downloads may be cached for a long time.
DOWNLOAD_CACHE_CONTROL = "private, immutable, max-age=31536000"
# Downloads are attachments; should a browser render one anyway, it gets no privileges.
DOWNLOAD_CSP = "default-src 'none'; sandbox"

# RFC 9110 §8.3.1 media-type = type "/" subtype parameters; token and quoted-string
# from §5.6.2 and §5.6.4 (no control characters, so no header injection).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*$")
_MAX_MEDIA_TYPE = 255  # AccountBlob.type
# RFC 9110 §14.1.2: a single byte range; several ranges are answered with the whole blob.
_BYTE_RANGE = re.compile(r"^bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*$", re.IGNORECASE)
# RFC 8187 §3.2.1 attr-char: what may stay unencoded in filename*.
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"


def media_type(value: str | None) -> str | None:
    """A syntactically valid media type (RFC 9110 §8.3.1), trimmed, or None."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_MEDIA_TYPE or not _MEDIA_TYPE.match(value):
        return None
    return value


def content_disposition(name: str) -> str:
    """``attachment`` with the client's name (RFC 6266 §4.3, RFC 8187).

    RFC 8620 §6.2 says the name MUST be the filename: ``filename*`` carries it exactly,
    percent-encoded (so no character can break out of the header), and ``filename`` is
    an ASCII approximation for clients that predate RFC 6266.
    """
    encoded = quote(name, safe=_ATTR_CHAR_SAFE, encoding="utf-8")
    return f"attachment; filename=\"{_ascii_filename(name)}\"; filename*=UTF-8''{encoded}"


def _ascii_filename(name: str) -> str:
    fallback = []
    for char in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(char):
            continue  # "é" decomposes into "e" and an accent: keep the "e"
        if "\x20" <= char <= "\x7e" and char not in '"\\':
            fallback.append(char)
        elif char in '"\\':
            fallback.append("'" if char == '"' else "_")
        elif not unicodedata.category(char).startswith("C"):
            fallback.append("_")
        # Control and format characters (CR, LF, NUL, bidi overrides...) are dropped.
    return "".join(fallback).strip() or "download"


def _account_for(request: HttpRequest, account_id: str) -> tuple[Account, bool] | None:
    """The account and whether it is read-only for this user, or None if they can't see it."""
    for access in accessible_accounts(request.jmap_user):
        if access.account.jmap_id == account_id:
            return access.account, access.is_read_only
    return None


def _not_found(what: str) -> HttpResponse:
    response = simple_problem(404, "Not Found", f"No such {what}.")
    response["Cache-Control"] = "no-store"
    return response


@authenticated
def upload_view(request: HttpRequest, account_id: str) -> HttpResponse:
    """POST the raw content; 201 with accountId, blobId, type and size (RFC 8620 §6.1)."""
    if request.method != "POST":
        return method_not_allowed(["POST"])
    found = _account_for(request, account_id)
    if found is None:
        return _not_found("account")
    account, read_only = found
    if read_only:
        return simple_problem(403, "Forbidden", "The account is read-only.")
    maximum = settings.JMAP["maxSizeUpload"]
    too_large = errors.limit("maxSizeUpload", f"The upload is larger than {maximum} octets.")
    declared = request.META.get("CONTENT_LENGTH", "")
    if declared.isdigit() and int(declared) > maximum:
        raise too_large  # refused before reading a byte
    # Quotas (RFC 9425): an upload that could never be stored is refused, before reading
    # a byte when the length is declared, else as soon as it passes what is left.
    room = quota_room(account=account)
    over_quota = room is not None and room < maximum
    if over_quota:
        maximum = room
        if declared.isdigit() and int(declared) > room:
            raise _over_quota(account, int(declared))
    # RFC 8620 §6.1: the type is the request's Content-Type, as given.
    upload_type = media_type(request.META.get("CONTENT_TYPE")) or DEFAULT_TYPE
    with _uploads.slot(request.jmap_user.pk, settings.JMAP["maxConcurrentUpload"]):
        try:
            # The body is read in bounded chunks: a missing or false Content-Length can't
            # make the server read (or store) more than maxSizeUpload + 1 octets.
            stored = blobs.blob_store(
                account=account,
                stream_or_bytes=request,
                type=upload_type,
                max_size=maximum,
                user=request.jmap_user,
            )
        except BlobTooLarge:
            raise (_over_quota(account, maximum + 1) if over_quota else too_large) from None
    response = json_response(
        {
            "accountId": account.jmap_id,
            "blobId": blobs.blob_id(stored.blob_id),
            "type": stored.type,
            "size": stored.blob.size,
        },
        status=201,
    )
    response["Cache-Control"] = "no-store"
    return response


def _over_quota(account: Account, octets: int) -> errors.RequestError:
    detail = str(over_quota_for(account=account, octets=octets))
    return errors.RequestError("overQuota", detail, status=403)


@authenticated
def download_view(request: HttpRequest, account_id: str, blob_id: str, name: str) -> HttpResponse:
    """GET (or HEAD) a blob as ``name`` with the type from ``accept`` (RFC 8620 §6.2)."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(["GET", "HEAD"])
    found = _account_for(request, account_id)
    if found is None:
        return _not_found("account")
    opened = blobs.blob_open(found[0], blob_id, user=request.jmap_user)
    if opened is None:
        return _not_found("blob")
    try:
        return _download_response(request, opened, name)
    except BaseException:
        opened.close()
        raise


def _download_response(request: HttpRequest, opened: OpenBlob, name: str) -> HttpResponse:
    etag = f'"{opened.sha256}"'
    headers = {
        "Content-Type": media_type(request.GET.get("accept")) or DEFAULT_TYPE,
        "Content-Disposition": content_disposition(name),
        "Cache-Control": DOWNLOAD_CACHE_CONTROL,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Security-Policy": DOWNLOAD_CSP,
    }
    if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        opened.close()
        not_modified = _with_headers(HttpResponse(status=304), headers, omit=("Content-Type", "Content-Disposition"))
        del not_modified["Content-Type"]
        return not_modified

    start, length, status = 0, opened.size, 200
    # RFC 9110 §14.2: Range is defined for GET only; a HEAD describes the whole blob.
    if request.method == "GET" and "HTTP_RANGE" in request.META:
        if_range = request.META.get("HTTP_IF_RANGE")
        if if_range is None or if_range.strip() == etag:  # §13.1.5: strong comparison
            byte_range = parse_range(request.META["HTTP_RANGE"], opened.size)
            if byte_range == "unsatisfiable":
                opened.close()
                response = simple_problem(416, "Range Not Satisfiable", "The range is outside the blob.")
                response["Content-Range"] = f"bytes */{opened.size}"
                return response
            if byte_range is not None:
                start, end = byte_range
                length, status = end - start + 1, 206
                headers["Content-Range"] = f"bytes {start}-{end}/{opened.size}"
    headers["Content-Length"] = str(length)

    if request.method == "HEAD":
        opened.close()
        return _with_headers(HttpResponse(status=200), headers)
    response: HttpResponse | StreamingHttpResponse
    if isinstance(request, ASGIRequest):
        # A synchronous iterator would be read into memory whole before an ASGI server
        # sends it; read the file chunk by chunk in a thread instead.
        response = StreamingHttpResponse(_aiter_file(opened.file, start, length), status=status)
    elif status == 200:
        # WSGI servers may send a whole file with sendfile().
        response = FileResponse(opened.file, status=status)
    else:
        response = StreamingHttpResponse(_iter_file(opened.file, start, length), status=status)
    return _with_headers(response, headers)


def _with_headers(response: HttpResponse, headers: dict[str, str], omit: tuple[str, ...] = ()) -> HttpResponse:
    for key, value in headers.items():
        if key not in omit:
            response[key] = value
    return response


def _etag_matches(header: str | None, etag: str) -> bool:
    # RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == etag for candidate in header.split(","))


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """A single byte range (RFC 9110 §14.1.2) as (first, last) inclusive.

    "unsatisfiable" if it lies outside the blob (416); None to ignore the header and send
    the whole blob (malformed, several ranges, or an empty blob).
    """
    match = _BYTE_RANGE.match(header.strip())
    if match is None or size == 0:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # invalid range-spec: ignored (§14.1.1)
        if start >= size:
            return "unsatisfiable"
        return start, min(end, size - 1)
    if not last:
        return None
    suffix = int(last)
    if suffix == 0:
        return "unsatisfiable"
    return max(size - suffix, 0), size - 1


def _iter_file(file: File, start: int, length: int) -> Iterator[bytes]:
    try:
        file.seek(start)
        remaining = length
        while remaining > 0:
            chunk = file.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()


async def _aiter_file(file: File, start: int, length: int) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=False)
    try:
        await sync_to_async(file.seek, thread_sensitive=False)(start)
        remaining = length
        while remaining > 0:
            chunk = await read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()
