# Registrations by customer with their preference, for "registrations without an order"
# (customers.models.UpgradeRegistration.Meta). Non-atomic so the index is built
# CONCURRENTLY: registrations keep coming in while it builds.

from django.db import migrations, models

from config.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('customers', '0013_message_kinds_together'),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name='upgraderegistration',
            index=models.Index(
                fields=['launch', 'customer', 'preferred_store', 'preferred_sku'], name='registration_by_customer'
            ),
        ),
    ]
