"""URLs of the provisioning API, mounted at /api/admin/v1/ (groupware/urls.py)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from accounts.api import views
from accounts.api.authentication import StaffTokenAuthentication

router = SimpleRouter()
router.register("domains", views.DomainViewSet, basename="domain")
router.register("users", views.UserViewSet, basename="user")
router.register("aliases", views.AliasViewSet, basename="alias")
router.register("quotas", views.QuotaViewSet, basename="quota")
router.register("tokens", views.ApiTokenViewSet, basename="token")


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema: JSON by default, YAML with ?format=yaml. Public (it documents
    the API, it holds no data), so tools can fetch it before they have a token."""

    authentication_classes = [StaffTokenAuthentication]
    permission_classes: list = []
    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]


app_name = "provisioning"
urlpatterns = [
    path("schema/", SchemaView.as_view(urlconf=None), name="schema"),
    *router.urls,
]
