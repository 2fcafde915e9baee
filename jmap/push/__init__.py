"""Push to connected clients: EventSource (RFC 8620 §7.3) and JMAP over WebSocket (RFC 8887)."""
