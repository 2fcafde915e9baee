"""ASGI entry point: HTTP through Django, WebSocket through Channels (push issue)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from groupware.core.scheduler import start_embedded_scheduler  # noqa: E402
from jmap.routing import websocket_urlpatterns  # noqa: E402

# Embedded default: no Celery beat, so periodic maintenance runs in this process.
start_embedded_scheduler()

application = ProtocolTypeRouter({"http": django_http, "websocket": URLRouter(websocket_urlpatterns)})
