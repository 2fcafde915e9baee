from django.contrib import admin
from django.urls import include, path

from jmap import views as jmap_views
from jmap.push.auth import push_token_view
from jmap.push.eventsource import eventsource_view

urlpatterns = [
    path(".well-known/jmap", jmap_views.session_view, name="jmap-well-known"),
    path("jmap/session", jmap_views.session_view, name="jmap-session"),
    path("jmap/api/", jmap_views.api_view, name="jmap-api"),
    # Push: served by the ASGI process (see README "Production mode"); the token is plain HTTP.
    path("jmap/push/eventsource/", eventsource_view, name="jmap-eventsource"),
    path("jmap/push-token/", push_token_view, name="jmap-push-token"),
    path("jmap/", include("jmap.blob_urls")),
    path("admin/", admin.site.urls),
    path("api/admin/v1/", include("accounts.api.urls")),
    path("bench/", include("groupware.bench_views")),  # empty unless BENCH_VIEWS=1
    path("", include("webmail.urls")),
]
