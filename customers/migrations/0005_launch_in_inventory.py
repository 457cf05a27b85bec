"""Registrations, campaigns and messages point at the Launch in its new home (state only)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_message_fewer_indexes"),
        ("inventory", "0003_launch"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="upgraderegistration",
                    name="launch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="registrations",
                        to="inventory.launch",
                    ),
                ),
                migrations.AlterField(
                    model_name="campaign",
                    name="launch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="campaigns",
                        to="inventory.launch",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="launch",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="inventory.launch",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
