"""Periodic maintenance tasks — placeholder."""
