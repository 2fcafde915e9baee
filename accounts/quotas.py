"""Quotas (RFC 9425): limits on stored data, their usage, and enforcement.

Usage. Each account keeps two counters, ``Account.used_octets`` and ``used_count`` (the
size and number of its Emails). Whoever stores or removes data calls ``quota_charge``
inside the ``account_changes`` transaction that makes the change: it checks the limits
(the account row is locked, so an account-scope check is exact), and adds the delta to
the transaction's ChangeSet, which writes it in the same UPDATE that moves the account's
modseq. Nothing is recounted per request; ``manage.py quota_recompute`` rebuilds the
counters from the data (``USAGE_SOURCES``).

Scopes (RFC 9425 §3). An account-scope quota limits one account; a domain-scope quota
the sum over the accounts whose owner's address is in the domain; a global quota the sum
over every account. Every quota that applies is enforced for every account. Domain and
global quotas reveal other users' usage, so (RFC 9425 §6) they are shown through JMAP
only in the accounts of staff users.

Delivery. ``quota_check`` is the check without a transaction (an LMTP server calls it
before accepting the data); ``OverQuota.smtp_reply()`` is the reply to give: 452 4.2.2
(temporary, the sender retries) while the message would fit once mail is deleted, 552
5.2.2 (permanent, the sender bounces) when it is larger than the limit itself. Delivery
through ``email_ingest`` raises the same ``OverQuota``: map it the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat

from accounts.models import Account, Domain, Quota, User
from groupware.core import sql
from groupware.core.changes import QUOTAS_EXIST, Change, ChangeSet, account_changes

QUOTA_TYPE = "Quota"
QUOTA_ID_PREFIX = "q"
# The data types whose objects the usage counters count (RFC 9425 ``types``).
COUNTED_TYPES = ("Email",)

ACCOUNT, DOMAIN, GLOBAL = Quota.Scope.ACCOUNT, Quota.Scope.DOMAIN, Quota.Scope.GLOBAL
OCTETS = Quota.ResourceType.OCTETS

# Functions returning an account's real (octets, count), summed by quota_recompute;
# each data type that counts towards quotas registers one (groupware.mail: Emails).
USAGE_SOURCES: list[Callable[[Account], tuple[int, int]]] = []


class OverQuota(Exception):
    """Storing this would exceed a quota's hard limit (JMAP SetError ``overQuota``)."""

    def __init__(self, quota: Quota, used: int, wanted: int) -> None:
        label = quota.name or f"{quota.scope} quota"
        unit = quantity(quota.hard_limit, quota.resource_type)
        super().__init__(f"Over quota: {label} allows {unit}; {used} used, and this needs {wanted} more.")
        self.quota = quota
        self.used = used
        self.wanted = wanted

    @property
    def permanent(self) -> bool:
        """True when the data could never fit, even in an empty quota."""
        return self.wanted > self.quota.hard_limit

    def smtp_reply(self) -> tuple[int, str]:
        """The LMTP/SMTP reply for a message refused by this error (RFC 5321, RFC 3463 X.2.2)."""
        if self.permanent:
            return 552, "5.2.2 Message is larger than the mailbox quota"
        return 452, "4.2.2 Mailbox is over quota, try again later"


def quantity(value: int, resource_type: str) -> str:
    """ "1000 octets", "1 message", "5 messages"."""
    if resource_type == OCTETS:
        return f"{value} octets"
    return f"{value} message" if value == 1 else f"{value} messages"


# -- Selectors --------------------------------------------------------------------------


def _sum(field: str, condition: Q) -> Coalesce:
    # SUM as a plain function: one row, no GROUP BY, usable as a correlated subquery.
    total = Account.objects.filter(condition).order_by().values(total=Func(F(field), function="SUM"))
    return Coalesce(Subquery(total[:1], output_field=BigIntegerField()), Value(0), output_field=BigIntegerField())


def in_domain(outer_name: str) -> Q:
    """Accounts whose owner's address is in the domain named by the outer query's field."""
    return Q(owner__email__iendswith=Concat(Value("@"), OuterRef(outer_name)))


def domain_usage(field: str, outer_name: str = "name") -> Coalesce:
    """The sum of ``field`` (used_octets, used_count) over a domain's accounts, as a
    subquery of a query over domains (or over rows naming one in ``outer_name``)."""
    return _sum(field, in_domain(outer_name))


_IN_DOMAIN = in_domain("domain__name")


def with_usage(quotas: QuerySet[Quota]) -> QuerySet[Quota]:
    """Annotate ``used``: the account's counter, or the sum over the accounts in scope."""
    used = Case(
        When(scope=ACCOUNT, resource_type=OCTETS, then=F("account__used_octets")),
        When(scope=ACCOUNT, then=F("account__used_count")),
        When(scope=DOMAIN, resource_type=OCTETS, then=_sum("used_octets", _IN_DOMAIN)),
        When(scope=DOMAIN, then=_sum("used_count", _IN_DOMAIN)),
        When(resource_type=OCTETS, then=_sum("used_octets", Q())),
        default=_sum("used_count", Q()),
        output_field=BigIntegerField(),
    )
    return quotas.annotate(used=used)


def quotas_of(account: Account, *, visible: bool = False) -> QuerySet[Quota]:
    """The quotas that apply to an account, with ``used`` (one query).

    ``visible``: only those its owner may see through JMAP (domain and global quotas only
    for staff owners, RFC 9425 §6).
    """
    owner = User.objects.filter(pk=account.owner_id)
    in_owner_domain = Exists(owner.filter(email__iendswith=Concat(Value("@"), OuterRef("domain__name"))))
    shared = Q(scope=GLOBAL) | (Q(scope=DOMAIN) & in_owner_domain)
    if visible:
        shared &= Exists(owner.filter(is_staff=True))
    return with_usage(Quota.objects.filter(Q(account_id=account.pk) | shared))


def accounts_in_scope(quota: Quota) -> QuerySet[Account]:
    if quota.scope == ACCOUNT:
        return Account.objects.filter(pk=quota.account_id)
    if quota.scope == DOMAIN:
        return Account.objects.filter(owner__email__iendswith="@" + quota.domain.name)
    return Account.objects.all()


# -- Enforcement --------------------------------------------------------------------------


def _applicable(account: Account, resource_type: str | None = None) -> list[Quota]:
    """``quotas_of(account)`` as a list (of one resource type if given). On the hot paths
    (every upload, every stored message): when no quota of the type exists at all, one
    trivial query skips building and running the usage query."""
    if resource_type is None:
        exists = sql.row("SELECT 1 FROM accounts_quota LIMIT 1")
    else:
        exists = sql.row("SELECT 1 FROM accounts_quota WHERE resource_type = %s LIMIT 1", [resource_type])
    if not exists:  # plain SQL (groupware.core.sql): the ORM would cost more than the query
        return []
    applicable = quotas_of(account).select_related("domain")
    if resource_type is not None:
        applicable = applicable.filter(resource_type=resource_type)
    return list(applicable)


def _check(quotas: Iterable[Quota], *, octets: int, count: int, pending_octets: int, pending_count: int) -> None:
    for quota in quotas:
        wanted, pending = (octets, pending_octets) if quota.resource_type == OCTETS else (count, pending_count)
        if wanted <= 0:
            continue
        used = quota.used + pending
        # RFC 9425 §4: objects may not be created once the hard limit is reached.
        if used + wanted > quota.hard_limit:
            raise OverQuota(quota, used, wanted)


def quota_charge(*, changes: ChangeSet, octets: int, count: int) -> None:
    """Count data the account of ``changes`` gains (negative: frees), checking the limits.

    Raises OverQuota (nothing counted) when a positive amount would exceed a hard limit.
    Call it inside the ``account_changes`` transaction that stores the data, so the count
    commits or rolls back with it; the quotas' changes are recorded there too (push).
    """
    quotas: list[Quota] | None = changes.memo.get("quotas")  # type: ignore[assignment]
    if quotas is None:
        # Loaded once per transaction. ``used`` as loaded excludes this transaction's own
        # usage (it is written at commit), which the checks add from the ChangeSet.
        quotas = _applicable(changes.account) if changes.memo.get(QUOTAS_EXIST, True) else []
        changes.memo["quotas"] = quotas
    if octets > 0 or count > 0:
        _check(
            quotas,
            octets=octets,
            count=count,
            pending_octets=changes.usage_octets,
            pending_count=changes.usage_count,
        )
    if not (octets or count):
        return
    changes.add_usage(octets=octets, count=count)
    shown = [quota for quota in quotas if quota.scope == ACCOUNT]
    if len(shown) != len(quotas) and _owner_is_staff(changes):
        shown = quotas
    for quota in shown:
        changes.record(QUOTA_TYPE, quota_object_id(quota.pk), Change.UPDATED)


def _owner_is_staff(changes: ChangeSet) -> bool:
    staff = changes.memo.get("owner_is_staff")
    if staff is None:
        staff = User.objects.filter(pk=changes.account.owner_id, is_staff=True).exists()
        changes.memo["owner_is_staff"] = staff
    return bool(staff)


def quota_check(*, account: Account, octets: int, count: int = 1) -> None:
    """Raise OverQuota if the account could not store this much more now.

    For callers outside a write transaction: uploads (whose blobs count once an object
    references them) and delivery before it accepts a message. Not a reservation: the
    write itself charges (and checks again) through ``quota_charge``.
    """
    _check(_applicable(account), octets=octets, count=count, pending_octets=0, pending_count=0)


def quota_room(*, account: Account) -> int | None:
    """The octets the account may still store (None: no octets quota applies)."""
    rooms = [quota.hard_limit - quota.used for quota in _applicable(account, OCTETS)]
    return max(min(rooms), 0) if rooms else None


def over_quota_for(*, account: Account, octets: int) -> OverQuota:
    """The OverQuota error for data of this size that did not fit (for upload limits)."""
    quotas = _applicable(account, OCTETS)
    tightest = min(quotas, key=lambda quota: quota.hard_limit - quota.used)
    return OverQuota(tightest, tightest.used, octets)


# -- Services ---------------------------------------------------------------------------


# The fields an administrator sets (the admin form, the provisioning API).
QUOTA_FIELDS = (
    "scope",
    "account",
    "domain",
    "resource_type",
    "hard_limit",
    "warn_limit",
    "soft_limit",
    "name",
    "description",
)


def limit_errors(hard: int | None, warn: int | None, soft: int | None) -> dict[str, str]:
    """Limits out of order (RFC 9425 §4.1: warn <= soft <= hard), by field."""
    errors: dict[str, str] = {}
    if hard is None:
        return errors
    if soft is not None and soft > hard:
        errors["soft_limit"] = "The soft limit must not be above the hard limit."
    if warn is not None and (warn > hard or (soft is not None and warn > soft)):
        errors["warn_limit"] = "The warn limit must not be above the soft or the hard limit."
    return errors


def _validate(quota: Quota) -> None:
    errors = limit_errors(quota.hard_limit, quota.warn_limit, quota.soft_limit)
    if errors:
        raise ValidationError(errors)
    quota.full_clean()


def _default_name(quota: Quota) -> str:
    what = "storage" if quota.resource_type == OCTETS else "messages"
    if quota.scope == ACCOUNT:
        return f"{quota.account.name} {what}"
    if quota.scope == DOMAIN:
        return f"{quota.domain.name} {what}"
    return f"server {what}"


def quota_set(
    *,
    scope: str,
    resource_type: str,
    hard_limit: int,
    account: Account | None = None,
    domain: Domain | None = None,
    warn_limit: int | None = None,
    soft_limit: int | None = None,
    name: str = "",
    description: str = "",
) -> Quota:
    """Create the quota of this scope, target and resource type, or change its limits.

    Raises ValidationError for limits out of order or a scope without its target.
    """
    if scope not in Quota.Scope.values or resource_type not in Quota.ResourceType.values:
        raise ValidationError("Unknown scope or resource type.")
    target = {"account": account if scope == ACCOUNT else None, "domain": domain if scope == DOMAIN else None}
    with transaction.atomic():
        quota = (
            Quota.objects.select_for_update()
            .filter(scope=scope, resource_type=resource_type, account=target["account"], domain=target["domain"])
            .first()
        )
        created = quota is None
        if quota is None:
            quota = Quota(scope=scope, resource_type=resource_type, **target)
        quota.hard_limit, quota.warn_limit, quota.soft_limit = hard_limit, warn_limit, soft_limit
        quota.description = description
        quota.name = name.strip() or quota.name or ""
        if (scope == ACCOUNT and account is None) or (scope == DOMAIN and domain is None):
            raise ValidationError({"scope": f"A {scope} quota needs its {scope}."})
        if not quota.name:
            quota.name = _default_name(quota)
        _validate(quota)
        quota.save()
        _record_for_accounts(quota, Change.CREATED if created else Change.UPDATED)
    return quota


def quota_update(*, quota: Quota, **fields: object) -> Quota:
    """Change a quota's limits, name or description (not its scope or target)."""
    allowed = {"hard_limit", "warn_limit", "soft_limit", "name", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Can't change {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        for key, value in fields.items():
            setattr(quota, key, value)
        if not quota.name:
            quota.name = _default_name(quota)
        _validate(quota)
        quota.save()
        _record_for_accounts(quota, Change.UPDATED)
    return quota


def quota_delete(*, quota: Quota) -> None:
    with transaction.atomic():
        _record_for_accounts(quota, Change.DESTROYED)
        quota.delete()


def _record_for_accounts(quota: Quota, change: Change) -> None:
    """Record the change in every account that shows the quota (their Quota state moves)."""
    accounts = accounts_in_scope(quota)
    if quota.scope != ACCOUNT:
        accounts = accounts.filter(owner__is_staff=True)
    object_id = quota_object_id(quota.pk)
    for account_pk in accounts.order_by("pk").values_list("pk", flat=True):
        with account_changes(account_pk) as changes:
            modseq = changes.record(QUOTA_TYPE, object_id, change)
        if quota.scope == ACCOUNT and change is not Change.DESTROYED:
            Quota.objects.filter(pk=quota.pk).update(props_modseq=modseq)
            quota.props_modseq = modseq


@contextmanager
def quota_visibility_tracked(user: User) -> Iterator[None]:
    """Around a change to a user that can change which quotas its accounts show through
    JMAP (its staff flag: domain and global quotas are shown to staff owners only; its
    address: which domain's quotas apply). A quota that appears is recorded created in
    the account and one that goes destroyed, so Quota/changes tells the clients. ``user``
    holds the values about to be saved; when neither of the two differs from the stored
    row, nothing more is read."""
    stored = User.objects.filter(pk=user.pk).values_list("is_staff", "email").first()
    if stored == (user.is_staff, user.email):
        yield
        return
    with transaction.atomic():
        before = _visible_quotas(user.pk)
        yield
        after = _visible_quotas(user.pk)
        for account_pk in sorted(before.keys() | after.keys()):
            shown, hidden = after.get(account_pk, set()), before.get(account_pk, set())
            if shown == hidden:
                continue
            with account_changes(account_pk) as changes:
                for pk in sorted(shown - hidden):
                    changes.record(QUOTA_TYPE, quota_object_id(pk), Change.CREATED)
                for pk in sorted(hidden - shown):
                    changes.record(QUOTA_TYPE, quota_object_id(pk), Change.DESTROYED)


def _visible_quotas(user_pk: int) -> dict[int, set[int]]:
    """The quotas each account the user owns shows it through JMAP (pks)."""
    return {
        account.pk: set(quotas_of(account, visible=True).values_list("pk", flat=True))
        for account in Account.objects.filter(owner_id=user_pk).only("pk", "owner_id")
    }


def quota_recompute(*, account: Account) -> tuple[int, int]:
    """Set the account's usage counters from its data; return (octets, count)."""
    with account_changes(account.pk) as changes:
        octets = count = 0
        for source in USAGE_SOURCES:
            source_octets, source_count = source(account)
            octets += source_octets
            count += source_count
        locked = changes.account
        delta_octets, delta_count = octets - locked.used_octets, count - locked.used_count
        if delta_octets or delta_count:
            changes.add_usage(octets=delta_octets, count=delta_count)
            for quota in quotas_of(locked, visible=True):
                changes.record(QUOTA_TYPE, quota_object_id(quota.pk), Change.UPDATED)
    return octets, count


def quota_object_id(pk: int) -> str:
    from groupware.core.ids import encode

    return encode(QUOTA_ID_PREFIX, pk)


def usage_percent(used: int, limit: int) -> float:
    return 100.0 if limit == 0 else round(used * 100.0 / limit, 1)
