"""Upload and download endpoints (RFC 8620 §6.1, §6.2), mounted under /jmap/.

The paths match the session's uploadUrl and downloadUrl templates (jmap/session.py).
"""

from django.urls import path, re_path

from jmap import blob_views

urlpatterns = [
    path("upload/<str:account_id>/", blob_views.upload_view, name="jmap-upload"),
    # The name is the client's, whatever it contains: "/" (a decoded %2F) and even line
    # breaks must not turn a download into a 404 (<path:...> stops at a newline).
    re_path(
        r"^download/(?P<account_id>[^/]+)/(?P<blob_id>[^/]+)/(?P<name>[\s\S]+)\Z",
        blob_views.download_view,
        name="jmap-download",
    ),
]
