"""Sieve script services (RFC 9661): create, rename, replace content, destroy, activate.

A script's content is a blob of the account (uploaded by the client, pinned while the
script references it); it is parsed by the Sieve engine before it is accepted, so the
active script always runs. At most one script per account is active (a partial unique
index backs this up). Every change is recorded for SieveScript/changes and push.
"""

from __future__ import annotations

import unicodedata

from accounts.models import Account, User
from groupware.core.blobs import BlobNotFound, blob_id, blob_pin, blob_read, blob_unpin, parse_blob_id
from groupware.core.changes import Change, ChangeSet, account_changes
from groupware.core.ids import encode
from groupware.mail.delivery.models import SieveScript

SIEVE_SCRIPT_TYPE = "SieveScript"
SIEVE_SCRIPT_ID_PREFIX = "s"
MAX_SIZE_SCRIPT_NAME = 512  # octets (RFC 9661 maxSizeScriptName)
MAX_SIZE_SCRIPT = 1024 * 1024  # octets (maxSizeScript; the engine's own limit too)
MAX_NUMBER_SCRIPTS = 100


class SieveScriptError(Exception):
    """A change the Sieve script rules refuse."""


class SieveInvalid(SieveScriptError):
    """The content is not a valid script (RFC 9661 invalidSieve)."""


class ScriptNameInvalid(SieveScriptError):
    pass


class ScriptNameTaken(SieveScriptError):
    def __init__(self, existing: SieveScript) -> None:
        super().__init__(f"a script named {existing.name!r} exists")
        self.existing = existing


class ScriptTooLarge(SieveScriptError):
    pass


class ScriptsOverQuota(SieveScriptError):
    pass


class ScriptIsActive(SieveScriptError):
    pass


def sieve_script_id(pk: int) -> str:
    return encode(SIEVE_SCRIPT_ID_PREFIX, pk)


def sieve_validate(content: bytes) -> None:
    """Raise SieveInvalid (with the engine's "line L, column C: message") unless the
    content is a script the engine accepts; ScriptTooLarge past maxSizeScript."""
    from groupware.mail import sieve

    if len(content) > MAX_SIZE_SCRIPT:
        raise ScriptTooLarge(f"scripts are at most {MAX_SIZE_SCRIPT} octets")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SieveInvalid(f"the script is not UTF-8 (octet {error.start})") from None
    try:
        sieve.parse(text)
    except sieve.SieveParseError as error:
        raise SieveInvalid(str(error)) from None


def _name_check(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise ScriptNameInvalid("the name is empty")
    if len(name.encode()) > MAX_SIZE_SCRIPT_NAME:
        raise ScriptNameInvalid(f"the name is longer than {MAX_SIZE_SCRIPT_NAME} octets")
    # RFC 5804 §1.6: no control characters (so ManageSieve can carry the same names).
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        raise ScriptNameInvalid("the name contains control characters")
    return name


def _name_free(account: Account, name: str, exclude_pk: int | None) -> None:
    existing = SieveScript.objects.filter(account_id=account.pk, name=name).exclude(pk=exclude_pk).first()
    if existing is not None:
        raise ScriptNameTaken(existing)


def sieve_blob_read(account: Account, blob: str, user: User | None) -> tuple[str, bytes]:
    """(sha256, content) of a blob that holds a valid script; BlobNotFound, SieveInvalid or
    ScriptTooLarge otherwise."""
    sha256 = parse_blob_id(blob)
    content = blob_read(account, blob, user=user) if sha256 else None
    if sha256 is None or content is None:
        raise BlobNotFound(blob)
    sieve_validate(content)
    return sha256, content


def _changed(changes: ChangeSet, script: SieveScript, change: Change) -> None:
    changes.record(SIEVE_SCRIPT_TYPE, sieve_script_id(script.pk), change)


def sieve_script_create(*, account: Account, name: str | None, blob: str, user: User | None = None) -> SieveScript:
    """A new, inactive script from an uploaded blob; a null name gets a generated one."""
    with account_changes(account.pk) as changes:
        if SieveScript.objects.filter(account_id=account.pk).count() >= MAX_NUMBER_SCRIPTS:
            raise ScriptsOverQuota(f"at most {MAX_NUMBER_SCRIPTS} scripts")
        sha256, _ = sieve_blob_read(account, blob, user)
        if name is None:
            taken = set(SieveScript.objects.filter(account_id=account.pk).values_list("name", flat=True))
            number = len(taken) + 1
            while f"script-{number}" in taken:
                number += 1
            name = f"script-{number}"
        name = _name_check(name)
        _name_free(account, name, None)
        blob_pin(account, blob_id(sha256), user=user)
        script = SieveScript.objects.create(account=account, name=name, blob_id=sha256)
        _changed(changes, script, Change.CREATED)
    return script


def sieve_script_update(
    *, script: SieveScript, name: str | None = None, blob: str | None = None, user: User | None = None
) -> SieveScript:
    """Rename a script and/or replace its content (None leaves one as it is)."""
    account = script.account
    with account_changes(account.pk) as changes:
        fields = []
        if name is not None and name != script.name:
            name = _name_check(name)
            _name_free(account, name, script.pk)
            script.name = name
            fields.append("name")
        if blob is not None:
            sha256, _ = sieve_blob_read(account, blob, user)
            if sha256 != script.blob_id:
                blob_pin(account, blob_id(sha256), user=user)
                blob_unpin(account, blob_id(script.blob_id))
                script.blob_id = sha256
                fields.append("blob")
        if fields:
            script.save(update_fields=fields)
            _changed(changes, script, Change.UPDATED)
    return script


def sieve_script_destroy(*, script: SieveScript) -> None:
    """RFC 9661 §2.4: the active script can't be destroyed (deactivate it first)."""
    account = script.account
    with account_changes(account.pk) as changes:
        if SieveScript.objects.filter(pk=script.pk, is_active=True).exists():
            raise ScriptIsActive("deactivate the script before destroying it")
        blob_unpin(account, blob_id(script.blob_id))
        _changed(changes, script, Change.DESTROYED)
        script.delete()


def sieve_script_activate(*, account: Account, script: SieveScript | None) -> list[tuple[SieveScript, bool]]:
    """Make ``script`` the active one (None: no script active). Returns the scripts whose
    isActive changed, with the new value (the old active one first)."""
    changed: list[tuple[SieveScript, bool]] = []
    with account_changes(account.pk) as changes:
        current = SieveScript.objects.filter(account_id=account.pk, is_active=True).first()
        if current is not None and (script is None or current.pk != script.pk):
            current.is_active = False
            current.save(update_fields=["is_active"])
            _changed(changes, current, Change.UPDATED)
            changed.append((current, False))
        if script is not None and (current is None or current.pk != script.pk):
            script.is_active = True
            script.save(update_fields=["is_active"])
            _changed(changes, script, Change.UPDATED)
            changed.append((script, True))
    return changed
