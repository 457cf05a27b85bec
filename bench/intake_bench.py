"""Intake at launch scale: a 100,000-unit delivery across 500 stores with 200,000 orders waiting.

    .venv/bin/python bench/intake_bench.py

On a separate database (launchday_bench_intake, created afresh and migrated) it builds
one launch with three SKUs, 500 stores (half of them a partner's), 200,000 waitlisted
orders (80,000 for home delivery, 120,000 click-and-collect spread unevenly over the
stores, with the allocator's wait numbers and pool bookkeeping) and a 100,000-unit
delivery announced by manifest, then times in process:

1. intake end to end: receive into the central warehouse, suggest the fair-share plan
   from demand (auto-apply), distribute (online on hand, stores in transit), and the
   allocator serving the online waitlist;
2. every store confirming its share (500 store receipts) and the allocator serving the
   stores' click-and-collect waitlists;
3. reconcile_stock over the whole ledger (must be zero drift).

run() -> IntakeFigures is what bench/run.py calls; it runs the measurement in a child
process so its Django settings (this database) never mix with the caller's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# After sys.path, for `python bench/intake_bench.py`.
from bench.figures import IntakeFigures  # noqa: E402
from bench.own_database import IN_PROCESS, child_json, database_env, database_fresh, main  # noqa: E402
from bench.stack import django_setup  # noqa: E402

DB_NAME = "launchday_bench_intake"
STORES = 500
ORDERS = 200_000
UNITS = 100_000
TIMEOUT = 900


def run() -> IntakeFigures:
    """Create the database, migrate, measure in a child process; return its figures."""
    # Tasks the intake enqueues (the outbox drain for 100,000 "reserved" emails) go nowhere:
    # this bench times intake, not email (bench/email_bench.py does that).
    env = database_env(name=DB_NAME, **IN_PROCESS)
    database_fresh(name=DB_NAME, env=env, timeout=TIMEOUT)
    figures = IntakeFigures(
        **child_json([str(Path(__file__).resolve()), "--child"], env=env, timeout=TIMEOUT)
    )
    _print(figures)
    return figures


def _print(f: IntakeFigures) -> None:
    print(f"intake bench: {f.units:,} units, {f.stores} stores, {f.orders_waiting:,} orders waiting")
    seconds = {
        "setup": f.setup_seconds,
        "intake": f.intake_seconds,
        **f.steps_seconds,
        "store receipts": f.store_receipts_seconds,
        "store confirmations": f.store_confirmations_seconds,
        "store allocation": f.store_allocation_seconds,
        "end to end": f.end_to_end_seconds,
        "reconcile": f.reconcile_seconds,
    }
    for name, value in seconds.items():
        print(f"  {name + ' (s)':32s} {value:8.2f}")
    print(f"  online orders served by intake   {f.allocated_by_intake:,}")
    print(f"  collect orders served at stores  {f.allocated_at_stores:,}")
    print(f"  drift after                      {f.drift}")


# --- the measurement, in the child ------------------------------------------------------------


def _build() -> dict:
    import datetime

    from django.db import connection
    from django.utils import timezone

    from bench.stack import tables
    from inventory.manifests import manifest_parse
    from inventory.models import SKU, Launch, Location, Product
    from inventory.services import delivery_announce
    from orders.models import PoolState
    from stores.models import Partner, Store

    t = tables()

    product = Product.objects.create(code="IP3G", name="iPhone 3G")
    skus = [
        SKU.objects.create(code=code, product=product, name=code)
        for code in ("IP3G-8GB-BLACK", "IP3G-16GB-BLACK", "IP3G-16GB-WHITE")
    ]
    now = timezone.now()
    launch = Launch.objects.create(
        slug="iphone-3g",
        name="iPhone 3G",
        opens_at=now - datetime.timedelta(hours=1),
        closes_at=now + datetime.timedelta(days=7),
        auto_apply_plans=True,
    )
    launch.skus.set(skus)
    Location.objects.create(code="CENTRAL", kind="central")
    online = Location.objects.create(code="ONLINE", kind="online")
    partner = Partner.objects.create(code="cpw", name="CPW")
    stores = Store.objects.bulk_create(
        [
            Store(code=f"S{i:03d}", name=f"Store {i:03d}", partner=partner if i > STORES // 2 else None)
            for i in range(1, STORES + 1)
        ]
    )
    Location.objects.bulk_create([Location(code=s.code, kind="store", store=s) for s in stores])
    sku_ids = [s.pk for s in skus]
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {t.customer} (account_number, name, email, phone, postcode, current_device, "
            "contract_status, marketing_opt_out, created_at) "
            "SELECT 'D' || lpad(g::text, 7, '0'), 'Customer ' || g, 'd' || g || '@example.com', '', 'SW1A 1AA', "
            "'iPhone', 'active', false, now() FROM generate_series(1, %s) g",
            [ORDERS],
        )
        # 40% home delivery from the online pool; the rest collect, spread unevenly over the
        # stores (weights 1..7), each order for one of the three SKUs.
        cur.execute(
            f"WITH c AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM {t.customer}), "
            "st AS (SELECT s.id AS store_id, l.id AS location_id, row_number() OVER (ORDER BY s.code) - 1 AS i "
            f"       FROM {t.store} s JOIN {t.location} l ON l.store_id = s.id), "
            "slots AS (SELECT st.*, generate_series(1, (st.i %% 7) + 1) AS k FROM st), "
            "slot AS (SELECT store_id, location_id, row_number() OVER (ORDER BY i, k) - 1 AS j, "
            "         count(*) OVER () AS total FROM slots) "
            f"INSERT INTO {t.order} (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, "
            "store_id, pool_id, status, idempotency_scope, request_fingerprint, created_at) "
            "SELECT 'B' || lpad(c.n::text, 9, '0'), %s, c.id, 1, (%s::bigint[])[1 + c.n %% 3], 'online', "
            "CASE WHEN c.n %% 5 < 2 THEN 'delivery' ELSE 'collect' END, "
            "CASE WHEN c.n %% 5 < 2 THEN NULL ELSE slot.store_id END, "
            "CASE WHEN c.n %% 5 < 2 THEN %s ELSE slot.location_id END, 'queued', '', '', now() "
            "FROM c LEFT JOIN slot ON slot.j = c.n %% slot.total "
            "ORDER BY c.n",
            [launch.pk, sku_ids, online.pk],
        )
        # What the allocator would have done with no stock: every order waits, numbered per pool.
        cur.execute(
            f"UPDATE {t.order} o SET status = 'waitlisted', wait_number = w.rn FROM ("
            "  SELECT sequence, row_number() OVER (PARTITION BY pool_id, sku_id ORDER BY sequence) AS rn "
            f"  FROM {t.order} WHERE launch_id = %s) w WHERE o.sequence = w.sequence",
            [launch.pk],
        )
        cur.execute(
            f"INSERT INTO {PoolState._meta.db_table} (launch_id, sku_id, pool_id, waitlisted_total, served_through, "
            f"waiting) SELECT launch_id, sku_id, pool_id, count(*), 0, count(*) FROM {t.order} WHERE launch_id = %s "
            "GROUP BY launch_id, sku_id, pool_id",
            [launch.pk],
        )
        cur.execute("ANALYZE")
    split = {"IP3G-8GB-BLACK": 40_000, "IP3G-16GB-BLACK": 35_000, "IP3G-16GB-WHITE": UNITS - 75_000}
    body = "reference,expected_on,sku,quantity,requested_quantity\n" + "".join(
        f"DLV-BENCH-1,{timezone.localdate()},{code},{n},{n * 3}\n" for code, n in split.items()
    )
    delivery, _ = delivery_announce(manifest=manifest_parse(content=body.encode()), source="bench")
    return {"launch": launch, "delivery": delivery}


def child() -> dict:
    django_setup()
    from inventory.models import Location, Stock
    from inventory.services import stock_reconcile, store_delivery_receive
    from orders.models import Order
    from orders.services.allocation import launch_allocate
    from orders.services.intake import delivery_intake

    t0 = time.perf_counter()
    world = _build()
    setup = time.perf_counter() - t0
    launch, delivery = world["launch"], world["delivery"]

    steps: dict[str, float] = {}
    mark = [time.perf_counter()]

    def on_step(name: str) -> None:
        now = time.perf_counter()
        steps[name] = round(now - mark[0], 2)
        mark[0] = now

    t1 = time.perf_counter()
    result = delivery_intake(delivery_id=delivery.pk, on_step=on_step)
    intake = time.perf_counter() - t1

    t2 = time.perf_counter()
    in_transit = {}
    for row in Stock.objects.filter(in_transit__gt=0, location__kind="store").values(
        "location_id", "sku_id", "in_transit"
    ):
        in_transit.setdefault(row["location_id"], {})[row["sku_id"]] = row["in_transit"]
    locations = {loc.pk: loc for loc in Location.objects.filter(pk__in=in_transit)}
    for location_id, received in in_transit.items():
        store_delivery_receive(delivery_id=delivery.pk, location=locations[location_id], received=received)
    confirmations = time.perf_counter() - t2
    served_at_stores = launch_allocate(launch_id=launch.pk).allocated
    receipts = time.perf_counter() - t2

    t3 = time.perf_counter()
    drift = stock_reconcile()
    reconcile = time.perf_counter() - t3
    allocated = Order.objects.filter(launch=launch, status="allocated").count()
    assert allocated == result.allocated + served_at_stores
    return {
        "units": UNITS,
        "stores": STORES,
        "orders_waiting": ORDERS,
        "setup_seconds": round(setup, 2),
        "intake_seconds": round(intake, 2),
        "steps_seconds": steps,
        "store_receipts_seconds": round(receipts, 2),
        "store_confirmations_seconds": round(confirmations, 2),
        "store_allocation_seconds": round(receipts - confirmations, 2),
        "end_to_end_seconds": round(intake + receipts, 2),
        "reconcile_seconds": round(reconcile, 2),
        "allocated_by_intake": result.allocated,
        "allocated_at_stores": served_at_stores,
        "stores_receiving": len(in_transit),
        "drift": len(drift),
    }


if __name__ == "__main__":
    main(run=run, child=child)
