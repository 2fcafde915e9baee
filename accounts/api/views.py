"""The provisioning API (``/api/admin/v1/``): domains, users, aliases, quotas and API
tokens for automation. Views validate with the serializers and write through the same
services as the admin (accounts.services, accounts.quotas)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import filters, pagination, permissions, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import quotas, services
from accounts.api import serializers as api
from accounts.api.authentication import StaffTokenAuthentication
from accounts.models import Alias, ApiToken, Domain, Quota, User


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@contextmanager
def service_errors() -> Iterator[None]:
    """A service's ValidationError becomes a 400 with the same field errors as JSON."""
    try:
        yield
    except DjangoValidationError as error:
        detail: Any = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise serializers.ValidationError(detail) from None


class ProvisioningViewSet(viewsets.ModelViewSet):
    authentication_classes = [StaffTokenAuthentication]
    permission_classes = [permissions.IsAdminUser]  # is_staff
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    pagination_class = Pagination
    filter_backends = [filters.SearchFilter, filters.OrderingFilter]
    update_serializer_class: type[serializers.Serializer] | None = None

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action in ("update", "partial_update") and self.update_serializer_class is not None:
            return self.update_serializer_class
        return super().get_serializer_class()


class DomainViewSet(ProvisioningViewSet):
    """Mail domains of this server."""

    queryset = Domain.objects.all()
    serializer_class = api.DomainSerializer
    update_serializer_class = api.DomainUpdateSerializer
    search_fields = ("name",)
    ordering_fields = ("name", "created")

    def perform_create(self, serializer: serializers.Serializer) -> None:
        with service_errors():
            serializer.instance = services.domain_create(**serializer.validated_data)

    def perform_update(self, serializer: serializers.Serializer) -> None:
        serializer.save()  # only is_active, a plain flag (as in the admin)


class UserViewSet(ProvisioningViewSet):
    """Users; each has a personal JMAP account with the default mailboxes."""

    queryset = User.objects.prefetch_related("jmap_accounts").order_by("email")
    serializer_class = api.UserSerializer
    update_serializer_class = api.UserUpdateSerializer
    search_fields = ("email", "name")
    ordering_fields = ("email", "date_joined", "last_login")

    def perform_create(self, serializer: serializers.Serializer) -> None:
        data = serializer.validated_data
        with service_errors():
            user = services.user_create(
                email=data["email"],
                password=data.get("password") or None,
                name=data.get("name", ""),
                is_staff=data.get("is_staff", False),
            )
        if data.get("is_active") is False:
            services.user_disable(user=user)
        serializer.instance = User.objects.prefetch_related("jmap_accounts").get(pk=user.pk)

    def perform_update(self, serializer: serializers.Serializer) -> None:
        user: User = serializer.instance
        data = serializer.validated_data
        changed = [field for field in ("name", "is_staff") if field in data and data[field] != getattr(user, field)]
        for field in changed:
            setattr(user, field, data[field])
        if changed:
            with quotas.quota_visibility_tracked(user):
                user.save(update_fields=changed)
        if "is_active" in data and data["is_active"] != user.is_active:
            (services.user_enable if data["is_active"] else services.user_disable)(user=user)
        if "password" in data:
            services.user_set_password(user=user, password=data["password"] or None)


class AliasViewSet(ProvisioningViewSet):
    """Extra addresses delivering to a user; ``@domain`` is a catch-all."""

    queryset = Alias.objects.select_related("user")
    serializer_class = api.AliasSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    search_fields = ("address", "user__email")
    ordering_fields = ("address", "created")

    def perform_create(self, serializer: serializers.Serializer) -> None:
        data = serializer.validated_data
        with service_errors():
            serializer.instance = services.alias_create(user=data["user"], address=data["address"])


class QuotaViewSet(ProvisioningViewSet):
    """Quotas (RFC 9425) per account, per domain or for the whole server, with usage.

    Creating a quota that exists already (same scope, target and resource type) changes it.
    Filter with ``?scope=`` and ``?resource_type=``.
    """

    serializer_class = api.QuotaSerializer
    update_serializer_class = api.QuotaUpdateSerializer
    search_fields = ("name", "account__owner__email", "domain__name")
    ordering_fields = ("name", "used", "hard_limit")

    def get_queryset(self) -> QuerySet[Quota]:
        queryset = quotas.with_usage(Quota.objects.select_related("domain")).order_by("pk")
        for field in ("scope", "resource_type"):
            value = self.request.query_params.get(field)
            if value:
                queryset = queryset.filter(**{field: value})
        return queryset

    def _reload(self, quota: Quota) -> Quota:
        return self.get_queryset().get(pk=quota.pk)

    def perform_create(self, serializer: serializers.Serializer) -> None:
        data = dict(serializer.validated_data)
        with service_errors():
            quota = quotas.quota_set(
                scope=data.pop("scope", Quota.Scope.ACCOUNT),
                resource_type=data.pop("resource_type", Quota.ResourceType.OCTETS),
                hard_limit=data.pop("hard_limit"),
                **data,
            )
        serializer.instance = self._reload(quota)

    def perform_update(self, serializer: serializers.Serializer) -> None:
        with service_errors():
            quota = quotas.quota_update(quota=serializer.instance, **serializer.validated_data)
        serializer.instance = self._reload(quota)

    def perform_destroy(self, instance: Quota) -> None:
        quotas.quota_delete(quota=instance)


class ApiTokenViewSet(ProvisioningViewSet):
    """Bearer tokens. The secret is in the create response only; DELETE revokes (the row stays)."""

    queryset = ApiToken.objects.select_related("user").order_by("pk")
    serializer_class = api.ApiTokenSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]
    search_fields = ("name", "prefix", "user__email")
    ordering_fields = ("created", "last_used")

    def perform_create(self, serializer: serializers.Serializer) -> None:
        data = serializer.validated_data
        with service_errors():
            token, plaintext = services.api_token_create(
                user=data["user"], name=data["name"], expires=data.get("expires")
            )
        token.token = plaintext  # type: ignore[attr-defined]  (shown once, never stored)
        serializer.instance = token

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.api_token_revoke(api_token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
