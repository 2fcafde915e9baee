"""Blob/copy (RFC 8620 §6.3) — placeholder."""
