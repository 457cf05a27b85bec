# The orders pages (issue 11): a cancellation's reason, and a store's orders newest first.
#
# Non-atomic so the new index is built CONCURRENTLY: the orders table holds a launch's
# millions of rows and admission must not wait on a table lock while it builds. The new
# index leads with store, so the plain store index it replaces is dropped after it exists.

import django.db.models.deletion
from django.db import migrations, models

from config.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('orders', '0008_rehearsal'),
    ]

    operations = [
        # A default in the database: adding the column rewrites nothing (PostgreSQL 11+).
        migrations.AddField(
            model_name='order',
            name='cancel_reason',
            field=models.CharField(blank=True, db_default='', default='', max_length=200),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name='order',
            index=models.Index(fields=['store', 'sequence'], name='order_store_recent'),
        ),
        migrations.AlterField(
            model_name='order',
            name='store',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='stores.store'),
        ),
    ]
