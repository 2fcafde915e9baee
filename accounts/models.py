"""Users, domains, aliases, credentials and JMAP accounts."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        # Accounts are provisioned through accounts.services.user_create; this exists for
        # Django's own tooling (createsuperuser, tests of the admin).
        from accounts.services import user_create

        return user_create(email=email, password=password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in; the login is their email address."""

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # Bumped whenever what the session resource shows for this user changes (accounts,
    # their names or rights); the session "state" string is derived from it.
    session_generation = models.PositiveIntegerField(default=1)
    # Not stored: the accounts.credentials.Credential that authenticated this request's
    # user (set by accounts.auth), None for a user loaded any other way.
    credential = None

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            # Logins match the email case-insensitively (``email__iexact``), so two users
            # differing only in case would make a login ambiguous. Upper() is the same
            # expression Django's iexact uses on PostgreSQL, so this unique index also serves
            # the login lookup instead of a sequential scan.
            models.UniqueConstraint(
                Upper("email"),
                name="accounts_user_email_ci_unique",
                violation_error_message="A user with this email address already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class Domain(models.Model):
    name = models.CharField(max_length=253, unique=True)
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alias(models.Model):
    """Another address delivering to a user (``local@domain``; ``@domain`` is a catch-all)."""

    address = models.CharField(max_length=320, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="aliases")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.address


class AppPassword(models.Model):
    """A generated password for one client; only its SHA-256 digest is stored.

    App passwords are long random strings made by the server, so a fast digest is safe
    (no dictionary to attack) and lets Basic auth find them with one indexed lookup.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "name"]

    def __str__(self) -> str:
        return f"{self.user} / {self.name}"


class ApiToken(models.Model):
    """A bearer token for the API; looked up by its SHA-256 digest."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise a token")
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "name"]

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.prefix}…)"


class Account(models.Model):
    """A JMAP account (RFC 8620 §1.6.2): a collection of data a user can access.

    ``modseq`` is the account's modification sequence: every change to any object in the
    account takes the next value, in the same transaction as the change itself.
    """

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="jmap_accounts")
    name = models.CharField(max_length=255)
    is_personal = models.BooleanField(default=True)
    modseq = models.BigIntegerField(default=0)
    # Changes at or below this modseq may have been purged: older states can't be synced.
    purged_modseq = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    # Quota usage (accounts.quotas, RFC 9425): octets and number of the account's Emails,
    # moved in the same transaction as the data (groupware.core.changes.ChangeSet.add_usage),
    # never counted per request; ``manage.py quota_recompute`` rebuilds them.
    used_octets = models.BigIntegerField(default=0)
    used_count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def jmap_id(self) -> str:
        from groupware.core.ids import account_id

        return account_id(self.pk)


class AccountGrant(models.Model):
    """Access to someone else's account (the sharing issue builds its rights model on this).

    A user sees an account they own or one granted to them; ``may_write`` false makes it
    read-only (RFC 8620 §2 ``isReadOnly``; writes answer accountReadOnly).
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_grants")
    may_write = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="account_grant_unique")]

    def __str__(self) -> str:
        return f"{self.user} → {self.account}"


class Quota(models.Model):
    """A limit on stored data (RFC 9425): for one account, all accounts of a domain, or all.

    ``used`` is not stored here: it is the account's counter (``Account.used_*``) or the
    sum of the counters of the accounts in scope (accounts.quotas.with_usage).
    """

    class Scope(models.TextChoices):
        ACCOUNT = "account", "account"
        DOMAIN = "domain", "domain"
        GLOBAL = "global", "global (whole server)"

    class ResourceType(models.TextChoices):
        OCTETS = "octets", "octets (storage size)"
        COUNT = "count", "count (number of messages)"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ACCOUNT)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    resource_type = models.CharField(max_length=10, choices=ResourceType.choices, default=ResourceType.OCTETS)
    hard_limit = models.PositiveBigIntegerField(help_text="Octets or messages; nothing more is stored beyond it.")
    warn_limit = models.PositiveBigIntegerField(null=True, blank=True)
    soft_limit = models.PositiveBigIntegerField(null=True, blank=True)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    # Account scope: the account modseq of the last change to anything but ``used``
    # (Quota/changes' updatedProperties, RFC 9425 §4.2).
    props_modseq = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["scope", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="account", account__isnull=False, domain__isnull=True)
                    | models.Q(scope="domain", account__isnull=True, domain__isnull=False)
                    | models.Q(scope="global", account__isnull=True, domain__isnull=True)
                ),
                name="quota_scope_target",
            ),
            models.UniqueConstraint(
                fields=["account", "resource_type"], condition=models.Q(scope="account"), name="quota_account_unique"
            ),
            models.UniqueConstraint(
                fields=["domain", "resource_type"], condition=models.Q(scope="domain"), name="quota_domain_unique"
            ),
            models.UniqueConstraint(
                fields=["resource_type"], condition=models.Q(scope="global"), name="quota_global_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.scope} {self.resource_type}"
