"""Database settings from DATABASE_URL (groupware.config.database)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from groupware import config


def test_postgres_statements_are_prepared_by_default(monkeypatch):
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)
    settings = config.database("postgres://u:p@db.example:6543/mail?sslmode=require", Path("/tmp"))
    assert settings["OPTIONS"] == {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 1}
    assert (settings["HOST"], settings["PORT"], settings["NAME"]) == ("db.example", "6543", "mail")


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(monkeypatch):
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "false")
    settings = config.database("postgres://u@localhost/mail", Path("/tmp"))
    assert settings["OPTIONS"] == {}
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "sometimes")
    with pytest.raises(ImproperlyConfigured):
        config.database("postgres://u@localhost/mail", Path("/tmp"))


@pytest.mark.django_db
def test_a_repeated_statement_is_prepared_on_the_server():
    """On PostgreSQL the server binds the parameters and keeps the plan of a statement
    run twice on a connection (pg_prepared_statements is the session's own list)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (the SQLite run has none)")
    statement = "SELECT count(*) FROM accounts_account WHERE id > %s"
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute(statement, [0])
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert "SELECT count(*) FROM accounts_account WHERE id > $1" in prepared
