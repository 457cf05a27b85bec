"""Launch moves here from orders (step 2 of 3, see orders.0003): state only.

The table already has this app's default name, so nothing in the database changes.
Admin permissions follow the model (its content type changes app).
"""

import django.db.models.deletion
from django.db import migrations, models


def content_type_follows(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="orders", model="launch").update(app_label="inventory")


def content_type_returns(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="inventory", model="launch").update(app_label="orders")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("inventory", "0002_initial"),
        ("orders", "0003_launch_table_to_inventory"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Launch",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("slug", models.SlugField(max_length=64, unique=True)),
                        ("name", models.CharField(max_length=200)),
                        ("opens_at", models.DateTimeField()),
                        ("closes_at", models.DateTimeField()),
                        ("per_customer_limit", models.PositiveSmallIntegerField(default=1)),
                        ("auto_apply_plans", models.BooleanField(default=False)),
                        ("auto_apology", models.BooleanField(default=False)),
                        ("collect_hold_days", models.PositiveSmallIntegerField(default=3)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("skus", models.ManyToManyField(related_name="launches", to="inventory.sku")),
                    ],
                    options={
                        "ordering": ["-opens_at"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("closes_at__gt", models.F("opens_at"))),
                                name="launch_window_ordered",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(("per_customer_limit__gte", 1)),
                                name="launch_limit_positive",
                            ),
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="launch",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="inventory.launch",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_follows, content_type_returns),
    ]
