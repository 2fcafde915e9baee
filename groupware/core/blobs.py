"""Binary data (RFC 8620 §6): a content-addressed blob store over Django's storage API.

Content is stored once per distinct SHA-256 digest, under ``ab/cd/<sha256>`` in
``storages["blobs"]`` (a local directory or S3). A ``Blob`` row records that the content
exists; an ``AccountBlob`` row makes it visible in one account. The JMAP blob id is
``"b" + sha256`` (RFC 8620 §6: the id represents the raw bytes only, never a name or a
type), so identical uploads get the same id (§6.1 allows returning the existing blobId).

Every lookup is scoped to an account: a blob of another account is indistinguishable
from one that does not exist. Lookups made for a user (``user=``; the protocol layer
always passes it) also hide unreferenced blobs that user did not upload or copy into the
account: RFC 8620 §6.1 says unreferenced blobs "MUST only be accessible to the uploader,
even in shared accounts". Internal callers (delivery, tasks) may omit ``user``.

Lifetime. ``AccountBlob.refcount`` counts the objects of the account that reference the
blob; data types call ``blob_pin``/``blob_unpin`` as their objects start and stop
referencing one. ``AccountBlob.created`` is when the row last became unreferenced (upload,
copy, re-upload, or its last reference going away): ``blob_gc`` removes unreferenced rows
older than ``BLOB_UNREFERENCED_TTL``, then content no account can see.

Concurrency. All row changes for one digest are serialised on its ``Blob`` row lock:
uploads, copies and the garbage collector take it, and the collector deletes a file only
while holding it, after deleting the row. An upload that waited for that lock re-creates
the row, finds the file gone and writes it again, so a racing upload never ends up
referencing a deleted file. The (possibly long) first write of a file happens before the
transaction, so SQLite's database-wide write lock is not held during the copy.

Durability. A file is written beside its name, flushed and renamed into place, and its
directory entries are flushed before the rows that name it commit, so nothing a client
was told is stored (an upload's blobId, an imported or delivered Email) can lose its
content in a power loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Protocol

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from accounts.models import Account, User
from groupware.core import sql
from groupware.core.models import AccountBlob, Blob

logger = logging.getLogger("groupware.blobs")

BLOB_ID_PREFIX = "b"
DEFAULT_TYPE = "application/octet-stream"
# Read and write in chunks this big; keep uploads up to SPOOL_IN_MEMORY in memory, larger
# ones go to a temporary file while they are hashed.
CHUNK_SIZE = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024
GC_BATCH_SIZE = 500

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class BlobTooLarge(Exception):
    """The content is larger than the size allowed for it (e.g. ``maxSizeUpload``)."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"The blob is larger than the maximum of {max_size} octets.")
        self.max_size = max_size


class BlobNotFound(LookupError):
    """No such blob in this account (also for blobs that exist only in other accounts)."""

    def __init__(self, blob_id: object) -> None:
        super().__init__(f"blob {blob_id!r} not found")
        self.blob_id = blob_id


@dataclass
class OpenBlob:
    """An open blob; the caller closes ``file`` (or uses the object as a context manager)."""

    blob_id: str
    sha256: str
    size: int
    type: str
    file: File

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> OpenBlob:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class BlobGcResult:
    account_blobs: int  # unreferenced AccountBlob rows removed
    blobs: int  # Blob rows (and their files) removed


def blob_id(sha256: str) -> str:
    """The JMAP id of content with this SHA-256 digest (hex)."""
    return BLOB_ID_PREFIX + sha256


def parse_blob_id(value: object) -> str | None:
    """The SHA-256 digest behind a blob id, or None for anything that isn't one of ours."""
    if not isinstance(value, str) or not value.startswith(BLOB_ID_PREFIX):
        return None
    digest = value[len(BLOB_ID_PREFIX) :]
    return digest if _SHA256_HEX.match(digest) else None


def storage_name(sha256: str) -> str:
    # Two levels of fan-out keep directories small on file systems (65536 buckets).
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def blob_storage() -> Storage:
    return storages["blobs"]


# -- Selectors --------------------------------------------------------------------------


def visible_to(queryset: QuerySet[AccountBlob], user: User | None) -> QuerySet[AccountBlob]:
    """Only the rows ``user`` may see: referenced ones, or unreferenced ones they uploaded."""
    if user is None:
        return queryset
    uploaded = AccountBlob.uploaders.through.objects.filter(accountblob_id=OuterRef("pk"), user_id=user.pk)
    return queryset.filter(Q(refcount__gt=0) | Exists(uploaded))


def blob_find(account: Account, blob_id: object, *, user: User | None = None) -> AccountBlob | None:
    """The account's row for a blob id (with its ``blob``), or None if it can't see it."""
    sha256 = parse_blob_id(blob_id)
    if sha256 is None:
        return None
    return _find_rows(account, [sha256], user).get(sha256)


def _find_rows(account: Account, digests: list[str], user: User | None) -> dict[str, AccountBlob]:
    """AccountBlob rows (with ``blob``) by digest, as ``visible_to`` filters them: plain SQL
    (groupware.core.sql), as every import, download and blob reference reads them."""
    query = (
        f"SELECT {sql.columns(AccountBlob, 'ab')[0]}, b.size, b.created FROM core_accountblob ab"  # noqa: S608 (column names only)
        " JOIN core_blob b ON b.sha256 = ab.blob_id"
        f" WHERE ab.account_id = %s AND ab.blob_id IN ({sql.placeholders(len(digests))})"
    )
    params: list[Any] = [account.pk, *digests]
    if user is not None:
        query += (
            " AND (ab.refcount > 0 OR EXISTS (SELECT 1 FROM core_accountblob_uploaders u"
            " WHERE u.accountblob_id = ab.id AND u.user_id = %s))"
        )
        params.append(user.pk)
    found = {}
    for row, (size, created) in sql.instances(AccountBlob, query, params, extra=2):
        row.blob = Blob(sha256=row.blob_id, size=size, created=sql.read_datetime(created))
        found[row.blob_id] = row
    return found


# Blob ids that name content derived from a stored blob (e.g. one MIME part of a stored
# message), by their first character: the resolver returns the octets or None.
DerivedBlobResolver = Callable[[Any, str, Any], "bytes | None"]
_derived_resolvers: dict[str, DerivedBlobResolver] = {}


def register_derived_blobs(prefix: str, resolver: DerivedBlobResolver) -> None:
    """Let a data type serve blob ids starting with ``prefix`` (downloads, Blob/copy...)."""
    if prefix == BLOB_ID_PREFIX:
        raise ValueError("the plain blob prefix can't be taken over")
    _derived_resolvers[prefix] = resolver


def _open_derived(account: Account, blob_id: object, user: User | None) -> OpenBlob | None:
    if not isinstance(blob_id, str) or not blob_id:
        return None
    resolver = _derived_resolvers.get(blob_id[0])
    if resolver is None:
        return None
    content = resolver(account, blob_id, user)
    if content is None:
        return None
    return OpenBlob(
        blob_id=blob_id,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        type="application/octet-stream",
        file=File(io.BytesIO(content)),
    )


def blob_find_many(account: Account, blob_ids: Iterable[object], *, user: User | None = None) -> dict[str, AccountBlob]:
    """The account's rows (with ``blob``) for plain blob ids it can see, by digest: one query."""
    digests = sorted({digest for digest in map(parse_blob_id, blob_ids) if digest is not None})
    found: dict[str, AccountBlob] = {}
    for start in range(0, len(digests), 500):
        found.update(_find_rows(account, digests[start : start + 500], user))
    return found


def blob_open(account: Account, blob_id: object, *, user: User | None = None) -> OpenBlob | None:
    """Open a blob visible in the account for reading, or None (missing or foreign alike)."""
    if isinstance(blob_id, str) and not blob_id.startswith(BLOB_ID_PREFIX):
        return _open_derived(account, blob_id, user)
    account_blob = blob_find(account, blob_id, user=user)
    if account_blob is None:
        return None
    return blob_open_row(account_blob)


def blob_open_row(account_blob: AccountBlob) -> OpenBlob | None:
    """Open the content of a row found by ``blob_find``/``blob_find_many``."""
    sha256 = account_blob.blob_id
    try:
        handle = blob_storage().open(storage_name(sha256), "rb")
    except OSError:
        # A row without its file is a bug or lost storage, not the client's fault; to the
        # client it is simply not there.
        logger.error("blob %s is recorded but its file is missing", sha256)
        return None
    return OpenBlob(
        blob_id=BLOB_ID_PREFIX + sha256,  # (the argument shadows blob_id())
        sha256=sha256,
        size=account_blob.blob.size,
        type=account_blob.type,
        file=handle,
    )


def blob_read(account: Account, blob_id: object, *, user: User | None = None) -> bytes | None:
    """The whole content of a blob visible in the account, or None. For small blobs."""
    return _read_whole(blob_open(account, blob_id, user=user))


def blob_read_row(account_blob: AccountBlob) -> bytes | None:
    """``blob_read`` for a row found by ``blob_find``/``blob_find_many``."""
    return _read_whole(blob_open_row(account_blob))


def _read_whole(opened: OpenBlob | None) -> bytes | None:
    if opened is None:
        return None
    with opened:
        return opened.file.read()


# -- Services ---------------------------------------------------------------------------


def blob_store(
    *,
    account: Account,
    stream_or_bytes: bytes | Readable,
    type: str,
    max_size: int | None = None,
    user: User | None = None,
) -> AccountBlob:
    """Store content in an account and return its row (with ``blob`` loaded).

    ``user`` is the uploader: while the blob is unreferenced, only its uploaders see it.

    ``stream_or_bytes`` is read in chunks up to ``max_size`` octets (default: the JMAP
    ``maxSizeUpload``); more raises ``BlobTooLarge`` without storing anything. Content
    that is already stored is not written again. Storing content the account already has
    returns the existing row with ``type`` updated and, if unreferenced, its expiry reset
    (RFC 8620 §6: re-uploading "SHOULD reset the expiry time").
    """
    limit = settings.JMAP["maxSizeUpload"] if max_size is None else max_size
    with _spooled(stream_or_bytes, limit) as (spool, sha256, size):
        name = storage_name(sha256)
        _ensure_stored(name, spool, size)
        return _store_rows(account=account, sha256=sha256, size=size, type=type, user=user, spool=spool, pin=False)


_BLOB_UPSERT = (
    "INSERT INTO core_blob (sha256, size, created) VALUES (%s, %s, %s)"
    " ON CONFLICT (sha256) DO UPDATE SET size = excluded.size"
)
# New: created now. Existing: the type is updated and, if it was unreferenced, its expiry
# restarts (RFC 8620 §6: re-uploading "SHOULD reset the expiry time").
_ACCOUNT_BLOB_CONFLICT = (
    " ON CONFLICT (account_id, blob_id) DO UPDATE SET type = excluded.type,"
    " refcount = core_accountblob.refcount + excluded.refcount,"
    " created = CASE WHEN core_accountblob.refcount = 0 THEN excluded.created ELSE core_accountblob.created END"
    " RETURNING id, refcount, created"
)
_UPLOADER_INSERT = "INSERT INTO core_accountblob_uploaders (accountblob_id, user_id) {source} ON CONFLICT DO NOTHING"
# PostgreSQL: the Blob upsert (which takes the row lock first), the AccountBlob upsert and
# the uploader in one statement.
_STORE_ROWS = (
    f"WITH b AS ({_BLOB_UPSERT} RETURNING sha256),"  # noqa: S608 (constants only)
    " ab AS (INSERT INTO core_accountblob (account_id, blob_id, type, refcount, created)"
    f" SELECT %s::bigint, sha256, %s::text, %s::integer, %s::timestamptz FROM b{_ACCOUNT_BLOB_CONFLICT})"
)
_UPLOADER_FROM_AB = _UPLOADER_INSERT.format(source="SELECT id, %s::bigint FROM ab")
_STORE_ROWS_WITH_UPLOADER = f"{_STORE_ROWS}, u AS ({_UPLOADER_FROM_AB}) SELECT id, refcount, created FROM ab"  # noqa: S608
_STORE_ROWS += " SELECT id, refcount, created FROM ab"


def _store_rows(
    *, account: Account, sha256: str, size: int, type: str, user: User | None, spool: IO[bytes], pin: bool
) -> AccountBlob:
    """The Blob and AccountBlob rows of stored content (plain SQL, groupware.core.sql: every
    upload and stored message comes here), with one reference counted if ``pin``."""
    moment = timezone.now()
    now = sql.db_datetime(moment)
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            # The same three upserts as below in one statement (one round trip).
            pk, refcount, created = sql.row(
                _STORE_ROWS_WITH_UPLOADER if user is not None else _STORE_ROWS,
                [sha256, size, now, account.pk, type, int(pin), now] + ([user.pk] if user is not None else []),
            )
            # Checked again under the Blob row lock: the collector may have deleted the file.
            _ensure_stored(storage_name(sha256), spool, size, recheck=True)
        else:
            # The upsert locks the Blob row: the collector (which deletes only under that
            # lock) can't remove the content until we commit.
            # Meeting its uncommitted delete, the insert waits, then inserts a new row.
            sql.execute(_BLOB_UPSERT, [sha256, size, now])
            # Checked again under the lock: the collector may have deleted the file meanwhile.
            _ensure_stored(storage_name(sha256), spool, size, recheck=True)
            pk, refcount, created = sql.row(
                "INSERT INTO core_accountblob (account_id, blob_id, type, refcount, created)"  # noqa: S608 (constant)
                " VALUES (%s, %s, %s, %s, %s)" + _ACCOUNT_BLOB_CONFLICT,
                [account.pk, sha256, type, int(pin), now],
            ) or (None, 0, None)
            if user is not None:
                sql.execute(_UPLOADER_INSERT.format(source="VALUES (%s, %s)"), [pk, user.pk])
    account_blob = AccountBlob(
        pk=pk, account_id=account.pk, blob_id=sha256, type=type, refcount=refcount, created=sql.read_datetime(created)
    )
    account_blob._state.adding = False
    account_blob.blob = Blob(sha256=sha256, size=size, created=moment)
    return account_blob


def blob_write(content: bytes) -> str:
    """Write content to storage (unless a complete copy is there) and return its sha-256.
    Needs no transaction: callers do it before locking the account, then reference it
    with ``blob_store_pinned``."""
    sha256 = hashlib.sha256(content).hexdigest()
    _ensure_stored(storage_name(sha256), io.BytesIO(content), len(content))
    return sha256


def blob_store_pinned(
    *, account: Account, content: bytes, type: str, user: User | None = None, written: str | None = None
) -> str:
    """``blob_store`` then ``blob_pin`` in two or three statements (the message store calls
    it for every message). Call it in the transaction that stores the referencing object.
    ``written``: what ``blob_write`` returned for this content, if the caller wrote it
    already (it is checked again under the Blob row lock all the same). Returns the sha-256."""
    sha256 = written or blob_write(content)
    _store_rows(
        account=account, sha256=sha256, size=len(content), type=type, user=user, spool=io.BytesIO(content), pin=True
    )
    return sha256


def blob_copy(
    *, from_account: Account, to_account: Account, blob_id: object, user: User | None = None
) -> AccountBlob | None:
    """Make a blob of ``from_account`` visible in ``to_account`` (RFC 8620 §6.3).

    Returns the target row, or None if ``from_account`` (or ``user`` in it) can't see the
    blob. Nothing is copied in storage: both accounts share the content. In the target,
    the copy is an unreferenced blob of ``user``, as if they had uploaded it.
    """
    sha256 = parse_blob_id(blob_id)
    if sha256 is None:
        return None
    with transaction.atomic():
        source = visible_to(AccountBlob.objects.filter(account_id=from_account.pk, blob_id=sha256), user).first()
        if source is None:
            return None
        # The lock keeps the collector from removing the content between this check and
        # the new row (it may already have expired the source row: then it is gone).
        blob = Blob.objects.select_for_update().filter(pk=sha256).first()
        if blob is None:
            return None
        target = AccountBlob.objects.select_for_update().filter(account_id=to_account.pk, blob_id=sha256).first()
        now = timezone.now()
        if target is None:
            target = AccountBlob.objects.create(account=to_account, blob=blob, type=source.type, created=now)
        elif target.refcount == 0:
            target.created = now  # like a re-upload, a copy restarts the unreferenced TTL
            target.save(update_fields=["created"])
        if user is not None:
            _add_uploader(target, user)
        target.blob = blob
    return target


def blob_pin(account: Account, blob_id: object, *, user: User | None = None) -> None:
    """Count one more reference to a blob from an object of the account.

    Raises ``BlobNotFound`` if the account (or ``user``, the user making the change)
    can't see the blob; for a create or update, map it to the data type's error (e.g.
    ``blobNotFound``). Call it in the transaction that stores the referencing object, so
    a rollback undoes it.
    """
    sha256 = parse_blob_id(blob_id)
    if sha256 is None:
        raise BlobNotFound(blob_id)
    # One UPDATE: if the collector has just deleted the row, it matches nothing (after
    # waiting for the collector's lock) instead of resurrecting a reference to nothing.
    rows = visible_to(AccountBlob.objects.filter(account_id=account.pk, blob_id=sha256), user)
    updated = rows.update(refcount=F("refcount") + 1)
    if not updated:
        raise BlobNotFound(blob_id)


def blob_pin_many(account: Account, sha256s: Sequence[str], *, user: User | None = None) -> set[str]:
    """``blob_pin`` for many blobs (by sha-256; one reference per occurrence) in one
    UPDATE per distinct multiplicity; returns the ones the account (or ``user``) can't see,
    which got no reference."""
    counts = Counter(sha256s)
    by_count: dict[int, list[str]] = {}
    for sha256, count in counts.items():
        by_count.setdefault(count, []).append(sha256)
    missing: set[str] = set()
    for count, group in by_count.items():
        rows = visible_to(AccountBlob.objects.filter(account_id=account.pk, blob_id__in=group), user)
        if rows.update(refcount=F("refcount") + count) != len(group):
            found = set(
                AccountBlob.objects.filter(account_id=account.pk, blob_id__in=group, refcount__gt=0).values_list(
                    "blob_id", flat=True
                )
            )
            missing |= set(group) - found
    return missing


def blob_unpin(account: Account, blob_id: object) -> bool:
    """Count one reference fewer; False if there was none to remove (a caller's bug).

    When the last reference goes, the unreferenced TTL starts again from now: RFC 8620 §6
    forbids deleting a blob during the method call that removed its last reference, and
    the grace period lets a client re-reference it (e.g. a draft replaced by a new one).
    """
    sha256 = parse_blob_id(blob_id)
    if sha256 is None:
        return False
    updated = AccountBlob.objects.filter(account_id=account.pk, blob_id=sha256, refcount__gt=0).update(
        refcount=F("refcount") - 1,
        created=Case(When(refcount=1, then=Value(timezone.now())), default=F("created")),
    )
    if not updated:
        logger.warning("blob_unpin without a reference: account %s, blob %s", account.pk, blob_id)
    return bool(updated)


def blob_gc(now: datetime | None = None, *, batch_size: int = GC_BATCH_SIZE) -> BlobGcResult:
    """Remove expired unreferenced blobs, then content that no account can see.

    Idempotent and safe to run concurrently with uploads, copies, pins and itself.
    """
    now = timezone.now() if now is None else now
    cutoff = now - timedelta(seconds=settings.BLOB_UNREFERENCED_TTL)
    account_blobs = 0
    while True:
        with transaction.atomic():
            # Locked first: a concurrent pin or re-upload either waits and then finds the
            # row gone, or commits first and the row no longer matches (refcount, created).
            batch = list(
                AccountBlob.objects.select_for_update(skip_locked=True)
                .filter(refcount=0, created__lt=cutoff)
                .order_by("created")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                break
            deleted = AccountBlob.objects.filter(pk__in=batch).delete()[0]
        account_blobs += deleted
        if deleted == 0:
            break

    blobs = 0
    orphans = Blob.objects.filter(~Exists(AccountBlob.objects.filter(blob_id=OuterRef("pk"))))
    after = ""
    while True:
        candidates = list(orphans.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not candidates:
            break
        after = candidates[-1]
        blobs += sum(1 for sha256 in candidates if _blob_delete_if_orphan(sha256))
    if account_blobs or blobs:
        logger.info("blob gc: %d unreferenced account blobs, %d blobs removed", account_blobs, blobs)
    return BlobGcResult(account_blobs=account_blobs, blobs=blobs)


# -- Internals --------------------------------------------------------------------------


@contextmanager
def _spooled(source: bytes | Readable, limit: int) -> Iterator[tuple[IO[bytes], str, int]]:
    """Copy the content to a temporary file while hashing it; yield (file, sha256, size)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > limit:
            raise BlobTooLarge(limit)
        buffer = io.BytesIO(data)
        try:
            yield buffer, hashlib.sha256(data).hexdigest(), len(data)
        finally:
            buffer.close()
        return
    digest = hashlib.sha256()
    size = 0
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=settings.FILE_UPLOAD_TEMP_DIR)
    try:
        while True:
            # Never ask for more than one octet past the limit, whatever the source claims.
            chunk = source.read(min(CHUNK_SIZE, limit - size + 1))
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise BlobTooLarge(limit)
            digest.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        yield spool, digest.hexdigest(), size
    finally:
        spool.close()


def _add_uploader(account_blob: AccountBlob, user: User) -> None:
    # Under the Blob row lock, so no concurrent insert of the same pair.
    AccountBlob.uploaders.through.objects.bulk_create(
        [AccountBlob.uploaders.through(accountblob_id=account_blob.pk, user_id=user.pk)], ignore_conflicts=True
    )


def _is_stored(storage: Storage, name: str, size: int) -> bool:
    try:
        return storage.exists(name) and storage.size(name) == size
    except OSError:
        return False


def _ensure_stored(name: str, content: IO[bytes], size: int, *, recheck: bool = False) -> None:
    """Write the content under its name unless a complete copy is already there, and
    flush it. ``recheck``: the caller ensured it moments ago (flushed then) and looks
    again under the Blob row lock; flushed again only if it has to write it again."""
    storage = blob_storage()
    for attempt in range(3):
        if _is_stored(storage, name, size):
            if recheck and attempt == 0:
                return
            break
        if _write_file(storage, name, content):
            continue
        # A storage without local paths (S3: a PUT replaces an object whole).
        if storage.exists(name):
            storage.delete(name)  # a partial copy
        content.seek(0)
        saved = storage.save(name, File(content, name=name))
        if saved != name:
            # Another writer created the name between the check and the save; storages
            # that don't overwrite then pick a fresh name. Same content: drop ours, and
            # look again at theirs.
            storage.delete(saved)
    else:
        if not _is_stored(storage, name, size):
            raise OSError(f"blob {name} could not be stored completely")
    _flush_directories(storage, name)


def _write_file(storage: Storage, name: str, content: IO[bytes]) -> bool:
    """File storage: write the content to a temporary file beside its name, flush it and
    rename it into place, so no reader and no other writer (identical uploads at once)
    ever sees a partial file under the name, and a partial one left by a crash is replaced
    whole. The file is flushed before the rename: a file under its name is always on
    disk. False for a storage without local paths."""
    path = _local_path(storage, name)
    if path is None:
        return False
    bucket = os.path.dirname(path)
    os.makedirs(bucket, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=bucket, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            content.seek(0)
            shutil.copyfileobj(content, handle, CHUNK_SIZE)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, getattr(storage, "file_permissions_mode", None) or 0o644)
        os.replace(temporary, path)  # atomic; a copy written meanwhile is the same content
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def _flush_directories(storage: Storage, name: str) -> None:
    """Put the directory entries of a file on disk before any row that names it commits:
    a committed row must never outlive its content, even across a power loss (the
    database's commit is durable; a rename is not until its directory is flushed). Also
    when the file was found in place: its writer may not have flushed them yet. The file
    itself was flushed before its rename (``_write_file``). File storage only (an S3 PUT
    is durable when it returns)."""
    path = _local_path(storage, name)
    if path is None:
        return
    bucket = os.path.dirname(path)
    for directory in (bucket, os.path.dirname(bucket)):  # ab/cd/ and ab/
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _local_path(storage: Storage, name: str) -> str | None:
    try:
        return storage.path(name)
    except NotImplementedError:  # S3
        return None


def _blob_delete_if_orphan(sha256: str) -> bool:
    with transaction.atomic():
        # skip_locked: content being uploaded or copied right now is not garbage.
        blob = Blob.objects.select_for_update(skip_locked=True).filter(pk=sha256).first()
        if blob is None or AccountBlob.objects.filter(blob_id=sha256).exists():
            return False
        Blob.objects.filter(pk=sha256).delete()
        # Deleted while the row lock is held, so an upload of the same content waits and
        # then writes the file again (see the module docstring). If the commit fails after
        # this, the row stays without its file; the next upload rewrites the file and the
        # next collection deletes the row.
        blob_storage().delete(storage_name(sha256))
    return True
