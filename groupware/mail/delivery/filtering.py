"""Run the account's filters on an incoming message: the enabled VacationResponse first
(RFC 8621 §8, as a Sieve vacation action), then the active Sieve script (RFC 9661).

The result is a ``DeliveryPlan``: mailboxes and keywords for the one stored Email, the
vacation replies and redirects to queue, a rejection, or a discard. Reading the account's
state (script, mailboxes, reply tracking) happens here, before the delivery transaction;
the delivery records what the plan did in that transaction (groupware.mail.delivery.services).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from groupware.core import sql
from groupware.core.blobs import blob_storage, storage_name
from groupware.mail import sieve
from groupware.mail.delivery.models import SieveDuplicate, VacationReply, VacationResponse
from groupware.mail.services.emails import keyword_normalize

logger = logging.getLogger(__name__)

# RFC 8579 special-use names as JMAP Mailbox roles (RFC 8621 §2 uses the same registry).
_SPECIAL_USE_ROLES = {
    "\\all": "all",
    "\\archive": "archive",
    "\\drafts": "drafts",
    "\\flagged": "flagged",
    "\\important": "important",
    "\\junk": "junk",
    "\\sent": "sent",
    "\\trash": "trash",
}
SCRIPT_CACHE_SIZE = 256


def _keywords_of(flags: Iterable[str]) -> list[str]:
    # IMAP flags (RFC 5232) as valid JMAP keywords; \Recent and invalid flags have none.
    keywords = (keyword_normalize(keyword or "") for keyword in map(sieve.imap_flag_to_keyword, flags))
    return [keyword for keyword in keywords if keyword is not None]


VACATION_HANDLE_PREFIX = "jmap-vacation-"


@dataclass
class MailboxRef:
    """Where a fileinto/keep puts the message: an existing mailbox or a path to create."""

    pk: int | None
    path: tuple[str, ...] = ()


@dataclass
class DeliveryPlan:
    targets: list[MailboxRef] = field(default_factory=list)
    keywords: set[str] = field(default_factory=set)
    vacations: list[Any] = field(default_factory=list)  # sieve Vacation actions
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    duplicate_marks: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def stores(self) -> bool:
        return bool(self.targets)


def mailbox_path(name: str) -> tuple[str, ...]:
    """A script's mailbox name ("Parent/Child") as the names of its levels, in the form
    mailbox names are stored (NFC, RFC 8621 §2): "Cafe\u0301" names the mailbox "Caf\u00e9"."""
    return tuple(unicodedata.normalize("NFC", name).split("/"))


class MailboxTree:
    """The account's mailboxes by Sieve name ("Parent/Child"; "INBOX" is the inbox role)."""

    def __init__(self, account: Account, rows: list[tuple[Any, ...]] | None = None) -> None:
        """``rows``: (id, name, parent_id, role) of every mailbox of the account, if the
        caller has read them."""
        if rows is None:
            rows = sql.rows("SELECT id, name, parent_id, role FROM mail_mailbox WHERE account_id = %s", [account.pk])
        self.by_parent: dict[tuple[int | None, str], int] = {}
        self.roles: dict[str, int] = {}
        for pk, name, parent_id, role in rows:
            self.by_parent.setdefault((parent_id, name), pk)
            if role:
                self.roles[role] = pk

    @property
    def inbox(self) -> int | None:
        return self.roles.get("inbox")

    def find(self, name: str) -> int | None:
        segments = mailbox_path(name)
        parent: int | None = None
        if segments[0].upper() == "INBOX":  # RFC 3501 §5.1: INBOX in any case, and below it
            parent, segments = self.inbox, segments[1:]
        for segment in segments:
            pk = self.by_parent.get((parent, segment))
            if pk is None:
                return None
            parent = pk
        return parent

    def special_use(self, uses: list[str] | tuple[str, ...]) -> int | None:
        for use in uses:
            role = _SPECIAL_USE_ROLES.get(use.lower())
            if role and role in self.roles:
                return self.roles[role]
        return None


# -- Parsed scripts, cached by content (a script's blob is content-addressed) ----------------

_scripts: OrderedDict[str, Any] = OrderedDict()
_scripts_lock = threading.Lock()


def script_text(sha256: str) -> str:
    with blob_storage().open(storage_name(sha256), "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def compiled_script(sha256: str, text: str | None = None) -> Any:
    """The parsed script whose text has this sha-256: a script blob's, or ``text`` (parse
    errors raise the engine's error). Parsed once per process while it stays in use."""
    with _scripts_lock:
        if sha256 in _scripts:
            _scripts.move_to_end(sha256)
            return _scripts[sha256]
    script = sieve.parse(script_text(sha256) if text is None else text)
    with _scripts_lock:
        _scripts[sha256] = script
        while len(_scripts) > SCRIPT_CACHE_SIZE:
            _scripts.popitem(last=False)
    return script


def _quoted(text: str) -> str:
    # RFC 5228 §2.4.2: in a quoted string only \ and " need escaping.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def vacation_script(vacation: VacationResponse, *, sender_address: str) -> str:
    """The Sieve vacation action equivalent to an enabled VacationResponse (RFC 8621 §8)."""
    digest = hashlib.sha256(
        "\0".join(
            [vacation.subject or "", vacation.text_body or "", vacation.html_body or "", str(vacation.from_date)]
        ).encode()
    ).hexdigest()[:24]
    arguments = [f":days {int(settings.MAIL_VACATION_DAYS)}", f":handle {_quoted(VACATION_HANDLE_PREFIX + digest)}"]
    if vacation.subject:
        arguments.append(f":subject {_quoted(vacation.subject)}")
    arguments.append(f":from {_quoted(sender_address)}")
    if vacation.html_body:
        body = vacation_mime_body(text=vacation.text_body, html=vacation.html_body)
        arguments.append(":mime")
    else:
        body = vacation.text_body or ""
    return f'require ["vacation"];\r\nvacation {" ".join(arguments)} {_quoted(body)};\r\n'


def vacation_mime_body(*, text: str | None, html: str) -> str:
    """A multipart/alternative entity (text and HTML) for ``vacation :mime`` (RFC 5230 §5.8)."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    from email.policy import SMTP

    entity = MIMEMultipart("alternative")
    del entity["MIME-Version"]
    if text:
        entity.attach(MIMEText(text, "plain", "utf-8"))
    entity.attach(MIMEText(html, "html", "utf-8"))
    for part in entity.get_payload():
        del part["MIME-Version"]
    return entity.as_bytes(policy=SMTP).decode("ascii")


def vacation_active(vacation: VacationResponse | None, now: datetime) -> bool:
    """RFC 8621 §8: enabled, and now within [fromDate, toDate) where those are set."""
    if vacation is None or not vacation.is_enabled:
        return False
    if vacation.from_date is not None and now < vacation.from_date:
        return False
    return not (vacation.to_date is not None and now >= vacation.to_date)


def sieve_duplicate_key(key: str) -> str:
    """How an RFC 7352 duplicate key is stored (SieveDuplicate.key)."""
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()


# The active script, whether a VacationResponse is enabled, and every mailbox (at least one
# row, the mailbox columns NULL when there is none).
_FILTERS = (
    "SELECT f.script, f.vacation, m.id, m.name, m.parent_id, m.role FROM"
    " (SELECT (SELECT blob_id FROM mail_sievescript WHERE account_id = %s AND is_active LIMIT 1) AS script,"
    " (SELECT 1 FROM mail_vacationresponse WHERE account_id = %s AND is_enabled LIMIT 1) AS vacation) f"
    " LEFT JOIN mail_mailbox m ON m.account_id = %s"
)


def plan_delivery(
    *,
    account: Account,
    raw: bytes,
    mail_from: str,
    rcpt_to: str,
    user_addresses: tuple[str, ...],
    detail: str | None = None,
    now: datetime | None = None,
    message: Any = None,
) -> DeliveryPlan:
    """What to do with a message for this account (see the module doc)."""
    now = now or timezone.now()
    plan = DeliveryPlan()
    # One plain-SQL statement (groupware.core.sql) for what every delivery asks first.
    rows = sql.rows(_FILTERS, [account.pk] * 3)
    script_sha, vacation_enabled = rows[0][:2] if rows else (None, None)
    tree = MailboxTree(account, [row[2:] for row in rows if row[2] is not None])
    vacation = VacationResponse.objects.filter(account_id=account.pk).first() if vacation_enabled else None
    use_vacation = vacation_active(vacation, now)
    if script_sha is None and not use_vacation:
        plan.targets.append(MailboxRef(tree.inbox))
        return plan

    if message is None:  # the caller's view of ``raw``, when it has one
        message = sieve.MessageView.from_bytes(raw)
    envelope = sieve.Envelope(mail_from=mail_from or "", rcpt_to=rcpt_to, auth=None)

    def vacation_should_reply(sender: str, handle: str, seconds: int) -> bool:
        since = now - timedelta(seconds=max(int(seconds), 0))
        return not VacationReply.objects.filter(
            account_id=account.pk, handle=handle[:64], sender=sender.lower()[:320], sent__gt=since
        ).exists()

    def duplicate_seen(key: str, seconds: int, last: bool) -> bool:
        return SieveDuplicate.objects.filter(
            account_id=account.pk, key=sieve_duplicate_key(key), expires__gt=now
        ).exists()

    environment = sieve.Environment(
        user_addresses=user_addresses,
        now=now,
        mailbox_exists=lambda name: tree.find(name) is not None,
        special_use_exists=lambda name, uses: (
            tree.special_use(uses) is not None
            if name is None
            else tree.find(name) is not None and tree.find(name) == tree.special_use(uses)
        ),
        duplicate_seen=duplicate_seen,
        vacation_should_reply=vacation_should_reply,
    )
    if use_vacation:
        assert vacation is not None
        try:
            text = vacation_script(vacation, sender_address=user_addresses[0])
            outcome = sieve.evaluate(
                compiled_script(hashlib.sha256(text.encode()).hexdigest(), text),
                message=message,
                envelope=envelope,
                environment=environment,
            )
            plan.vacations.extend(action for action in outcome.actions if isinstance(action, sieve.Vacation))
        except Exception:  # never lose the message over the auto-reply
            logger.exception("vacation response of account %s failed", account.pk)
    if script_sha is None:
        plan.targets.append(MailboxRef(tree.inbox))
        return plan
    try:
        outcome = sieve.evaluate(
            compiled_script(script_sha), message=message, envelope=envelope, environment=environment
        )
    except Exception:
        # RFC 5228 §2.10.6: if the script fails, keep the message.
        logger.exception("Sieve script of account %s failed", account.pk)
        plan.errors.append("the script failed")
        plan.targets.append(MailboxRef(tree.inbox))
        return plan
    plan.errors.extend(outcome.errors)
    plan.duplicate_marks.extend(outcome.duplicate_marks)
    _apply_actions(plan, tree, outcome.actions, sieve)
    if use_vacation:
        # The VacationResponse answers first: a script's own vacation is not sent twice.
        plan.vacations = plan.vacations[:1] if plan.vacations else []
    plan.vacations = [_own_from(action, user_addresses) for action in plan.vacations]
    return plan


def _own_from(action: Any, user_addresses: tuple[str, ...]) -> Any:
    """A vacation reply goes out from one of the user's own addresses: a script's ``:from``
    naming someone else is dropped (RFC 5230 §4.3: "SHOULD" be the user's address)."""
    if action.from_address and parseaddr(action.from_address)[1].lower() not in user_addresses:
        return replace(action, from_address=None)
    return action


def _apply_actions(plan: DeliveryPlan, tree: MailboxTree, actions: list[Any], sieve: Any) -> None:
    for action in actions:
        if isinstance(action, sieve.Keep):
            plan.targets.append(MailboxRef(tree.inbox))
            plan.keywords.update(_keywords_of(action.flags))
        elif isinstance(action, sieve.FileInto):
            pk = tree.special_use([action.special_use]) if action.special_use else None
            if pk is None:
                pk = tree.find(action.mailbox)
            if pk is not None:
                plan.targets.append(MailboxRef(pk))
            elif action.create:
                plan.targets.append(MailboxRef(None, mailbox_path(action.mailbox)))
            else:  # RFC 5490 §3.2 / RFC 5228 §4.1: a missing mailbox means keep
                plan.targets.append(MailboxRef(tree.inbox))
            plan.keywords.update(_keywords_of(action.flags))
        elif isinstance(action, sieve.Redirect):
            plan.redirects.append(action.address)
        elif isinstance(action, sieve.Vacation):
            plan.vacations.append(action)
        elif isinstance(action, sieve.Reject):
            plan.reject = action.reason or "rejected by the recipient's filter"
        # Discard: nothing to do; DuplicateMark comes as outcome.duplicate_marks.
    if plan.reject is not None:
        plan.targets.clear()
