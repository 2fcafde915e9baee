"""WebSocket routes: JMAP over WebSocket (RFC 8887)."""

from django.urls import path

from jmap.push.websocket import JmapWebSocketConsumer

websocket_urlpatterns: list = [path("jmap/push/websocket/", JmapWebSocketConsumer.as_asgi())]
