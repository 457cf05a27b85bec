"""The allocator alone, in process, on a queue of orders inserted by SQL."""

from __future__ import annotations

import time

from bench.figures import AllocationRun
from bench.stack import ALLOC_LAUNCH, db, tables


def allocation_bench(*, orders: int = 100_000) -> AllocationRun:
    """Time launch_allocate on a queue of `orders` orders.

    Its own launch (closed, so beat's safety net leaves it alone) and its own SKUs (so its
    stock rows are not the admission launch's): about 75% of the orders find a unit, the
    rest are waitlisted, half delivery from the online pool, half collect from 20 stores.
    Customers D0000001..D<orders> are kept for it: the load phases never use them.
    """
    from orders.services.allocation import launch_allocate

    t = tables()
    with db() as conn:
        product_id = conn.execute(
            f"INSERT INTO {t.product} (code, name) VALUES ('BENCH', 'Bench phone') RETURNING id"
        ).fetchone()[0]
        sku_ids = [
            conn.execute(
                f"INSERT INTO {t.sku} (code, name, product_id) VALUES (%s, %s, %s) RETURNING id",
                [f"BENCH-{i}", f"Bench phone {i}", product_id],
            ).fetchone()[0]
            for i in range(3)
        ]
        launch_id = conn.execute(
            f"INSERT INTO {t.launch} (slug, name, opens_at, closes_at, per_customer_limit, auto_apply_plans, "
            "auto_apology, collect_hold_days, created_at) VALUES (%s, 'Bench allocation', now() - interval '2 days', "
            "now() - interval '1 day', 1, false, false, 3, now()) RETURNING id",
            [ALLOC_LAUNCH],
        ).fetchone()[0]
        for sku_id in sku_ids:
            conn.execute(
                f"INSERT INTO {t.launch_skus} (launch_id, sku_id) VALUES (%s, %s)", [launch_id, sku_id]
            )
        online = conn.execute(f"SELECT id FROM {t.location} WHERE kind = 'online'").fetchone()[0]
        stores = conn.execute(
            f"SELECT s.id, l.id FROM {t.store} s JOIN {t.location} l ON l.store_id = s.id ORDER BY s.code"
        ).fetchall()
        delivery = orders // 2
        collect = orders - delivery
        online_units = int(delivery * 0.9 / 3)
        store_units = int(collect * 0.6 / 3 / len(stores))
        for location, units in [(online, online_units)] + [(loc, store_units) for _, loc in stores]:
            for sku_id in sku_ids:
                conn.execute(
                    f"INSERT INTO {t.stock} (location_id, sku_id, on_hand, reserved, in_transit) "
                    "VALUES (%s, %s, %s, 0, 0)",
                    [location, sku_id, units],
                )
                conn.execute(
                    f"INSERT INTO {t.movement} (location_id, sku_id, kind, on_hand_delta, reserved_delta, "
                    "in_transit_delta, reason, reference, created_at) "
                    "VALUES (%s, %s, 'receipt', %s, 0, 0, 'Bench stock', 'BENCH', now())",
                    [location, sku_id, units],
                )
        store_ids = [s for s, _ in stores]
        store_locs = [loc for _, loc in stores]
        conn.execute(
            f"INSERT INTO {t.order} (reference, launch_id, customer_id, slot, sku_id, channel, fulfilment, store_id, "
            "pool_id, partner_id, status, idempotency_scope, idempotency_key, request_fingerprint, created_at) "
            "SELECT 'BA' || lpad(i::text, 10, '0'), %(launch)s, c.id, 1, (%(skus)s::bigint[])[1 + i %% 3], 'online', "
            "CASE WHEN i %% 2 = 0 THEN 'delivery' ELSE 'collect' END, "
            "CASE WHEN i %% 2 = 0 THEN NULL ELSE (%(stores)s::bigint[])[1 + (i / 2) %% %(n)s] END, "
            "CASE WHEN i %% 2 = 0 THEN %(online)s ELSE (%(locs)s::bigint[])[1 + (i / 2) %% %(n)s] END, "
            "NULL, 'queued', '', NULL, '', now() "
            "FROM generate_series(1, %(orders)s) AS i "
            f"JOIN {t.customer} c ON c.account_number = 'D' || lpad(i::text, 7, '0') ORDER BY i",
            {
                "launch": launch_id,
                "skus": sku_ids,
                "stores": store_ids,
                "locs": store_locs,
                "n": len(stores),
                "online": online,
                "orders": orders,
            },
        )
        conn.execute(f"ANALYZE {t.order}")
        queued = conn.execute(
            f"SELECT count(*) FROM {t.order} WHERE launch_id = %s AND status = 'queued'", [launch_id]
        ).fetchone()[0]
    started = time.perf_counter()
    result = launch_allocate(launch_id=launch_id)
    seconds = time.perf_counter() - started
    return AllocationRun(
        queue=queued,
        allocated=result.allocated,
        waitlisted=result.waitlisted,
        batches=result.batches,
        seconds=seconds,
    )
