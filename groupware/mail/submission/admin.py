"""Admin for sending: DKIM keys (with the DNS record to publish), per-user sending
policies (rights, rate limits, owned domains) and a read-only view of the queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from groupware.mail.submission.dkim_keys import dkim_key_generate, dkim_txt_record
from groupware.mail.submission.models import DkimKey, OutboundMessage, OutboundRecipient, SenderPolicy


class DkimKeyForm(forms.ModelForm):
    class Meta:
        model = DkimKey
        fields = ("domain", "selector", "is_active")

    selector = forms.RegexField(
        regex=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        required=False,
        help_text="Leave empty for gwYYYYMM. A new key replaces the domain's current one.",
    )


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    form = DkimKeyForm
    list_display = ("domain", "selector", "is_active", "created", "dns_name")
    readonly_fields = ("dns_name", "dns_record", "created")
    actions = ["regenerate"]

    def get_fields(self, request: HttpRequest, obj: DkimKey | None = None) -> Any:
        if obj is None:
            return ("domain", "selector", "is_active")
        return ("domain", "selector", "is_active", "created", "dns_name", "dns_record")

    def get_readonly_fields(self, request: HttpRequest, obj: DkimKey | None = None) -> Any:
        return ("domain", "selector", "created", "dns_name", "dns_record") if obj is not None else ()

    @admin.display(description="DNS name (TXT)")
    def dns_name(self, obj: DkimKey) -> str:
        return dkim_txt_record(obj)[0]

    @admin.display(description="TXT record to publish")
    def dns_record(self, obj: DkimKey) -> str:
        name, value = dkim_txt_record(obj)
        return format_html('<code style="word-break:break-all">{} IN TXT "{}"</code>', name, value)

    def save_model(self, request: HttpRequest, obj: DkimKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = dkim_key_generate(domain=form.cleaned_data["domain"], selector=form.cleaned_data["selector"] or None)
        created.is_active = form.cleaned_data["is_active"]
        created.save(update_fields=["is_active"])
        obj.pk = created.pk
        obj.private_key = created.private_key
        obj.selector = created.selector
        obj.created = created.created

    @admin.action(description="Generate a new key (publish the new TXT record)")
    def regenerate(self, request: HttpRequest, queryset: QuerySet) -> None:
        for key in list(queryset.select_related("domain")):
            fresh = dkim_key_generate(domain=key.domain)
            name, value = dkim_txt_record(fresh)
            messages.info(request, format_html("{}: <code>{}</code>", name, value))


@admin.register(SenderPolicy)
class SenderPolicyAdmin(admin.ModelAdmin):
    list_display = ("user", "may_send", "messages_per_hour", "recipients_per_day")
    list_filter = ("may_send",)
    search_fields = ("user__email",)
    autocomplete_fields = ("user",)
    filter_horizontal = ("owned_domains",)


class OutboundRecipientInline(admin.TabularInline):
    model = OutboundRecipient
    fields = ("address", "state", "is_local", "attempts", "next_attempt", "smtp_reply")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ("pk", "account", "mail_from", "message_id", "send_at", "finished", "is_report")
    list_filter = ("is_report",)
    search_fields = ("mail_from", "message_id", "recipients__address")
    readonly_fields = ("account", "user", "blob", "mail_from", "mail_parameters", "message_id", "send_at",
                       "created", "finished", "is_report")  # fmt: skip
    inlines = [OutboundRecipientInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
