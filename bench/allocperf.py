"""Allocator timing, in process, on its own database (launchday_allocperf).

    .venv/bin/python bench/allocperf.py [--setup] [--shape queue|waitlists|both] [--orders N]

Not a test and not part of `make bench`: a quick before/after for allocator changes.

- queue: bench/run.py's allocation phase. N queued orders (default 100,000) of one launch,
  3 SKUs, half delivery from the online pool, half collect from 20 stores, stock for
  about 75% of them; times launch_allocate.
- waitlists: the intake shape. 1,500 pools (500 stores x 3 SKUs) whose orders all wait
  (wait numbers and PoolState as the allocator leaves them), then stock for half of each
  waitlist arrives; times launch_allocate serving the waitlists.

--setup drops, creates and migrates the database and adds 500 stores and customers.
Each run empties the launch tables first, so runs are comparable.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.own_database import IN_PROCESS, database_env, database_recreate  # noqa: E402

DB_NAME = "launchday_allocperf"
STORES = 500
CUSTOMERS = 200_000

# This process is the bench: the outbox nudge goes to an in-memory broker nobody reads.
_env = database_env(name=DB_NAME, **IN_PROCESS)
os.environ.clear()
os.environ.update(_env)


def setup() -> None:
    database_recreate(DB_NAME)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO inventory_location (code, kind) VALUES ('ONLINE', 'online'), ('CENTRAL', 'central')"
        )
        cur.execute(
            "INSERT INTO stores_store (code, name, region, opens_at_launch, is_active) "
            "SELECT 'S' || lpad(g::text, 3, '0'), 'Store ' || g, '', '08:02', true FROM generate_series(1, %s) g",
            [STORES],
        )
        cur.execute(
            "INSERT INTO inventory_location (code, kind, store_id) SELECT code, 'store', id FROM stores_store"
        )
        cur.execute(
            "INSERT INTO customers_customer (account_number, name, email, phone, postcode, current_device, "
            "contract_status, marketing_opt_out, created_at) "
            "SELECT 'D' || lpad(g::text, 7, '0'), 'Customer ' || g, 'd' || g || '@example.com', '', 'SW1A 1AA', "
            "'iPhone', 'active', false, now() FROM generate_series(1, %s) g",
            [CUSTOMERS],
        )
        cur.execute("ANALYZE")


def reset(cur) -> tuple[int, list[int], int]:
    """Empty the launch tables; a fresh launch with 3 SKUs. Returns (launch, skus, online)."""
    cur.execute(
        "TRUNCATE customers_message, orders_poolstate, orders_order, inventory_stockmovement, inventory_stock, "
        "inventory_launch_skus, inventory_launch, inventory_sku, inventory_product CASCADE"
    )
    cur.execute("INSERT INTO inventory_product (code, name) VALUES ('BENCH', 'Bench phone') RETURNING id")
    product = cur.fetchone()[0]
    skus = []
    for i in range(3):
        cur.execute(
            "INSERT INTO inventory_sku (code, name, product_id) VALUES (%s, %s, %s) RETURNING id",
            [f"BENCH-{i}", f"Bench {i}", product],
        )
        skus.append(cur.fetchone()[0])
    cur.execute(
        "INSERT INTO inventory_launch (slug, name, opens_at, closes_at, per_customer_limit, auto_apply_plans, "
        "auto_apology, collect_hold_days, created_at) VALUES ('allocperf', 'Allocperf', now() - interval '2 days', "
        "now() - interval '1 day', 1, false, false, 3, now()) RETURNING id"
    )
    launch = cur.fetchone()[0]
    for sku in skus:
        cur.execute("INSERT INTO inventory_launch_skus (launch_id, sku_id) VALUES (%s, %s)", [launch, sku])
    cur.execute("SELECT id FROM inventory_location WHERE kind = 'online'")
    return launch, skus, cur.fetchone()[0]


def add_stock(cur, rows: list[tuple[int, int, int]]) -> None:
    """(location, sku, units) received: level and ledger, in bulk."""
    locs, skus, units = (list(c) for c in zip(*rows, strict=True))
    cur.execute(
        "INSERT INTO inventory_stock (location_id, sku_id, on_hand, reserved, in_transit) "
        "SELECT l, s, u, 0, 0 FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS t(l, s, u) "
        "ON CONFLICT (location_id, sku_id) DO UPDATE SET on_hand = inventory_stock.on_hand + excluded.on_hand",
        [locs, skus, units],
    )
    cur.execute(
        "INSERT INTO inventory_stockmovement (location_id, sku_id, kind, on_hand_delta, reserved_delta, "
        "in_transit_delta, reason, reference, created_at) "
        "SELECT l, s, 'receipt', u, 0, 0, 'Bench stock', 'BENCH', now() "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS t(l, s, u)",
        [locs, skus, units],
    )


def shape_queue(cur, orders: int, prior: int = 0) -> int:
    """bench/run.py's allocation_bench, on 20 stores, after `prior` fulfilled orders of an
    earlier launch (make bench's table holds the load phases' orders before this one's)."""
    launch, skus, online = reset(cur)
    if prior:
        cur.execute(
            "INSERT INTO inventory_launch (slug, name, opens_at, closes_at, per_customer_limit, auto_apply_plans, "
            "auto_apology, collect_hold_days, created_at) VALUES ('earlier', 'Earlier', now() - interval '9 days', "
            "now() - interval '8 days', 1, false, false, 3, now()) RETURNING id"
        )
        earlier = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO orders_order (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, "
            "pool_id, status, idempotency_scope, request_fingerprint, created_at) "
            "SELECT 'E' || lpad(c.n::text, 9, '0'), %s, c.id, 1 + c.n / 200000, %s, 'online', 'delivery', %s, "
            "'fulfilled', '', '', now() FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n "
            "FROM customers_customer) c0 CROSS JOIN LATERAL generate_series(0, %s / 200000) AS k "
            "CROSS JOIN LATERAL (SELECT c0.id, c0.n + k * 200000 AS n) c WHERE c.n < %s",
            [earlier, skus[0], online, prior, prior],
        )
    cur.execute(
        "SELECT s.id, l.id FROM stores_store s JOIN inventory_location l ON l.store_id = s.id "
        "ORDER BY s.code LIMIT 20"
    )
    stores = cur.fetchall()
    delivery = orders // 2
    collect = orders - delivery
    online_units = int(delivery * 0.9 / 3)
    store_units = int(collect * 0.6 / 3 / len(stores))
    add_stock(
        cur,
        [
            (loc, sku, units)
            for loc, units in [(online, online_units)] + [(loc, store_units) for _, loc in stores]
            for sku in skus
        ],
    )
    cur.execute(
        "INSERT INTO orders_order (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, store_id, "
        "pool_id, partner_id, status, idempotency_scope, idempotency_key, request_fingerprint, created_at) "
        "SELECT 'BA' || lpad(i::text, 10, '0'), %(launch)s, c.id, 1, (%(skus)s::bigint[])[1 + i %% 3], 'online', "
        "CASE WHEN i %% 2 = 0 THEN 'delivery' ELSE 'collect' END, "
        "CASE WHEN i %% 2 = 0 THEN NULL ELSE (%(stores)s::bigint[])[1 + (i / 2) %% %(n)s] END, "
        "CASE WHEN i %% 2 = 0 THEN %(online)s ELSE (%(locs)s::bigint[])[1 + (i / 2) %% %(n)s] END, "
        "NULL, 'queued', '', NULL, '', now() "
        "FROM generate_series(1, %(orders)s) AS i "
        "JOIN customers_customer c ON c.account_number = 'D' || lpad(i::text, 7, '0') ORDER BY i",
        {
            "launch": launch,
            "skus": skus,
            "stores": [s for s, _ in stores],
            "locs": [loc for _, loc in stores],
            "n": len(stores),
            "online": online,
            "orders": orders,
        },
    )
    cur.execute("ANALYZE")
    return launch


def shape_waitlists(cur, orders: int) -> int:
    """Every order of 1,500 pools waits; then stock for half of each waitlist arrives."""
    launch, skus, online = reset(cur)
    cur.execute(
        "WITH c AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM customers_customer), "
        "st AS (SELECT s.id AS store_id, l.id AS location_id, row_number() OVER (ORDER BY s.code) - 1 AS i "
        "       FROM stores_store s JOIN inventory_location l ON l.store_id = s.id) "
        "INSERT INTO orders_order (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, "
        "store_id, pool_id, status, idempotency_scope, request_fingerprint, created_at) "
        "SELECT 'W' || lpad(c.n::text, 9, '0'), %s, c.id, 1, (%s::bigint[])[1 + c.n %% 3], 'online', "
        "CASE WHEN c.n %% 5 < 2 THEN 'delivery' ELSE 'collect' END, "
        "CASE WHEN c.n %% 5 < 2 THEN NULL ELSE st.store_id END, "
        "CASE WHEN c.n %% 5 < 2 THEN %s ELSE st.location_id END, 'queued', '', '', now() "
        "FROM c JOIN st ON st.i = (c.n / 3) %% %s WHERE c.n <= %s ORDER BY c.n",
        [launch, skus, online, STORES, orders],
    )
    cur.execute(
        "UPDATE orders_order o SET status = 'waitlisted', wait_number = w.rn FROM ("
        "  SELECT sequence, row_number() OVER (PARTITION BY pool_id, sku_id ORDER BY sequence) AS rn "
        "  FROM orders_order WHERE launch_id = %s) w WHERE o.sequence = w.sequence",
        [launch],
    )
    cur.execute(
        "INSERT INTO orders_poolstate (launch_id, sku_id, pool_id, waitlisted_total, served_through, waiting) "
        "SELECT launch_id, sku_id, pool_id, count(*), 0, count(*) FROM orders_order WHERE launch_id = %s "
        "GROUP BY launch_id, sku_id, pool_id",
        [launch],
    )
    cur.execute("SELECT pool_id, sku_id, (count(*) + 1) / 2 FROM orders_order GROUP BY 1, 2")
    add_stock(cur, cur.fetchall())
    cur.execute("ANALYZE")
    return launch


def check(cur, launch: int, *, waitlisted_messages: bool) -> list[str]:
    problems = []
    cur.execute(
        "SELECT count(*) FROM inventory_stock s LEFT JOIN (SELECT pool_id, sku_id, count(*) AS n "
        "FROM orders_order WHERE status = 'allocated' GROUP BY 1, 2) a "
        "ON a.pool_id = s.location_id AND a.sku_id = s.sku_id "
        "WHERE s.reserved <> coalesce(a.n, 0) OR s.reserved > s.on_hand"
    )
    if n := cur.fetchone()[0]:
        problems.append(f"{n} stock rows disagree with allocated orders")
    cur.execute(
        "SELECT count(*) FROM inventory_stock s LEFT JOIN (SELECT location_id, sku_id, "
        "sum(on_hand_delta) AS oh, sum(reserved_delta) AS rs FROM inventory_stockmovement GROUP BY 1, 2) m "
        "ON m.location_id = s.location_id AND m.sku_id = s.sku_id "
        "WHERE s.on_hand <> coalesce(m.oh, 0) OR s.reserved <> coalesce(m.rs, 0)"
    )
    if n := cur.fetchone()[0]:
        problems.append(f"{n} stock rows disagree with the ledger")
    cur.execute(
        "WITH first_waiting AS (SELECT sku_id, pool_id, min(sequence) AS s FROM orders_order "
        "  WHERE status IN ('queued', 'waitlisted') GROUP BY 1, 2) "
        "SELECT count(*) FROM orders_order o JOIN first_waiting f USING (sku_id, pool_id) "
        "WHERE o.status = 'allocated' AND o.sequence > f.s"
    )
    if n := cur.fetchone()[0]:
        problems.append(f"{n} FCFS violations")
    cur.execute(
        "SELECT count(*) FROM orders_order o WHERE o.status = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM customers_message m WHERE m.order_reference = o.reference AND m.dedupe_key = "
        "CASE o.status WHEN 'allocated' THEN 'allocated:' ELSE 'received:' END || o.reference)",
        [["allocated", "waitlisted"] if waitlisted_messages else ["allocated"]],
    )
    if n := cur.fetchone()[0]:
        problems.append(f"{n} orders without their message")
    cur.execute("SELECT count(*) - count(DISTINCT dedupe_key) FROM customers_message")
    if n := cur.fetchone()[0]:
        problems.append(f"{n} events with two messages")
    cur.execute(
        "SELECT count(*) FROM orders_poolstate ps WHERE ps.waiting <> (SELECT count(*) FROM orders_order o "
        "WHERE o.status = 'waitlisted' AND o.sku_id = ps.sku_id AND o.pool_id = ps.pool_id) "
        "OR ps.served_through <> coalesce((SELECT max(wait_number) FROM orders_order o WHERE o.status = "
        "'allocated' AND o.sku_id = ps.sku_id AND o.pool_id = ps.pool_id), 0)"
    )
    if n := cur.fetchone()[0]:
        problems.append(f"{n} pool states disagree with orders")
    return problems


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend has used (less noisy than wall time on a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", action="store_true")
    parser.add_argument("--shape", default="both", choices=["queue", "waitlists", "both"])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--prior", type=int, default=0, help="orders of an earlier launch first (queue)")
    parser.add_argument("--impl", help="path of another allocation.py to time instead")
    parser.add_argument("--statements", action="store_true", help="time per SQL statement")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the timed call")
    args = parser.parse_args()
    if args.setup:
        setup()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from orders.services.allocation import launch_allocate

    if args.impl:  # an older allocation.py, for before/after figures on the same machine
        import importlib.util

        spec = importlib.util.spec_from_file_location("allocation_under_test", args.impl)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        launch_allocate = module.launch_allocate

    shapes = ["queue", "waitlists"] if args.shape == "both" else [args.shape]
    for shape in shapes:
        with connection.cursor() as cur:
            if shape == "queue":
                launch = shape_queue(cur, args.orders, args.prior)
            else:
                launch = shape_waitlists(cur, args.orders)
            cur.execute("CHECKPOINT")
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
        pg_cpu, py_cpu = backend_cpu(backend), time.process_time()
        timings: dict[str, list[float]] = {}

        def timed(execute, sql, params, many, context, timings=timings):
            t0 = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                key = " ".join(sql.split())[:90]
                timings.setdefault(key, []).append(time.perf_counter() - t0)

        commit = connection._commit

        def timed_commit(commit=commit, timings=timings):
            t0 = time.perf_counter()
            try:
                return commit()
            finally:
                timings.setdefault("COMMIT", []).append(time.perf_counter() - t0)

        connection._commit = timed_commit
        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            result = launch_allocate(launch_id=launch)
        del connection._commit
        seconds = time.perf_counter() - started
        pg_cpu, py_cpu = backend_cpu(backend) - pg_cpu, time.process_time() - py_cpu
        if profiler:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        if args.statements:
            for key, spent in sorted(timings.items(), key=lambda kv: -sum(kv[1]))[:12]:
                print(f"  {sum(spent):6.2f} s {len(spent):4d}x  {key}")
        with connection.cursor() as cur:
            problems = check(cur, launch, waitlisted_messages=shape == "queue")
        moved = result.allocated + result.waitlisted
        print(
            f"{shape}: {moved:,} orders ({result.allocated:,} allocated, {result.waitlisted:,} waitlisted) "
            f"in {result.batches} batches of <= {settings.ALLOCATOR_BATCH_SIZE} in {seconds:.2f} s = "
            f"{moved / seconds:,.0f} orders/s, {result.allocated / seconds:,.0f} allocated/s; "
            f"CPU: Python {py_cpu:.2f} s, PostgreSQL backend {pg_cpu:.2f} s; "
            f"{'; '.join(problems) or 'invariants hold'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
