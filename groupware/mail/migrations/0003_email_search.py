"""The full-text search index of emails (groupware.mail.search): a table with one
tsvector per field and a GIN index on PostgreSQL, an FTS5 table on SQLite.

Neither is a Django model: the engines differ too much, and only groupware.mail.search
reads or writes them (raw SQL).
"""

from django.db import migrations

FIELDS = ("subject", "addr_from", "addr_to", "addr_cc", "addr_bcc", "body", "attachments", "headers")


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        columns = ", ".join(f"{name} tsvector NOT NULL DEFAULT ''" for name in FIELDS)
        schema_editor.execute(f"CREATE TABLE mail_email_search (email_id bigint PRIMARY KEY, {columns})")
        schema_editor.execute(
            f"CREATE INDEX mail_email_search_fts ON mail_email_search USING gin ({', '.join(FIELDS)})"
        )
    elif connection.vendor == "sqlite":
        # The ascii tokenizer: our tokens (made in Python) are lower-case ASCII letters and
        # digits or non-ASCII characters, all of which it keeps as they are.
        schema_editor.execute(
            f"CREATE VIRTUAL TABLE mail_email_search USING fts5({', '.join(FIELDS)}, "
            "tokenize = 'ascii', prefix = '2 3')"
        )
    else:
        raise NotImplementedError(f"no search index for {connection.vendor}")
    # Emails stored before the index existed.
    from groupware.mail.search import search_index_rebuild

    Email = apps.get_model("mail", "Email")
    search_index_rebuild(Email.objects.only("pk", "subject", "from_addresses", "to", "cc", "bcc", "parsed").iterator())


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute("DROP TABLE IF EXISTS mail_email_search")


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0002_mailbox_shared_subscribers"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index),
    ]
