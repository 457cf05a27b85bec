"""The invariants, checked by SQL on the bench's database after every phase.

Oversold units, acknowledged orders missing, orders beyond a customer's limit, and first
come first served violations, plus the ledger's agreement with stock. Table names come
from the models (bench.stack.tables), so a model's move to another app changes nothing.
"""

from __future__ import annotations

from bench.figures import Invariants
from bench.stack import db, tables


def invariants(acknowledged: list[str], *, after: str) -> Invariants:
    t = tables()
    with db() as conn:
        oversold_rows = conn.execute(
            f"SELECT count(*) FROM {t.stock} WHERE reserved > on_hand OR on_hand < 0 OR reserved < 0"
        ).fetchone()[0]
        # Units given to orders beyond units received into that pool, by the ledger.
        oversold_units = conn.execute(
            f"WITH given AS (SELECT pool_id, sku_id, count(*) AS n FROM {t.order} "
            "  WHERE status IN ('allocated', 'fulfilled') GROUP BY 1, 2), "
            f"received AS (SELECT location_id, sku_id, sum(on_hand_delta) AS n FROM {t.movement} "
            "  GROUP BY 1, 2) "
            "SELECT coalesce(sum(greatest(g.n - coalesce(r.n, 0), 0)), 0) FROM given g "
            "LEFT JOIN received r ON r.location_id = g.pool_id AND r.sku_id = g.sku_id"
        ).fetchone()[0]
        ledger_drift = conn.execute(
            f"SELECT count(*) FROM {t.stock} s LEFT JOIN (SELECT location_id, sku_id, "
            f"sum(on_hand_delta) AS oh, sum(reserved_delta) AS rs FROM {t.movement} GROUP BY 1, 2) m "
            "ON m.location_id = s.location_id AND m.sku_id = s.sku_id "
            "WHERE s.on_hand <> coalesce(m.oh, 0) OR s.reserved <> coalesce(m.rs, 0)"
        ).fetchone()[0]
        # Nothing is fulfilled or cancelled in the bench: reserved must equal allocated orders.
        reserved_mismatch = conn.execute(
            f"SELECT count(*) FROM {t.stock} s LEFT JOIN (SELECT pool_id, sku_id, count(*) AS n "
            f"FROM {t.order} WHERE status = 'allocated' GROUP BY 1, 2) a "
            "ON a.pool_id = s.location_id AND a.sku_id = s.sku_id WHERE s.reserved <> coalesce(a.n, 0)"
        ).fetchone()[0]
        conn.execute("CREATE TEMP TABLE acked (reference text)")
        with conn.cursor().copy("COPY acked (reference) FROM STDIN") as copy:
            for ref in acknowledged:
                copy.write_row((ref,))
        missing = conn.execute(
            "SELECT count(*) FROM acked a WHERE NOT EXISTS "
            f"(SELECT 1 FROM {t.order} o WHERE o.reference = a.reference)"
        ).fetchone()[0]
        acked_duplicates = conn.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM acked GROUP BY reference) d"
        ).fetchone()[0]
        duplicates = conn.execute(
            "SELECT coalesce(sum(d.n - l.per_customer_limit), 0) FROM (SELECT launch_id, customer_id, count(*) AS n "
            f"FROM {t.order} GROUP BY 1, 2) d JOIN {t.launch} l ON l.id = d.launch_id "
            "WHERE d.n > l.per_customer_limit"
        ).fetchone()[0]
        # FCFS: no order allocated while an earlier one of its pool still waits, and
        # waitlist numbers follow sequence order within each pool.
        fcfs_allocated = conn.execute(
            f"WITH first_waiting AS (SELECT launch_id, sku_id, pool_id, min(sequence) AS s FROM {t.order} "
            "  WHERE status IN ('queued', 'waitlisted') GROUP BY 1, 2, 3) "
            f"SELECT count(*) FROM {t.order} o JOIN first_waiting f USING (launch_id, sku_id, pool_id) "
            "WHERE o.status IN ('allocated', 'fulfilled') AND o.sequence > f.s"
        ).fetchone()[0]
        fcfs_waitlist = conn.execute(
            "SELECT count(*) FROM (SELECT wait_number, lag(wait_number) OVER (PARTITION BY launch_id, sku_id, pool_id "
            f"ORDER BY sequence) AS prev FROM {t.order} WHERE wait_number IS NOT NULL) w WHERE w.prev > w.wait_number"
        ).fetchone()[0]
        counts = dict(conn.execute(f"SELECT status, count(*) FROM {t.order} GROUP BY 1").fetchall())
    return Invariants(
        after=after,
        oversold_units=oversold_units + oversold_rows,
        acknowledged_missing=missing,
        duplicate_orders=duplicates,
        fcfs_violations=fcfs_allocated + fcfs_waitlist,
        ledger_drift_rows=ledger_drift,
        reserved_vs_allocated_mismatch=reserved_mismatch,
        acknowledged=len(acknowledged),
        acknowledged_twice=acked_duplicates,
        orders_by_status=counts,
    )


def orders_per_customer(*, launch_id: int, first: int, count: int) -> tuple[int, int]:
    """(customers without an order, customers with two or more) among D<first>..D<first+count-1>."""
    t = tables()
    with db() as conn:
        row = conn.execute(
            f"SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM ("
            f"  SELECT c.id, (SELECT count(*) FROM {t.order} o WHERE o.customer_id = c.id AND o.launch_id = %s) AS n"
            f"  FROM {t.customer} c WHERE c.account_number = ANY(%s)) x",
            [launch_id, [f"D{n:07d}" for n in range(first, first + count)]],
        ).fetchone()
    return int(row[0]), int(row[1])
