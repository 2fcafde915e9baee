"""PostgreSQL: compress the largest values of each new message with lz4 instead of pglz
where the server has it (PostgreSQL 14 and later, built with lz4, as Debian's and the
official images are): the search row's tsvectors and the Email's stored parse. Every
delivery and import writes them, and pglz compression is several times slower for about
the same size. Values already stored keep their compression; nothing is rewritten."""

from django.db import migrations

SEARCH_FIELDS = ("subject", "addr_from", "addr_to", "addr_cc", "addr_bcc", "body", "attachments", "headers")
COLUMNS = [("mail_email_search", field) for field in SEARCH_FIELDS] + [("mail_email", "parsed")]


def _lz4_available(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        found = cursor.fetchone()
    return bool(found and found[0])


def set_compression(method: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql" or not _lz4_available(schema_editor):
            return
        for table, column in COLUMNS:
            schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0006_redundant_fk_indexes"),
    ]

    operations = [
        migrations.RunPython(set_compression("lz4"), set_compression("pglz")),
    ]
