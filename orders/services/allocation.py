"""The allocator: a single writer per launch that turns queued orders into allocations.

It holds a transaction-scoped advisory lock per launch, so any number of workers may call
it and only one allocates at a time. Each batch, in one transaction: lock the launch's
stock rows (primary-key order), serve each pool's waitlist by wait_number, then the
oldest queued orders by sequence; write orders, stock levels, the ledger and the
customers' messages in bulk. Units go strictly first come, first served per pool
(launch, SKU, location): an order is allocated only if nobody earlier in its pool waits.

On PostgreSQL a batch costs a fixed number of statements whatever its size or number of
pools: decisions are made in Python over tuples, and each table gets one set-based write
(arrays through unnest). Nearly all remaining time is PostgreSQL's own per-row work: a
non-HOT order UPDATE (status is indexed), the outbox INSERT and its indexes, and the
deferred foreign-key checks of the outbox rows at COMMIT.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from customers.models import Message
from inventory.models import Launch, Stock, StockMovement
from inventory.services import stock_rows_for_update
from orders.models import Order, PoolState
from orders.services.admission import ADMISSION_LOCK

ALLOCATOR_LOCK = 7302


@dataclass
class AllocationResult:
    allocated: int = 0
    waitlisted: int = 0
    batches: int = 0


def _lock(lock_class: int, launch_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [lock_class, launch_id])


def admission_watermark(*, launch_id: int) -> int:
    """The highest sequence the allocator may serve: every order at or below it is settled.

    Taking the admission lock exclusively waits for admissions in flight (they hold it
    shared) and is released at once; admissions are paused only for that instant.
    """
    with transaction.atomic():
        _lock(ADMISSION_LOCK, launch_id)
        return Order.objects.filter(launch_id=launch_id).aggregate(m=Max("sequence"))["m"] or 0


def launch_allocate(*, launch_id: int, batch_size: int | None = None) -> AllocationResult:
    """Serve waitlists and queued orders of one launch until nothing more can move."""
    batch_size = batch_size or settings.ALLOCATOR_BATCH_SIZE
    watermark = admission_watermark(launch_id=launch_id)
    result = AllocationResult()
    # Every queued order up to `after` has been settled by an earlier batch of this run (in
    # sequence order, under the lock), so the next batch starts past it: the queue index
    # still holds their dead entries until vacuum, and skipping them by key keeps each
    # batch's read as cheap as the first.
    after = 0
    while True:
        with transaction.atomic():
            _lock(ALLOCATOR_LOCK, launch_id)
            moved, after = _allocate_batch(
                launch_id=launch_id, watermark=watermark, after=after, batch_size=batch_size, result=result
            )
        if not moved:
            break
        result.batches += 1
    if result.waitlisted:
        _apologise_if_sold_out(launch_id=launch_id)
    return result


def _apologise_if_sold_out(*, launch_id: int) -> None:
    """Orders had to wait: if the online pool is empty for every SKU, the launch has sold
    out online, and head office may have asked for the apology to start by itself.

    The campaign is written in the allocator's lock and transaction, so it is as durable
    as the sell-out it reports; starting it again adds nobody twice.
    """
    launch = Launch.objects.get(pk=launch_id)
    if not launch.auto_apology:
        return
    from customers.services.campaigns import launch_sold_out_notify
    from inventory.selectors import location_online_pool

    with transaction.atomic():
        _lock(ALLOCATOR_LOCK, launch_id)
        online = location_online_pool()
        left = sum(
            max(stock.on_hand - stock.reserved, 0)
            for stock in Stock.objects.filter(location=online, sku__in=launch.skus.all())
        )
        if left == 0:
            launch_sold_out_notify(launch=launch)


def _allocate_batch(
    *, launch_id: int, watermark: int, after: int, batch_size: int, result: AllocationResult
) -> tuple[int, int]:
    """One batch; returns (orders moved, last queued sequence read).

    Precondition: the allocator lock for this launch is held.

    Decisions are made in Python over plain tuples; every write is one set-based
    statement per table, whatever the number of orders or pools in the batch.
    """
    launch = Launch.objects.only("collect_hold_days").get(pk=launch_id)
    now = timezone.now()
    queued = list(
        Order.objects.filter(
            launch_id=launch_id, status=Order.Status.QUEUED, sequence__gt=after, sequence__lte=watermark
        )
        .order_by("sequence")
        .values_list("sequence", "sku_id", "pool_id")[:batch_size]
    )
    # (sku, pool) -> [waitlisted_total, served_through, waiting]; `known` are stored rows.
    states = {
        (sku, pool): [total, served, waiting]
        for sku, pool, total, served, waiting in PoolState.objects.filter(launch_id=launch_id).values_list(
            "sku_id", "pool_id", "waitlisted_total", "served_through", "waiting"
        )
    }
    pools = {(sku, pool) for _, sku, pool in queued} | {k for k, s in states.items() if s[2] > 0}
    last = queued[-1][0] if queued else after
    if not pools:
        return 0, last
    stock = stock_rows_for_update(pairs=[(pool, sku) for sku, pool in pools])
    available = {}
    for sku, pool in pools:
        row = stock[(pool, sku)]
        available[(sku, pool)] = row.on_hand - row.reserved

    # Each change: (sequence, wait_number or None, position or None); position None = allocated.
    changes: list[tuple[int, int | None, int | None]] = []
    served: dict[tuple[int, int], int] = defaultdict(int)
    changed: set[tuple[int, int]] = set()

    # Waitlists first: they are older than anything still queued in the same pool.
    wanted = {k: available[k] for k, s in states.items() if s[2] > 0 and available.get(k, 0) > 0}
    for sequence, sku_id, pool_id, wait_number in _waitlist_heads(launch_id=launch_id, wanted=wanted):
        key = (sku_id, pool_id)
        state = states[key]
        changes.append((sequence, None, None))
        if wait_number > state[1]:
            state[1] = wait_number
        state[2] -= 1
        available[key] -= 1
        served[key] += 1
        changed.add(key)

    allocated = len(changes)
    for sequence, sku_id, pool_id in queued:
        key = (sku_id, pool_id)
        state = states.get(key)
        if state is None:
            state = states[key] = [0, 0, 0]
        changed.add(key)
        if state[2] == 0 and available[key] > 0:
            available[key] -= 1
            served[key] += 1
            changes.append((sequence, None, None))
            allocated += 1
        else:
            state[0] += 1
            state[2] += 1
            changes.append((sequence, state[0], state[2]))

    if not changes:
        return 0, last
    _write_orders_and_messages(launch=launch, now=now, changes=changes)
    _write_stock(launch_id=launch_id, served=served)
    _write_pool_states(launch_id=launch_id, states={k: states[k] for k in changed})
    _nudge_outbox()
    result.allocated += allocated
    result.waitlisted += len(changes) - allocated
    return len(changes), last


def _waitlist_heads(*, launch_id: int, wanted: dict[tuple[int, int], int]) -> list[tuple[int, int, int, int]]:
    """The first `n` waitlisted orders of each (sku, pool) in `wanted`, by wait number.

    On PostgreSQL one statement for every pool (a LATERAL top-n per pool, each an index
    range scan of order_waitlisted), not one query per pool.
    """
    if not wanted:
        return []
    if connection.vendor == "postgresql":
        keys = list(wanted)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT w.sequence, p.sku_id, p.pool_id, w.wait_number "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS p(sku_id, pool_id, n) "
                "CROSS JOIN LATERAL (SELECT o.sequence, o.wait_number FROM orders_order o "
                "  WHERE o.launch_id = %s AND o.sku_id = p.sku_id AND o.pool_id = p.pool_id "
                "  AND o.status = 'waitlisted' ORDER BY o.wait_number LIMIT p.n) AS w",
                [[k[0] for k in keys], [k[1] for k in keys], [wanted[k] for k in keys], launch_id],
            )
            return cursor.fetchall()
    rows = []
    for (sku_id, pool_id), n in wanted.items():
        rows += [
            (sequence, sku_id, pool_id, wait_number)
            for sequence, wait_number in Order.objects.filter(
                launch_id=launch_id, sku_id=sku_id, pool_id=pool_id, status=Order.Status.WAITLISTED
            )
            .order_by("wait_number")
            .values_list("sequence", "wait_number")[:n]
        ]
    return rows


# One statement for every order of a batch and its outbox row: the UPDATE returns what the
# message needs (reference, customer), so the INSERT reads no order row again. An allocated
# order keeps the wait number it had (positions count from served_through). The bounds
# let a merge join start its primary-key scan at the batch, not at the table's first order.
_ORDERS_AND_MESSAGES_SQL = """
WITH v AS (
  SELECT * FROM unnest(%(seq)s::bigint[], %(wait)s::int[], %(pos)s::int[]) AS v(sequence, wait_number, position)
), u AS (
  UPDATE orders_order o SET
    status = CASE WHEN v.position IS NULL THEN 'allocated' ELSE 'waitlisted' END,
    wait_number = COALESCE(v.wait_number, o.wait_number),
    allocated_at = CASE WHEN v.position IS NULL THEN %(now)s ELSE o.allocated_at END,
    collect_by = CASE WHEN v.position IS NULL AND o.fulfilment = 'collect' THEN %(collect_by)s
                 ELSE o.collect_by END
  FROM v WHERE o.sequence = v.sequence AND o.sequence BETWEEN %(lo)s AND %(hi)s
  RETURNING o.sequence, o.reference, o.customer_id, o.launch_id, v.position
)
INSERT INTO customers_message (kind, dedupe_key, customer_id, order_id, launch_id, context,
  message_id, status, attempts, last_error, created_at)
SELECT
  CASE WHEN u.position IS NULL THEN %(allocated_kind)s ELSE %(received_kind)s END,
  CASE WHEN u.position IS NULL THEN 'allocated:' ELSE 'received:' END || u.reference,
  u.customer_id, u.sequence, u.launch_id,
  CASE WHEN u.position IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('position', u.position) END,
  gen_random_uuid(), 'pending', 0, '', %(now)s
FROM u ORDER BY u.sequence
ON CONFLICT (dedupe_key) DO NOTHING
"""


def _write_orders_and_messages(*, launch: Launch, now, changes) -> None:
    """Orders allocated or waitlisted, and their outbox rows, in the allocator's transaction."""
    collect_by = now + datetime.timedelta(days=launch.collect_hold_days)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _ORDERS_AND_MESSAGES_SQL,
                {
                    "seq": [c[0] for c in changes],
                    "wait": [c[1] for c in changes],
                    "pos": [c[2] for c in changes],
                    "lo": min(c[0] for c in changes),
                    "hi": max(c[0] for c in changes),
                    "now": now,
                    "collect_by": collect_by,
                    "allocated_kind": Message.Kind.ALLOCATED,
                    "received_kind": Message.Kind.ORDER_RECEIVED,
                },
            )
        return
    allocated = [c[0] for c in changes if c[2] is None]
    waitlisted = [c for c in changes if c[2] is not None]
    Order.objects.filter(pk__in=allocated, fulfilment=Order.Fulfilment.DELIVERY).update(
        status=Order.Status.ALLOCATED, allocated_at=now
    )
    Order.objects.filter(pk__in=allocated, fulfilment=Order.Fulfilment.COLLECT).update(
        status=Order.Status.ALLOCATED, allocated_at=now, collect_by=collect_by
    )
    Order.objects.bulk_update(
        [Order(sequence=s, status=Order.Status.WAITLISTED, wait_number=n) for s, n, _ in waitlisted],
        ["status", "wait_number"],
        batch_size=500,
    )
    orders = {
        o.sequence: o
        for o in Order.objects.filter(pk__in=[c[0] for c in changes]).only(
            "sequence", "reference", "customer_id", "launch_id"
        )
    }
    Message.objects.bulk_create(
        [
            Message(
                kind=Message.Kind.ALLOCATED if p is None else Message.Kind.ORDER_RECEIVED,
                dedupe_key=f"{'allocated' if p is None else 'received'}:{orders[s].reference}",
                customer_id=orders[s].customer_id,
                order_id=s,
                launch_id=orders[s].launch_id,
                context={} if p is None else {"position": p},
            )
            for s, _, p in changes
        ],
        ignore_conflicts=True,
        batch_size=500,
    )


def _write_stock(*, launch_id: int, served: dict[tuple[int, int], int]) -> None:
    """Reserve the served units and write one ledger row per pool for this batch."""
    served = {k: n for k, n in served.items() if n}
    if not served:
        return
    reason = "Allocated to waiting orders in sequence order"
    reference = f"allocator:launch-{launch_id}"
    if connection.vendor == "postgresql":
        keys = sorted(served, key=lambda k: (k[1], k[0]))
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH v AS (SELECT * FROM unnest(%(loc)s::bigint[], %(sku)s::bigint[], %(n)s::int[]) "
                "  AS v(location_id, sku_id, n)), "
                "s AS (UPDATE inventory_stock s SET reserved = s.reserved + v.n FROM v "
                "  WHERE s.location_id = v.location_id AND s.sku_id = v.sku_id) "
                "INSERT INTO inventory_stockmovement (location_id, sku_id, kind, on_hand_delta, reserved_delta, "
                "in_transit_delta, reason, reference, created_at) "
                "SELECT v.location_id, v.sku_id, %(kind)s, 0, v.n, 0, %(reason)s, %(reference)s, %(now)s FROM v",
                {
                    "loc": [k[1] for k in keys],
                    "sku": [k[0] for k in keys],
                    "n": [served[k] for k in keys],
                    "kind": StockMovement.Kind.ALLOCATION,
                    "reason": reason,
                    "reference": reference,
                    "now": timezone.now(),
                },
            )
        return
    for (sku_id, pool_id), count in served.items():
        Stock.objects.filter(location_id=pool_id, sku_id=sku_id).update(reserved=F("reserved") + count)
    StockMovement.objects.bulk_create(
        [
            StockMovement(
                location_id=pool_id,
                sku_id=sku_id,
                kind=StockMovement.Kind.ALLOCATION,
                reserved_delta=count,
                reason=reason,
                reference=reference,
            )
            for (sku_id, pool_id), count in served.items()
        ]
    )


def _write_pool_states(*, launch_id: int, states: dict[tuple[int, int], list[int]]) -> None:
    """Upsert the pools this batch touched: one INSERT ... ON CONFLICT, not a CASE per row."""
    if not states:
        return
    if connection.vendor == "postgresql":
        keys = list(states)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO orders_poolstate (launch_id, sku_id, pool_id, waitlisted_total, served_through, "
                "waiting) SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[]) "
                "ON CONFLICT (launch_id, sku_id, pool_id) DO UPDATE SET "
                "waitlisted_total = excluded.waitlisted_total, served_through = excluded.served_through, "
                "waiting = excluded.waiting",
                [launch_id]
                + [[k[0] for k in keys], [k[1] for k in keys]]
                + [[states[k][i] for k in keys] for i in range(3)],
            )
        return
    for (sku_id, pool_id), (total, served, waiting) in states.items():
        PoolState.objects.update_or_create(
            launch_id=launch_id,
            sku_id=sku_id,
            pool_id=pool_id,
            defaults={"waitlisted_total": total, "served_through": served, "waiting": waiting},
        )


def _nudge_outbox() -> None:
    try:
        from customers.services.outbox import outbox_nudge
    except ImportError:  # the sender is optional for the allocator's own correctness
        return
    transaction.on_commit(outbox_nudge)


@transaction.atomic
def order_cancel(*, order: Order, reason: str = "", user=None) -> Order:
    """Cancel a queued, waitlisted or allocated order, releasing an allocated unit.

    Takes the allocator lock, so it never races an allocator batch over the same order.
    The released unit goes to the next waiting order of the pool on the next run.
    """
    from orders.services.status import order_transition

    _lock(ALLOCATOR_LOCK, order.launch_id)
    order.refresh_from_db()
    was = order.status
    order_transition(order=order, to=Order.Status.CANCELLED)
    if was == Order.Status.WAITLISTED:
        PoolState.objects.filter(
            launch_id=order.launch_id, sku_id=order.sku_id, pool_id=order.pool_id
        ).update(waiting=F("waiting") - 1)
    elif was == Order.Status.ALLOCATED:
        from inventory.services import StockChange, stock_apply

        stock_apply(
            changes=[
                StockChange(
                    location=order.pool,
                    sku=order.sku,
                    kind=StockMovement.Kind.RELEASE,
                    reserved_delta=-1,
                    reason=reason or "Order cancelled",
                    reference=order.reference,
                )
            ],
            user=user,
        )
    from orders.services.admission import allocation_nudge

    transaction.on_commit(lambda: allocation_nudge(launch_id=order.launch_id))
    return order
