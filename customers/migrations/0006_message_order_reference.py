"""Outbox rows name their order by reference and carry what their email says about it.

The outbox stops pointing at orders (orders sit above customers): each row gets the
order's reference and, in its context, the facts its email needs (SKU, store,
fulfilment, collection deadline), copied from the order as it is now; then the
foreign key goes.
"""

from django.db import migrations, models

_FILL_POSTGRES = """
UPDATE customers_message m SET
  order_reference = o.reference,
  context = m.context || jsonb_build_object(
    'sku', o.sku_id, 'store', o.store_id, 'fulfilment', o.fulfilment,
    'collect_by', to_char(o.collect_by AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
FROM orders_order o
WHERE o.sequence = m.order_id
"""


def fill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_FILL_POSTGRES)
        return
    Message = apps.get_model("customers", "Message")
    for message in Message.objects.filter(order__isnull=False).select_related("order").iterator(chunk_size=2000):
        order = message.order
        message.order_reference = order.reference
        message.context = {
            **(message.context or {}),
            "sku": order.sku_id,
            "store": order.store_id,
            "fulfilment": order.fulfilment,
            "collect_by": order.collect_by.isoformat() if order.collect_by else None,
        }
        message.save(update_fields=["order_reference", "context"])


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_launch_in_inventory"),
        ("orders", "0004_launch_leaves_orders"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="order_reference",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RemoveField(model_name="message", name="order"),
    ]
