"""Drop the foreign keys' own indexes where a composite index already leads with the
column: each index is written on every insert of these hot tables (and the pattern-ops
copies of blob digests served no query). Only the indexes change: the constraints stay,
so no table is rebuilt or re-validated."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_quotas'),
        ('core', '0003_redundant_fk_indexes'),
        ('mail', '0005_delivery'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='deliveryrecord',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='email',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='emails', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='email',
                    name='blob',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='core.blob'),
                ),
                migrations.AlterField(
                    model_name='email',
                    name='thread',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='emails', to='mail.thread'),
                ),
                migrations.AlterField(
                    model_name='emailmailbox',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='emailmailbox',
                    name='email',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='mail.email'),
                ),
                migrations.AlterField(
                    model_name='emailmailbox',
                    name='mailbox',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='mail.mailbox'),
                ),
                migrations.AlterField(
                    model_name='messageidindex',
                    name='account',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.account'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [
                    "DROP INDEX IF EXISTS mail_deliveryrecord_account_id_0175dc14",
                    "DROP INDEX IF EXISTS mail_email_account_id_780bde84",
                    "DROP INDEX IF EXISTS mail_email_blob_id_4748cae3",
                    "DROP INDEX IF EXISTS mail_email_blob_id_4748cae3_like",
                    "DROP INDEX IF EXISTS mail_email_thread_id_b0fbb101",
                    "DROP INDEX IF EXISTS mail_emailmailbox_account_id_46686810",
                    "DROP INDEX IF EXISTS mail_emailmailbox_email_id_e9bd0f4e",
                    "DROP INDEX IF EXISTS mail_emailmailbox_mailbox_id_80545d20",
                    "DROP INDEX IF EXISTS mail_messageidindex_account_id_419a26f1",
                    ],
                    # Going back leaves them out: they duplicate the composite indexes.
                    reverse_sql=migrations.RunSQL.noop,
                )
            ],
        ),
    ]
