"""Stock notices at launch scale: 100,000 freed units, and the claim path against admission.

    .venv/bin/python bench/notice_bench.py

On a separate database (launchday_bench_notices, created afresh and migrated) it builds
one open launch with one SKU, 160,000 registered customers without an order who chose
home delivery, and 100,000 units free in the online pool, then times in process:

1. stock_notices_open: 150,000 customers told (factor 1.5) in registration order, each
   with a notice row and an outbox email, and 100,000 units held, in one transaction;
2. the claim path: CLAIMS customers told, one after another, each placing an order on a
   held unit through stock_notice_claim (link check, row lock, conditional UPDATE, order
   INSERT, "reserved" email);
3. the ordinary path in the same run: CLAIMS customers not told, each admitted with
   order_admit (one INSERT under the admission lock), then the allocator serving them,
   so both paths end with allocated orders and an email each.

run() -> NoticeFigures is what bench/run.py calls; the measurement runs in a child
process so its Django settings (this database) never mix with the caller's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# After sys.path, for `python bench/notice_bench.py`.
from bench.figures import NoticeFigures  # noqa: E402
from bench.own_database import IN_PROCESS, child_json, database_env, database_fresh, main  # noqa: E402
from bench.stack import django_setup  # noqa: E402

DB_NAME = "launchday_bench_notices"
UNITS = 100_000
CUSTOMERS = 160_000
CLAIMS = 2_000
TIMEOUT = 900


def run(*, claims: int = CLAIMS) -> NoticeFigures:
    """Create the database, migrate, measure in a child process; return its figures."""
    # The outbox drains and allocator nudges go nowhere: this bench times writing the
    # notices, not sending them (email_bench does that).
    env = database_env(name=DB_NAME, **IN_PROCESS, NOTICE_BENCH_CLAIMS=str(claims))
    database_fresh(name=DB_NAME, env=env, timeout=TIMEOUT)
    figures = NoticeFigures(
        **child_json([str(Path(__file__).resolve()), "--child"], env=env, timeout=TIMEOUT)
    )
    _print(figures)
    return figures


def _print(f: NoticeFigures) -> None:
    print(f"notice bench: {f.units_freed:,} units freed, {f.customers_registered:,} registered")
    print(f"  setup (s)                        {f.setup_seconds:8.2f}")
    print(f"  notices: {f.notified:,} told, {f.held:,} held in {f.notices_seconds:.2f} s")
    print(f"  claim path      ms per order     {f.claim_ms_per_order:8.2f}  ({f.claims:,} orders)")
    print(f"  admission path  ms per order     {f.admission_ms_per_order:8.2f}  (admit only)")
    print(f"  admission + allocator ms/order   {f.admission_allocated_ms_per_order:8.2f}")
    print(f"  invariant problems               {f.problems}")


# --- the measurement, in the child ------------------------------------------------------------


def _build() -> dict:
    import datetime

    from django.db import connection
    from django.utils import timezone

    from bench.stack import tables
    from inventory.models import SKU, Launch, Location, Product
    from inventory.services import stock_receive

    t = tables()
    product = Product.objects.create(code="IP3G", name="iPhone 3G")
    sku = SKU.objects.create(code="IP3G-8GB-BLACK", product=product, name="iPhone 3G 8GB black")
    now = timezone.now()
    launch = Launch.objects.create(
        slug="iphone-3g",
        name="iPhone 3G",
        opens_at=now - datetime.timedelta(hours=1),
        closes_at=now + datetime.timedelta(days=7),
    )
    launch.skus.set([sku])
    online = Location.objects.create(code="ONLINE", kind="online")
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {t.customer} (account_number, name, email, phone, postcode, current_device, "
            "contract_status, marketing_opt_out, created_at) "
            "SELECT 'D' || lpad(g::text, 7, '0'), 'Customer ' || g, 'd' || g || '@example.com', '', 'SW1A 1AA', "
            "'iPhone', 'active', false, now() FROM generate_series(1, %s) g",
            [CUSTOMERS],
        )
        # Registered over the weeks before the launch, one every few seconds, in id order.
        cur.execute(
            "INSERT INTO customers_upgraderegistration (customer_id, launch_id, preferred_sku_id, "
            "preferred_store_id, registered_at) "
            f"SELECT c.id, %s, %s, NULL, now() - interval '20 days' + c.id * interval '3 seconds' FROM {t.customer} c",
            [launch.pk, sku.pk],
        )
        cur.execute("ANALYZE")
    stock_receive(location=online, sku=sku, quantity=UNITS, reference="freed")
    return {"launch": launch, "sku": sku}


def child() -> dict:
    django_setup()
    from customers.models import Customer, Message
    from customers.services.outbox import claim_token_make
    from customers.services.registration import eligibility_cache_warm
    from inventory.models import Location, Stock
    from inventory.services import stock_receive
    from orders.models import ClaimWindow, Order, StockNotice
    from orders.services.admission import order_admit
    from orders.services.allocation import launch_allocate
    from orders.services.notices import stock_notice_claim, stock_notices_open

    claims = int(os.environ.get("NOTICE_BENCH_CLAIMS", CLAIMS))
    t0 = time.perf_counter()
    world = _build()
    launch = world["launch"]
    eligibility_cache_warm(launch=launch)
    setup = time.perf_counter() - t0

    t1 = time.perf_counter()
    result = stock_notices_open(launch_id=launch.pk)
    notices_seconds = time.perf_counter() - t1

    # The earliest-told customers click first; tokens are what their emails carry.
    window = ClaimWindow.objects.get(launch=launch)
    tokens = [
        claim_token_make(notice_id=pk, expires_at=window.closes_at)
        for pk in StockNotice.objects.filter(window=window)
        .order_by("rank")
        .values_list("pk", flat=True)[:claims]
    ]
    t2 = time.perf_counter()
    for token in tokens:
        stock_notice_claim(token=token)
    claim_seconds = time.perf_counter() - t2

    # The ordinary path: customers never told (registered last), admitted one by one, then
    # served by the allocator from units nobody holds.
    stock_receive(
        location=Location.objects.get(kind="online"),
        sku=world["sku"],
        quantity=claims,
        reference="for admission",
    )
    told = set(StockNotice.objects.filter(launch=launch).values_list("customer_id", flat=True))
    untold = [
        account
        for account, pk in Customer.objects.order_by("-pk").values_list("account_number", "pk")[: claims + 10]
        if pk not in told
    ][:claims]
    t3 = time.perf_counter()
    for account in untold:
        order_admit(
            launch=launch.slug,
            customer=account,
            sku="IP3G-8GB-BLACK",
            fulfilment="delivery",
            channel="online",
        )
    admission_seconds = time.perf_counter() - t3
    t4 = time.perf_counter()
    allocated = launch_allocate(launch_id=launch.pk).allocated
    allocation_seconds = time.perf_counter() - t4

    stock = Stock.objects.get()
    orders_allocated = Order.objects.filter(launch=launch, status="allocated").count()
    open_held = sum(w.held for w in ClaimWindow.objects.filter(launch=launch, status="open"))
    problems = []
    if stock.reserved != orders_allocated + open_held:
        problems.append(f"reserved {stock.reserved} != allocated {orders_allocated} + held {open_held}")
    if stock.reserved > stock.on_hand:
        problems.append("oversold")
    if (
        StockNotice.objects.filter(launch=launch).count()
        != Message.objects.filter(kind="stock_notice").count()
    ):
        problems.append("a notice without its email, or an email without its notice")
    return {
        "units_freed": UNITS,
        "customers_registered": CUSTOMERS,
        "setup_seconds": round(setup, 2),
        "notified": result.notified,
        "held": result.held,
        "notices_seconds": round(notices_seconds, 2),
        "claims": len(tokens),
        "claim_ms_per_order": round(claim_seconds * 1000 / max(len(tokens), 1), 3),
        "admitted": len(untold),
        "admission_ms_per_order": round(admission_seconds * 1000 / max(len(untold), 1), 3),
        "admission_allocated_ms_per_order": round(
            (admission_seconds + allocation_seconds) * 1000 / max(len(untold), 1), 3
        ),
        "allocated_after_admission": allocated,
        "problems": problems,
    }


if __name__ == "__main__":
    main(run=run, child=child)
