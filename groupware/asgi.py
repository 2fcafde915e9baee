"""ASGI entry point: HTTP through Django, WebSocket through Channels (push issue)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
# Under ASGI, sync code runs in short-lived threads and Django's connections are per
# thread: persistent connections would pile up, so they are closed after each use here.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from groupware.core.scheduler import start_embedded_scheduler  # noqa: E402
from jmap.routing import websocket_urlpatterns  # noqa: E402

# Embedded default: no Celery beat, so periodic maintenance runs in this process.
start_embedded_scheduler()

application = ProtocolTypeRouter({"http": django_http, "websocket": URLRouter(websocket_urlpatterns)})
