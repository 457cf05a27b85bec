"""Indexes for head office's customer search (customers.selectors.customer_search).

The search compares UPPER(account_number) and UPPER(email) with the query (Django's
iexact) and looks for it inside UPPER(name) (icontains): without these, every search read
the whole customers table (380 ms at 400,000 customers). The two B-trees on UPPER() serve
the exact matches; a pg_trgm GIN index on UPPER(name) serves LIKE '%...%'.

PostgreSQL only, created here rather than declared on the model: GIN and pg_trgm do not
exist on SQLite (the embedded default), whose small tables are scanned anyway.
"""

from django.db import migrations

INDEXES = {
    "customer_account_upper": "(UPPER(account_number))",
    "customer_email_upper": "(UPPER(email))",
    "customer_name_trgm": "USING gin (UPPER(name) gin_trgm_ops)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, how in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON customers_customer {how}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("customers", "0010_message_stock_notice")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
