"""Django admin for users, domains, aliases, credentials and JMAP accounts.

Creating anything goes through accounts.services (a user gets their JMAP account, a
credential gets a generated secret shown once), and so do the changes a service adds
behaviour to: enabling or disabling a user and setting a password end the push
subscriptions and streams of the old credential (services.user_enable/user_disable/
user_set_password). Other changed attributes (names, flags) are saved as they are.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import password_validation
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.core.exceptions import ValidationError
from django.db.models import F, Func, Model, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from accounts import quotas, services
from accounts.admin_quotas import MIB, QuotaLimitActionForm, action_limit, usage_cell
from accounts.models import Account, AccountGrant, Alias, ApiToken, AppPassword, Domain, Quota, User

# --- Shared helpers ------------------------------------------------------------------------


class CreatedByServiceAdmin(admin.ModelAdmin):
    """An admin whose add form creates the object through a service.

    ``create()`` returns the saved object; it is what the admin then logs and links to.
    """

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Model:
        raise NotImplementedError

    def save_form(self, request: HttpRequest, form: forms.ModelForm, change: bool) -> Any:
        if change:
            return super().save_form(request, form, change)
        return self.create(request, form)

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)


def show_secret_once(request: HttpRequest, what: str, owner: User, plaintext: str) -> None:
    messages.warning(
        request,
        format_html(
            "{} for {}: <code>{}</code> — copy it now, it is not stored and will not be shown again.",
            what,
            owner,
            plaintext,
        ),
    )


class CredentialStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        choices = [("active", "Active"), ("revoked", "Revoked")]
        if model_admin.model is ApiToken:
            choices.insert(1, ("expired", "Expired"))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        expiring = queryset.model is ApiToken
        if self.value() == "active":
            queryset = queryset.filter(revoked__isnull=True)
            if expiring:
                queryset = queryset.exclude(expires__lte=now)
        elif self.value() == "expired":
            queryset = queryset.filter(revoked__isnull=True, expires__lte=now)
        elif self.value() == "revoked":
            queryset = queryset.filter(revoked__isnull=False)
        return queryset


# --- Users ---------------------------------------------------------------------------------


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class UserAddForm(forms.ModelForm):
    """Creates the user with ``user_create``, so they get their JMAP account."""

    password1 = forms.CharField(
        label="Password",
        strip=False,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave both empty for a user who signs in only with app passwords or tokens.",
    )
    password2 = forms.CharField(
        label="Password confirmation",
        strip=False,
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    storage_quota_mib = forms.IntegerField(
        label="Storage quota (MiB)",
        required=False,
        min_value=0,
        help_text="Leave empty for no account quota (domain and server quotas still apply).",
    )

    class Meta:
        model = User
        fields = ("email", "name", "is_staff", "is_superuser")

    def clean_password2(self) -> str:
        password1 = self.cleaned_data.get("password1") or ""
        password2 = self.cleaned_data.get("password2") or ""
        if password1 != password2:
            raise ValidationError("The two password fields did not match.", code="password_mismatch")
        return password2

    def _post_clean(self) -> None:
        super()._post_clean()
        password = self.cleaned_data.get("password2")
        if password:
            try:
                password_validation.validate_password(password, self.instance)
            except ValidationError as error:
                self.add_error("password2", error)

    def save(self, commit: bool = True) -> User:
        # A user can't exist without their account, so this saves whatever ``commit`` says.
        data = self.cleaned_data
        self.instance = services.user_create(
            email=data["email"],
            password=data.get("password2") or None,
            name=data.get("name", ""),
            is_staff=data.get("is_staff", False),
            is_superuser=data.get("is_superuser", False),
        )
        if data.get("storage_quota_mib") is not None:
            set_storage_quota(self.instance, data["storage_quota_mib"])
        return self.instance

    def save_m2m(self) -> None:
        pass  # no many-to-many fields on this form


def set_storage_quota(user: User, mib: int) -> Quota | None:
    account = services.primary_account(user)
    if account is None:
        return None
    return quotas.quota_set(scope="account", account=account, resource_type="octets", hard_limit=mib * MIB)


def _personal(field: str) -> Subquery:
    account = Account.objects.filter(owner=OuterRef("pk"), is_personal=True).order_by("pk")
    return Subquery(account.values(field)[:1])


class UserPasswordForm(AdminPasswordChangeForm):
    """The admin's password page, through services.user_set_password."""

    def save(self, commit: bool = True) -> Any:
        usable = self.cleaned_data.get("set_usable_password", True)
        services.user_set_password(user=self.user, password=self.cleaned_data["password1"] if usable else None)
        return self.user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserAddForm
    change_password_form = UserPasswordForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
        ("JMAP", {"fields": ("session_generation", "storage", "messages")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "name",
                    "password1",
                    "password2",
                    "storage_quota_mib",
                    "is_staff",
                    "is_superuser",
                ),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined", "session_generation", "storage", "messages")
    list_display = ("email", "name", "is_active", "is_staff", "storage", "messages", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    search_fields = ("email", "name")
    ordering = ("email",)
    action_form = QuotaLimitActionForm
    actions = ("disable_users", "enable_users", "set_storage_quota", "remove_storage_quota")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # Usage and account quotas in the same query as the users (no query per row).
        limits = Quota.objects.filter(scope="account", account__owner=OuterRef("pk"), account__is_personal=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                used_octets=_personal("used_octets"),
                used_count=_personal("used_count"),
                storage_limit=Subquery(limits.filter(resource_type="octets").values("hard_limit")[:1]),
                count_limit=Subquery(limits.filter(resource_type="count").values("hard_limit")[:1]),
            )
        )

    @admin.display(description="storage", ordering="used_octets")
    def storage(self, obj: User) -> str:
        return usage_cell(getattr(obj, "used_octets", None), getattr(obj, "storage_limit", None), "octets")

    @admin.display(description="messages", ordering="used_count")
    def messages(self, obj: User) -> str:
        return usage_cell(getattr(obj, "used_count", None), getattr(obj, "count_limit", None), "count")

    def save_form(self, request: HttpRequest, form: forms.ModelForm, change: bool) -> Any:
        if change:
            return super().save_form(request, form, change)
        return form.save()

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:  # when adding, UserAddForm.save() has created the user already
            with quotas.quota_visibility_tracked(obj):
                super().save_model(request, obj, form, change)
            if "is_active" in form.changed_data:
                (services.user_enable if obj.is_active else services.user_disable)(user=obj)

    @admin.action(description="Disable selected users", permissions=["change"])
    def disable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_disable(user=user)
            self.log_change(request, user, "Disabled.")
        self.message_user(request, f"Disabled {len(queryset)} user(s).")

    @admin.action(description="Enable selected users", permissions=["change"])
    def enable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.user_enable(user=user)
            self.log_change(request, user, "Enabled.")
        self.message_user(request, f"Enabled {len(queryset)} user(s).")

    @admin.action(description="Set storage quota of selected users (MiB)", permissions=["change"])
    def set_storage_quota(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        mib = action_limit(request)
        if mib is None:
            self.message_user(request, "Type the quota in MiB next to the action.", messages.ERROR)
            return
        for user in queryset:
            set_storage_quota(user, mib)
            self.log_change(request, user, f"Set the storage quota to {mib} MiB.")
        self.message_user(request, f"Set the storage quota of {len(queryset)} user(s) to {mib} MiB.")

    @admin.action(description="Remove storage quota of selected users", permissions=["change"])
    def remove_storage_quota(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for quota in Quota.objects.filter(scope="account", resource_type="octets", account__owner__in=queryset):
            quotas.quota_delete(quota=quota)
        for user in queryset:
            self.log_change(request, user, "Removed the storage quota.")
        self.message_user(request, f"Removed the storage quota of {len(queryset)} user(s).")


# --- Domains and aliases -------------------------------------------------------------------


class DomainForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ("name", "is_active")

    def clean_name(self) -> str:
        try:
            return services.domain_check(self.cleaned_data["name"])
        except ValidationError as error:
            raise ValidationError(error.message_dict.get("name", error.messages))


@admin.register(Domain)
class DomainAdmin(CreatedByServiceAdmin):
    form = DomainForm
    list_display = ("name", "is_active", "users", "storage", "dkim", "created")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Domain]:
        members = User.objects.filter(email__iendswith=Concat(Value("@"), OuterRef("name"))).order_by()
        limits = Quota.objects.filter(scope="domain", resource_type="octets", domain=OuterRef("pk"))
        queryset = super().get_queryset(request)
        if hasattr(Domain, "dkim_key"):  # the sending app (groupware.mail.submission) adds DKIM keys
            queryset = queryset.select_related("dkim_key")
        return queryset.annotate(
            user_count=Subquery(members.values(n=Func(F("pk"), function="COUNT"))[:1]),
            used_octets=quotas.domain_usage("used_octets"),
            storage_limit=Subquery(limits.values("hard_limit")[:1]),
        )

    @admin.display(description="users", ordering="user_count")
    def users(self, obj: Domain) -> int:
        return getattr(obj, "user_count", 0) or 0

    @admin.display(description="storage", ordering="used_octets")
    def storage(self, obj: Domain) -> str:
        return usage_cell(getattr(obj, "used_octets", None), getattr(obj, "storage_limit", None), "octets")

    @admin.display(description="DKIM")
    def dkim(self, obj: Domain) -> str:
        """Whether outgoing mail of the domain is signed: the key's selector, or "no key"
        (the DNS record to publish is on the DKIM key's page)."""
        key = getattr(obj, "dkim_key", None) if hasattr(Domain, "dkim_key") else None
        return f"signing ({key.selector})" if key is not None else "no key"

    list_filter = ("is_active",)
    search_fields = ("name",)

    def get_readonly_fields(self, request: HttpRequest, obj: Domain | None = None) -> tuple[str, ...]:
        # Renaming would silently move every alias of the domain; add a new one instead.
        return ("name", "created") if obj is not None else ()

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Domain:
        return services.domain_create(name=form.cleaned_data["name"], is_active=form.cleaned_data["is_active"])


class AliasAddForm(forms.ModelForm):
    class Meta:
        model = Alias
        fields = ("address", "user")

    def clean_address(self) -> str:
        try:
            return services.alias_normalize(self.cleaned_data["address"])
        except ValidationError as error:
            raise ValidationError(error.message_dict.get("address", error.messages))


class CatchAllFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("catchall", "Catch-all (@domain)"), ("address", "Single address")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "catchall":
            return queryset.filter(address__startswith="@")
        if self.value() == "address":
            return queryset.exclude(address__startswith="@")
        return queryset


@admin.register(Alias)
class AliasAdmin(CreatedByServiceAdmin):
    list_display = ("address", "user", "created")
    list_filter = (CatchAllFilter,)
    list_select_related = ("user",)
    search_fields = ("address", "user__email")
    autocomplete_fields = ("user",)

    def get_form(self, request: HttpRequest, obj: Alias | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = AliasAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Alias | None = None) -> tuple[str, ...]:
        # The address was checked against the domains when created; only the target may change.
        return ("address", "created") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Alias | None = None) -> tuple[str, ...]:
        return ("address", "user", "created") if obj is not None else ("address", "user")

    def create(self, request: HttpRequest, form: forms.ModelForm) -> Alias:
        return services.alias_create(user=form.cleaned_data["user"], address=form.cleaned_data["address"])


# --- Credentials ---------------------------------------------------------------------------


@admin.register(AppPassword)
class AppPasswordAdmin(CreatedByServiceAdmin):
    list_display = ("name", "user", "created", "last_used", "revoked")
    list_filter = (CredentialStatusFilter,)
    list_select_related = ("user",)
    search_fields = ("name", "user__email")
    autocomplete_fields = ("user",)
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: AppPassword | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name")
        return ("user", "name", "created", "last_used", "revoked")

    def get_readonly_fields(self, request: HttpRequest, obj: AppPassword | None = None) -> tuple[str, ...]:
        return ("user", "created", "last_used", "revoked") if obj is not None else ()

    def create(self, request: HttpRequest, form: forms.ModelForm) -> AppPassword:
        app_password, plaintext = services.app_password_create(
            user=form.cleaned_data["user"], name=form.cleaned_data["name"]
        )
        show_secret_once(request, "App password", app_password.user, plaintext)
        return app_password

    @admin.action(description="Revoke selected app passwords", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AppPassword]) -> None:
        for app_password in queryset:
            services.app_password_revoke(app_password=app_password)
        self.message_user(request, f"Revoked {len(queryset)} app password(s).")


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "expires")

    def clean_expires(self) -> Any:
        expires = self.cleaned_data.get("expires")
        if expires is not None and expires <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires


@admin.register(ApiToken)
class ApiTokenAdmin(CreatedByServiceAdmin):
    list_display = ("name", "user", "prefix", "created", "expires", "last_used", "revoked")
    list_filter = (CredentialStatusFilter,)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__email")
    autocomplete_fields = ("user",)
    actions = ("revoke",)

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name", "expires")
        return ("user", "name", "prefix", "created", "expires", "last_used", "revoked")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        # The expiry is part of what was granted; to change it, issue a new token.
        return ("user", "prefix", "created", "expires", "last_used", "revoked") if obj is not None else ()

    def create(self, request: HttpRequest, form: forms.ModelForm) -> ApiToken:
        token, plaintext = services.api_token_create(
            user=form.cleaned_data["user"], name=form.cleaned_data["name"], expires=form.cleaned_data["expires"]
        )
        show_secret_once(request, "API token", token.user, plaintext)
        return token

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.api_token_revoke(api_token=token)
        self.message_user(request, f"Revoked {len(queryset)} token(s).")


# --- JMAP accounts -------------------------------------------------------------------------


class AccountGrantInline(admin.TabularInline):
    model = AccountGrant
    extra = 0
    fields = ("user", "may_write", "created")
    readonly_fields = ("created",)
    autocomplete_fields = ("user",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    inlines = (AccountGrantInline,)
    list_display = ("name", "jmap_id", "owner", "is_personal", "modseq", "created")
    list_filter = ("is_personal",)
    list_select_related = ("owner",)
    search_fields = ("name", "owner__email")
    # modseq is the change counter every write bumps (groupware.core.changes); editing it
    # by hand would break every client's sync.
    readonly_fields = ("owner", "is_personal", "jmap_id", "modseq", "purged_modseq", "created")
    fields = ("name", "owner", "is_personal", "jmap_id", "modseq", "purged_modseq", "created")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A personal account is created with its user (services.user_create), which also
        # runs the data types' provisioners.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # Deleting an account deletes its data; delete the user instead.
        return False

    @admin.display(description="JMAP id")
    def jmap_id(self, obj: Account) -> str:
        return obj.jmap_id

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # Grants change what a user's session shows: go through the services, which bump
        # the user's session state.
        if formset.model is not AccountGrant:
            return super().save_formset(request, form, formset, change)
        for grant in formset.save(commit=False):
            services.account_grant(account=form.instance, user=grant.user, may_write=grant.may_write)
        for grant in formset.deleted_objects:
            services.account_revoke(account=grant.account, user=grant.user)
        return None
