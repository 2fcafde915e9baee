"""Upload and download endpoints (RFC 8620 §6.1, §6.2), mounted under /jmap/.

The paths match the session's uploadUrl and downloadUrl templates (jmap/session.py).
"""

from django.urls import path

from jmap import blob_views

urlpatterns = [
    path("upload/<str:account_id>/", blob_views.upload_view, name="jmap-upload"),
    # A name may contain "/" once its %2F is decoded, hence <path:...>.
    path("download/<str:account_id>/<str:blob_id>/<path:name>", blob_views.download_view, name="jmap-download"),
]
