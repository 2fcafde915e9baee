"""Drop the foreign keys' own indexes where a composite index already leads with the
column: each index is written on every insert of these hot tables (and the pattern-ops
copies of blob digests served no query). Only the indexes change: the constraints stay,
so no table is rebuilt or re-validated."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_quotas'),
        ('core', '0002_accountblob_uploaders'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='accountblob',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='blobs', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='accountblob',
                    name='blob',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='account_refs', to='core.blob'),
                ),
                migrations.AlterField(
                    model_name='objectchange',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.account'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [
                    "DROP INDEX IF EXISTS core_accountblob_account_id_a91ed26c",
                    "DROP INDEX IF EXISTS core_accountblob_blob_id_09cb1796",
                    "DROP INDEX IF EXISTS core_accountblob_blob_id_09cb1796_like",
                    "DROP INDEX IF EXISTS core_objectchange_account_id_5b5f61a7",
                    ],
                    # Going back leaves them out: they duplicate the composite indexes.
                    reverse_sql=migrations.RunSQL.noop,
                )
            ],
        ),
    ]
