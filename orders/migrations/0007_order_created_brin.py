"""A BRIN index on orders.created_at, for the launch overview's "orders in the last
minute" and its last-hour chart.

Orders are inserted in created_at order, so a BRIN index (a few pages for millions of
rows, next to nothing per insert) finds the last minute's rows without reading the table.
A B-tree would be paid by every admission. A BRIN range is only summarised by VACUUM
(autosummarize asks autovacuum to do it as each range fills): until then it matches every
query, so a table loaded in bulk wants a VACUUM before the index helps. PostgreSQL only: on SQLite (the embedded
default) the scan is small anyway, so nothing is created there.
"""

from django.db import migrations

INDEX = "order_created_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON orders_order USING brin (created_at) "
            "WITH (pages_per_range = 16, autosummarize = on)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_claim_windows")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
