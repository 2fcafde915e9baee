"""WebSocket routes (RFC 8887 comes with the push issue)."""

websocket_urlpatterns: list = []
