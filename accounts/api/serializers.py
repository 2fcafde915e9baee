"""Serializers of the provisioning API: validation and representation only; every write
is done by the views through accounts.services and accounts.quotas."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import Account, Alias, ApiToken, Domain, Quota, User
from accounts.quotas import QUOTA_FIELDS


class DomainSerializer(serializers.ModelSerializer):
    class Meta:
        model = Domain
        fields = ("id", "name", "is_active", "created")
        read_only_fields = ("id", "created")


class DomainUpdateSerializer(DomainSerializer):
    class Meta(DomainSerializer.Meta):
        # Renaming would move every alias of the domain: add another domain instead.
        read_only_fields = ("id", "name", "created")


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_null=True, style={"input_type": "password"},
        help_text="The account password; null or absent for a user who signs in with app passwords or tokens only.",
    )  # fmt: skip
    account = serializers.SerializerMethodField(help_text="The personal JMAP account's primary key (for quotas).")
    account_id = serializers.SerializerMethodField(help_text="The personal JMAP account's id (accountId).")
    used_octets = serializers.SerializerMethodField(help_text="Quota usage: octets of stored mail.")
    used_count = serializers.SerializerMethodField(help_text="Quota usage: number of stored messages.")

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "name",
            "password",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
            "account",
            "account_id",
            "used_octets",
            "used_count",
        )
        read_only_fields = ("id", "date_joined", "last_login")
        # Uniqueness (in any letter case) is checked by the service.
        extra_kwargs = {"email": {"validators": []}}

    def _account(self, user: User) -> Account | None:
        accounts = [account for account in user.jmap_accounts.all() if account.is_personal]
        return accounts[0] if accounts else None

    def get_account(self, user: User) -> int | None:
        account = self._account(user)
        return account.pk if account else None

    def get_account_id(self, user: User) -> str | None:
        account = self._account(user)
        return account.jmap_id if account else None

    def get_used_octets(self, user: User) -> int:
        account = self._account(user)
        return account.used_octets if account else 0

    def get_used_count(self, user: User) -> int:
        account = self._account(user)
        return account.used_count if account else 0

    def validate_password(self, value: str | None) -> str | None:
        if value:
            try:
                password_validation.validate_password(value, self.instance)
            except DjangoValidationError as error:
                raise serializers.ValidationError(list(error.messages)) from None
        return value


class UserUpdateSerializer(UserSerializer):
    class Meta(UserSerializer.Meta):
        # The address is the login and the account's name: create another user instead.
        read_only_fields = ("id", "email", "date_joined", "last_login")


class AliasSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", queryset=User.objects.all(), help_text="The user's email.")

    class Meta:
        model = Alias
        fields = ("id", "address", "user", "created")
        read_only_fields = ("id", "created")
        extra_kwargs = {"address": {"validators": [], "help_text": "name@domain, or @domain for a catch-all"}}


class QuotaSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(
        slug_field="name", queryset=Domain.objects.all(), required=False, allow_null=True,
        help_text="The domain's name (scope domain).",
    )  # fmt: skip
    used = serializers.IntegerField(read_only=True, help_text="Current usage, in octets or messages.")

    class Meta:
        model = Quota
        fields = ("id", *QUOTA_FIELDS, "used")
        read_only_fields = ("id", "used")
        extra_kwargs = {"account": {"help_text": "The account's primary key (scope account; see users)."}}
        # Uniqueness per scope, target and resource type: a second create updates the first.
        validators: list[Any] = []

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        scope = data.get("scope", getattr(self.instance, "scope", None))
        if scope == Quota.Scope.ACCOUNT and not data.get("account", getattr(self.instance, "account", None)):
            raise serializers.ValidationError({"account": "An account quota needs its account."})
        if scope == Quota.Scope.DOMAIN and not data.get("domain", getattr(self.instance, "domain", None)):
            raise serializers.ValidationError({"domain": "A domain quota needs its domain."})
        return data


class QuotaUpdateSerializer(QuotaSerializer):
    class Meta(QuotaSerializer.Meta):
        read_only_fields = ("id", "used", "scope", "account", "domain", "resource_type")


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="email", queryset=User.objects.all(), help_text="The user's email.")
    token = serializers.CharField(read_only=True, help_text="The secret: in the create response only, never again.")

    class Meta:
        model = ApiToken
        fields = ("id", "user", "name", "prefix", "created", "expires", "last_used", "revoked", "token")
        read_only_fields = ("id", "prefix", "created", "last_used", "revoked", "token")
