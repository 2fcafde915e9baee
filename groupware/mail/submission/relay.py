"""The outgoing relay: sends queued messages, records outcomes, retries, writes DSNs.

The queue lives in the database (OutboundMessage, OutboundRecipient). ``relay_message``
is idempotent: it claims the message's due recipients with a lease (a conditional
UPDATE, so two runs never hold one recipient), sends, and records each outcome in one
transaction. A run that dies mid-way leaves leases that expire; the recipients are then
due again (at-least-once: a crash between the remote's 250 and the commit can send a
message twice, the usual trade-off of mail queues).

Routes: local recipients go to ``local.deliver_local``; remote ones to the smarthost
(SUBMISSION_SMARTHOST) or, without one, to each domain's MX hosts (RFC 5321 §5.1).
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.db.models import Q
from django.utils import timezone

from groupware.core.blobs import blob_id, blob_read, blob_unpin
from groupware.core.changes import Change, account_changes
from groupware.mail.models import Mailbox
from groupware.mail.submission.addresses import address_domain
from groupware.mail.submission.config import Smarthost
from groupware.mail.submission.local import Reply, deliver_local, is_local
from groupware.mail.submission.models import EmailSubmission, OutboundMessage, OutboundRecipient
from groupware.mail.submission.reports import (
    SUBMISSION_TYPE,
    FailedRecipient,
    build_dsn,
    helo_name,
    submission_id,
    submission_report_received,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "opportunistic"
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    remote_mta: str | None = None


def format_reply(code: int, message: bytes | str) -> Reply:
    """RFC 8621 §7 smtpReply: one line; later lines lose the enhanced code the first has."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return Reply(code, "")
    first = lines[0]
    prefix = first.split(" ", 1)[0] if first[:1].isdigit() and "." in first.split(" ", 1)[0] else ""
    rest = [line[len(prefix) :].strip() if prefix and line.startswith(prefix) else line for line in lines[1:]]
    return Reply(code, " ".join([first, *rest]))


# -- SMTP ---------------------------------------------------------------------------------


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def smtp_send(
    *, route: Route, mail_from: str, recipients: list[tuple[str, dict]], message: bytes
) -> dict[str, Outcome]:
    """One SMTP transaction to one host: an Outcome per recipient (temporary 4xx when the
    connection fails before a recipient got a reply). smtplib dot-stuffs the DATA."""
    timeout = settings.SUBMISSION_SMTP_TIMEOUT
    results: dict[str, Outcome] = {}

    def fill(reply: Reply) -> None:
        for address, _ in recipients:
            results.setdefault(address, Outcome(reply, route.host))

    connection: smtplib.SMTP | None = None
    try:
        if route.implicit_tls:
            connection = smtplib.SMTP_SSL(
                route.host, route.port, local_hostname=helo_name(), timeout=timeout,
                context=_tls_context(route.verify_tls),
            )  # fmt: skip
        else:
            connection = smtplib.SMTP(route.host, route.port, local_hostname=helo_name(), timeout=timeout)
        code, text = connection.ehlo()
        if code != 250:
            code, text = connection.helo()
            if code != 250:
                fill(format_reply(code, text))
                return results
        if not route.implicit_tls and route.starttls != "no":
            if connection.has_extn("starttls"):
                connection.starttls(context=_tls_context(route.verify_tls))
                connection.ehlo()
            elif route.starttls == "required":
                fill(Reply(451, "4.7.0 The relay does not offer STARTTLS, which is required"))
                return results
        if route.username:
            try:
                _login(connection, route.username, route.password or "")
            except smtplib.SMTPAuthenticationError as error:
                # Our credentials are wrong: an administrator can fix that, so retry.
                fill(Reply(451, f"4.7.0 Authentication at the relay failed: {error.smtp_code}"))
                return results
        options = ["SMTPUTF8"] if not mail_from.isascii() else []
        if connection.has_extn("size"):
            options.append(f"SIZE={len(message)}")
        code, text = connection.mail(mail_from, options)
        if code != 250:
            fill(format_reply(code, text))
            return results
        accepted = []
        for address, _parameters in recipients:
            code, text = connection.rcpt(address)
            results[address] = Outcome(format_reply(code, text), route.host)
            if code in (250, 251):
                accepted.append(address)
        if accepted:
            try:
                code, text = connection.data(message)
            except smtplib.SMTPDataError as error:
                code, text = error.smtp_code, error.smtp_error
            for address in accepted:
                results[address] = Outcome(format_reply(code, text), route.host)
        else:
            connection.rset()
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            pass
        connection = None
    except smtplib.SMTPConnectError as error:
        fill(format_reply(error.smtp_code if error.smtp_code >= 400 else 451, error.smtp_error))
    except smtplib.SMTPResponseException as error:
        fill(format_reply(error.smtp_code, error.smtp_error))
    except (smtplib.SMTPException, OSError) as error:
        fill(Reply(451, f"4.4.1 Connection to {route.host} failed: {error.__class__.__name__}"))
    finally:
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass
    return results


def _login(connection: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with one mechanism (PLAIN, else LOGIN; the connection is TLS or trusted):
    smtplib's login() would try the next mechanism after a refusal, and some servers
    then wait for a continuation that never comes."""
    mechanisms = connection.esmtp_features.get("auth", "").upper().split()
    if not mechanisms:
        raise smtplib.SMTPNotSupportedError("the relay does not offer AUTH")
    connection.user, connection.password = username, password
    if "PLAIN" in mechanisms:
        connection.auth("PLAIN", connection.auth_plain)
    else:
        connection.auth("LOGIN", connection.auth_login, initial_response_ok=False)


def mx_hosts(domain: str) -> list[str] | Reply:
    """The domain's mail exchangers by preference (RFC 5321 §5.1), or the Reply to record
    when there are none: NXDOMAIN and null MX (RFC 7505) fail for good, DNS trouble not."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.get_default_resolver()
    if settings.SUBMISSION_DNS_SERVER is not None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [settings.SUBMISSION_DNS_SERVER[0]]
        resolver.port = settings.SUBMISSION_DNS_SERVER[1]
    try:
        answer = resolver.resolve(domain, "MX", lifetime=settings.SUBMISSION_SMTP_TIMEOUT)
    except dns.resolver.NXDOMAIN:
        return Reply(550, f"5.1.2 The domain {domain} does not exist")
    except dns.resolver.NoAnswer:
        return [domain]  # no MX: the domain itself is the implicit MX
    except dns.exception.DNSException as error:
        return Reply(451, f"4.4.3 DNS lookup for {domain} failed: {error.__class__.__name__}")
    records = sorted(answer, key=lambda record: record.preference)
    hosts = [str(record.exchange).rstrip(".") for record in records]
    if hosts == [""]:
        return Reply(556, f"5.1.10 The domain {domain} accepts no mail (null MX)")
    return [host for host in hosts if host]


def _send_remote(mail_from: str, recipients: list[tuple[str, dict]], message: bytes) -> dict[str, Outcome]:
    host: Smarthost | None = settings.SUBMISSION_SMARTHOST
    if host is not None:
        route = Route(
            host=host.host, port=host.port, implicit_tls=host.implicit_tls, starttls=host.starttls,
            username=host.username, password=host.password, verify_tls=host.verify_tls,
        )  # fmt: skip
        return smtp_send(route=route, mail_from=mail_from, recipients=recipients, message=message)
    results: dict[str, Outcome] = {}
    by_domain: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for address, parameters in recipients:
        by_domain[address_domain(address)].append((address, parameters))
    for domain, group in by_domain.items():
        hosts = mx_hosts(domain)
        if isinstance(hosts, Reply):
            results.update({address: Outcome(hosts) for address, _ in group})
            continue
        pending = group
        for mx in hosts:
            route = Route(host=mx, port=settings.SUBMISSION_MX_PORT, verify_tls=False)
            outcome = smtp_send(route=route, mail_from=mail_from, recipients=pending, message=message)
            results.update(outcome)
            # Try the next MX only for recipients that failed temporarily at this one.
            pending = [(a, p) for a, p in pending if not outcome[a].reply.ok and not outcome[a].reply.permanent]
            if not pending:
                break
    return results


# -- The queue ----------------------------------------------------------------------------


def _lease_seconds() -> int:
    return settings.SUBMISSION_SMTP_TIMEOUT * 4 + 60


def _claim(message_pk: int) -> list[OutboundRecipient]:
    now = timezone.now()
    token = secrets.token_hex(16)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    due = OutboundRecipient.objects.filter(message_id=message_pk, state=OutboundRecipient.QUEUED, next_attempt__lte=now)
    claimed = due.filter(free).update(locked_until=now + timedelta(seconds=_lease_seconds()), lease=token)
    if not claimed:
        return []
    return list(OutboundRecipient.objects.filter(message_id=message_pk, lease=token).order_by("pk"))


def _backoff(attempts: int) -> timedelta:
    base = settings.SUBMISSION_RETRY_BASE
    return timedelta(seconds=min(base * (2 ** max(attempts - 1, 0)), settings.SUBMISSION_RETRY_MAX_INTERVAL))


def relay_message(message_pk: int) -> dict[str, int]:
    """Send the due recipients of one queued message; returns counts by new state."""
    recipients = _claim(message_pk)
    if not recipients:
        return {}
    try:
        message = OutboundMessage.objects.select_related("account").get(pk=message_pk)
        raw = blob_read(message.account, blob_id(message.blob_id))
        if raw is None:  # the queue's blob is pinned; losing it is a storage failure: retry
            outcomes = {r.address: Outcome(Reply(451, "4.3.0 The queued message is unreadable")) for r in recipients}
        else:
            outcomes = _deliver(message, recipients, raw)
    except Exception:
        # Nothing was handed on (sending itself reports failures as outcomes, not by
        # raising): give the recipients back at once instead of when the lease runs out.
        OutboundRecipient.objects.filter(pk__in=[r.pk for r in recipients], lease=recipients[0].lease).update(
            locked_until=None, lease=""
        )
        raise
    return _record_retrying(message, recipients, outcomes, raw)


def _record_retrying(
    message: OutboundMessage, recipients: list[OutboundRecipient], outcomes: dict[str, Outcome], raw: bytes | None
) -> dict[str, int]:
    # The mail has left: its outcome must be written even if the database is briefly
    # busy (SQLite answers "locked" instead of waiting in some set-ups).
    for attempt in range(6):
        try:
            return _record(message, recipients, outcomes, raw)
        except OperationalError:
            if attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _deliver(message: OutboundMessage, recipients: list[OutboundRecipient], raw: bytes) -> dict[str, Outcome]:
    local = [r for r in recipients if is_local(r.address)]
    remote = [r for r in recipients if r not in local]
    outcomes: dict[str, Outcome] = {}
    if local:
        replies = deliver_local(raw=raw, mail_from=message.mail_from, recipients=[r.address for r in local])
        outcomes.update({address: Outcome(reply) for address, reply in replies.items()})
        for r in local:
            r.is_local = True
    if remote:
        outcomes.update(_send_remote(message.mail_from, [(r.address, r.parameters) for r in remote], raw))
    return outcomes


_RECORDED = ("attempts", "smtp_reply", "locked_until", "lease", "updated", "state", "next_attempt", "is_local")


def _record(
    message: OutboundMessage, recipients: list[OutboundRecipient], outcomes: dict[str, Outcome], raw: bytes | None
) -> dict[str, int]:
    now = timezone.now()
    retry_until = message.created + timedelta(seconds=settings.SUBMISSION_RETRY_FOR)
    counts: dict[str, int] = defaultdict(int)
    failed: list[FailedRecipient] = []
    status_changes: dict[str, dict[str, Any]] = {}
    account = message.account
    with account_changes(account.pk) as changes:
        for recipient in recipients:
            outcome = outcomes.get(recipient.address) or Outcome(Reply(451, "4.3.0 No outcome recorded"))
            reply = outcome.reply
            recipient.attempts += 1
            recipient.smtp_reply = str(reply)
            recipient.locked_until = None
            recipient.lease = ""
            recipient.updated = now
            if reply.ok:
                recipient.state = OutboundRecipient.SENT
                delivered = "yes" if recipient.is_local else "unknown"
            elif reply.permanent or now >= retry_until:
                recipient.state = OutboundRecipient.FAILED
                delivered = "no"
                failed.append(FailedRecipient(recipient.address, str(reply), outcome.remote_mta))
            else:
                recipient.next_attempt = now + _backoff(recipient.attempts)
                delivered = "queued"
            counts[recipient.state] += 1
            status_changes[recipient.address] = {"smtpReply": str(reply), "delivered": delivered}
        for recipient in recipients:  # one plain UPDATE each: cheaper than bulk_update's CASEs
            OutboundRecipient.objects.filter(pk=recipient.pk).update(
                **{field: getattr(recipient, field) for field in _RECORDED}
            )
        unfinished = OutboundRecipient.objects.filter(message_id=message.pk, state=OutboundRecipient.QUEUED).exists()
        if not unfinished and message.finished is None:
            message.finished = now
            message.save(update_fields=["finished"])
            blob_unpin(account, blob_id(message.blob_id))
        submission = EmailSubmission.objects.select_for_update().filter(outbound_id=message.pk).first()
        if submission is not None:
            status = dict(submission.delivery_status or {})
            for address, change in status_changes.items():
                status[address] = {**status.get(address, {"displayed": "unknown"}), **change}
            submission.delivery_status = status
            if submission.undo_status == EmailSubmission.PENDING and (
                counts.get(OutboundRecipient.SENT) or not unfinished
            ):
                submission.undo_status = EmailSubmission.FINAL
            submission.save(update_fields=["delivery_status", "undo_status"])
            changes.record(SUBMISSION_TYPE, submission_id(submission.pk), Change.UPDATED)
        if failed and not message.is_report and message.mail_from and raw is not None:
            _send_dsn(message, raw, failed)
    return dict(counts)


def _send_dsn(message: OutboundMessage, raw: bytes, failed: list[FailedRecipient]) -> None:
    """RFC 3464 failure report into the sender's Inbox, linked to the submission."""
    from groupware.mail.services.emails import email_ingest

    dsn = build_dsn(to=message.mail_from, original=raw, arrival=message.created, failed=failed)
    inbox = Mailbox.objects.filter(account_id=message.account_id, role="inbox").values_list("pk", flat=True).first()
    if inbox is None:
        logger.warning("no Inbox for the DSN of outbound message %s", message.pk)
        return
    email_ingest(account=message.account, raw=dsn, mailbox_ids=[inbox], keywords={})
    submission_report_received(account=message.account, raw=dsn)


def due_message_pks(limit: int = 1000) -> list[int]:
    """Messages with a recipient whose (next) attempt is due and that no run holds."""
    now = timezone.now()
    rows = (
        OutboundRecipient.objects.filter(state=OutboundRecipient.QUEUED, next_attempt__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("next_attempt")
        .values_list("message_id", flat=True)[:limit]
    )
    return list(dict.fromkeys(rows))


def relay_due() -> dict[str, int]:
    """Run every due message in this process (tests, benchmarks, the embedded scheduler)."""
    totals: dict[str, int] = defaultdict(int)
    for pk in due_message_pks():
        for state, count in relay_message(pk).items():
            totals[state] += count
    return dict(totals)
