"""Orders, pools and tickets point at the Launch in inventory; orders lets go of the model
(step 3 of 3, see 0003). State only: the database already has it all."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_launch_in_inventory"),
        ("inventory", "0003_launch"),
        ("orders", "0003_launch_table_to_inventory"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="launch",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="orders",
                        to="inventory.launch",
                    ),
                ),
                migrations.AlterField(
                    model_name="poolstate",
                    name="launch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="pools", to="inventory.launch"
                    ),
                ),
                migrations.AlterField(
                    model_name="ticket",
                    name="launch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="tickets", to="inventory.launch"
                    ),
                ),
                migrations.DeleteModel(name="Launch"),
            ],
            database_operations=[],
        ),
    ]
