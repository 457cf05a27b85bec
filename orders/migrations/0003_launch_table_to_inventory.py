"""Launch moves to the inventory app (the catalogue every app hangs off).

Step 1 of 3: the database tables take the new owner's names. AlterModelTable renames the
model's table and its M2M table (orders_launch_skus -> inventory_launch_skus); rows,
keys and the foreign keys pointing at them are untouched. inventory.0003 then adopts
the model in the migration state, and orders.0004 lets go of it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_fewer_order_indexes"),
    ]

    operations = [
        migrations.AlterModelTable(name="launch", table="inventory_launch"),
    ]
