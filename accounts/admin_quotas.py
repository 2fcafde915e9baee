"""Django admin for quotas, and the usage columns and quota actions of the user and domain
admins (accounts/admin.py). Every write goes through accounts.quotas, so the JMAP Quota
state of the accounts concerned moves and their clients are told (push)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from accounts import quotas
from accounts.models import Quota
from accounts.quotas import OCTETS

MIB = 1024 * 1024


class QuotaLimitActionForm(ActionForm):
    """The action bar's extra field, for the "set quota" bulk actions."""

    limit = forms.IntegerField(
        required=False,
        min_value=0,
        label="Limit",
        help_text="MiB for storage, a number of messages for counts",
        widget=forms.NumberInput(attrs={"placeholder": "limit (MiB / messages)", "style": "width: 12em"}),
    )


def action_limit(request: HttpRequest) -> int | None:
    """The limit typed next to the action, or None (and an error shown) if missing."""
    field = QuotaLimitActionForm.base_fields["limit"]
    try:
        return field.clean(request.POST.get("limit", ""))
    except forms.ValidationError:
        return None


def amount(value: int | None, resource_type: str) -> str:
    if value is None:
        return "—"
    return filesizeformat(value) if resource_type == OCTETS else quotas.quantity(value, resource_type)


def usage_cell(used: int | None, limit: int | None, resource_type: str = OCTETS) -> str:
    """ "12.0 MB of 100.0 MB (12 %)", highlighted from 90 % on; just the usage without a limit."""
    used = used or 0
    if limit is None:
        return amount(used, resource_type)
    percent = quotas.usage_percent(used, limit)
    style = "color: #ba2121; font-weight: bold" if percent >= 90 else ""
    return format_html(
        '{} of {} <span style="{}">({}&nbsp;%)</span>',
        amount(used, resource_type),
        amount(limit, resource_type),
        style,
        percent,
    )


class UsageFilter(admin.SimpleListFilter):
    title = "usage"
    parameter_name = "usage"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("full", "At the hard limit"), ("high", "90 % or more"), ("warn", "Past the warn limit")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "full":
            return queryset.filter(used__gte=F("hard_limit"))
        if self.value() == "high":
            return queryset.filter(used__gte=F("hard_limit") * 9 / 10)
        if self.value() == "warn":
            return queryset.filter(warn_limit__isnull=False, used__gte=F("warn_limit"))
        return queryset


class QuotaForm(forms.ModelForm):
    class Meta:
        model = Quota
        fields = quotas.QUOTA_FIELDS
        help_texts = {
            "hard_limit": "Octets for storage, a number of messages for counts. Nothing more is stored beyond it.",
            "warn_limit": "Optional; at most the soft limit.",
            "soft_limit": "Optional; at most the hard limit.",
            "name": "Shown to users (JMAP Quota name); empty for a default.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        if scope == Quota.Scope.ACCOUNT and not data.get("account"):
            self.add_error("account", "An account quota needs its account.")
        if scope == Quota.Scope.DOMAIN and not data.get("domain"):
            self.add_error("domain", "A domain quota needs its domain.")
        if scope != Quota.Scope.ACCOUNT:
            data["account"] = None
        if scope != Quota.Scope.DOMAIN:
            data["domain"] = None
        limits = (data.get("hard_limit"), data.get("warn_limit"), data.get("soft_limit"))
        for field, message in quotas.limit_errors(*limits).items():
            self.add_error(field, message)
        return data


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    action_form = QuotaLimitActionForm
    list_display = ("name", "scope", "target", "resource_type", "usage", "hard", "warn_limit", "soft_limit")
    list_filter = ("scope", "resource_type", UsageFilter)
    list_select_related = ("account__owner", "domain")
    search_fields = ("name", "account__owner__email", "account__name", "domain__name")
    autocomplete_fields = ("account", "domain")
    actions = ("set_hard_limit",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Quota]:
        return quotas.with_usage(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Quota | None = None) -> tuple[str, ...]:
        # The scope and target are what the quota is; to limit something else, add another.
        return ("scope", "account", "domain", "resource_type", "usage") if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Quota | None = None) -> tuple[str, ...]:
        fields = QuotaForm.Meta.fields
        return (*fields, "usage") if obj is not None else fields

    @admin.display(description="applies to")
    def target(self, obj: Quota) -> str:
        if obj.scope == Quota.Scope.ACCOUNT:
            return str(obj.account.owner)
        if obj.scope == Quota.Scope.DOMAIN:
            return obj.domain.name
        return "every account"

    @admin.display(description="used", ordering="used")
    def usage(self, obj: Quota) -> str:
        return usage_cell(getattr(obj, "used", 0), obj.hard_limit, obj.resource_type)

    @admin.display(description="hard limit", ordering="hard_limit")
    def hard(self, obj: Quota) -> str:
        return amount(obj.hard_limit, obj.resource_type)

    def save_model(self, request: HttpRequest, obj: Quota, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        limits = {key: data.get(key) for key in ("hard_limit", "warn_limit", "soft_limit")}
        if change:
            saved = quotas.quota_update(
                quota=obj, name=data.get("name", ""), description=data.get("description", ""), **limits
            )
        else:
            saved = quotas.quota_set(
                scope=data["scope"],
                resource_type=data["resource_type"],
                account=data.get("account"),
                domain=data.get("domain"),
                name=data.get("name", ""),
                description=data.get("description", ""),
                **limits,
            )
        obj.pk, obj.name = saved.pk, saved.name

    def delete_model(self, request: HttpRequest, obj: Quota) -> None:
        quotas.quota_delete(quota=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Quota]) -> None:
        for quota in queryset:
            quotas.quota_delete(quota=quota)

    @admin.action(description="Set the hard limit of selected quotas (MiB for storage)", permissions=["change"])
    def set_hard_limit(self, request: HttpRequest, queryset: QuerySet[Quota]) -> None:
        limit = action_limit(request)
        if limit is None:
            self.message_user(request, "Type the new limit next to the action.", messages.ERROR)
            return
        changed = 0
        for quota in queryset:
            hard = limit * MIB if quota.resource_type == OCTETS else limit
            warn = quota.warn_limit if quota.warn_limit is None or quota.warn_limit <= hard else None
            soft = quota.soft_limit if quota.soft_limit is None or quota.soft_limit <= hard else None
            if warn is not None and soft is not None and warn > soft:
                warn = None
            quotas.quota_update(quota=quota, hard_limit=hard, warn_limit=warn, soft_limit=soft)
            self.log_change(request, quota, f"Set the hard limit to {amount(hard, quota.resource_type)}.")
            changed += 1
        self.message_user(request, f"Changed {changed} quota(s).")
