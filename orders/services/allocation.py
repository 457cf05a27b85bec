"""The allocator: a single writer per launch that turns queued orders into allocations.

It holds a transaction-scoped advisory lock per launch, so any number of workers may call
it and only one allocates at a time. Each batch, in one transaction: lock the launch's
stock rows (primary-key order), serve each pool's waitlist by wait_number, then the
oldest queued orders by sequence; write orders, stock levels, the ledger and the
customers' messages in bulk. Units go strictly first come, first served per pool
(launch, SKU, location): an order is allocated only if nobody earlier in its pool waits.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from customers.models import Message
from inventory.models import Stock, StockMovement
from inventory.services import stock_rows_for_update
from orders.models import Launch, Order, PoolState
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
    while True:
        with transaction.atomic():
            _lock(ALLOCATOR_LOCK, launch_id)
            moved = _allocate_batch(
                launch_id=launch_id, watermark=watermark, batch_size=batch_size, result=result
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


def _allocate_batch(*, launch_id: int, watermark: int, batch_size: int, result: AllocationResult) -> int:
    """One batch. Precondition: the allocator lock for this launch is held."""
    launch = Launch.objects.only("collect_hold_days").get(pk=launch_id)
    now = timezone.now()
    queued = list(
        Order.objects.filter(launch_id=launch_id, status=Order.Status.QUEUED, sequence__lte=watermark)
        .order_by("sequence")
        .values_list("sequence", "sku_id", "pool_id", "fulfilment")[:batch_size]
    )
    states = {(s.sku_id, s.pool_id): s for s in PoolState.objects.filter(launch_id=launch_id)}
    pools = {(sku, pool) for _, sku, pool, _ in queued} | {k for k, s in states.items() if s.waiting > 0}
    if not pools:
        return 0
    stock = stock_rows_for_update(pairs=[(pool, sku) for sku, pool in pools])
    available = {(sku, pool): stock[(pool, sku)].on_hand - stock[(pool, sku)].reserved for sku, pool in pools}

    allocated: list[tuple[int, str]] = []  # (sequence, fulfilment)
    waitlisted: list[tuple[int, int, int]] = []  # (sequence, wait_number, position)
    served = defaultdict(int)

    # Waitlists first: they are older than anything still queued in the same pool.
    for key, state in states.items():
        if state.waiting > 0 and available.get(key, 0) > 0:
            sku_id, pool_id = key
            rows = list(
                Order.objects.filter(
                    launch_id=launch_id, sku_id=sku_id, pool_id=pool_id, status=Order.Status.WAITLISTED
                )
                .order_by("wait_number")
                .values_list("sequence", "fulfilment", "wait_number")[: available[key]]
            )
            for sequence, fulfilment, wait_number in rows:
                allocated.append((sequence, fulfilment))
                state.served_through = max(state.served_through, wait_number)
            state.waiting -= len(rows)
            available[key] -= len(rows)
            served[key] += len(rows)

    for sequence, sku_id, pool_id, fulfilment in queued:
        key = (sku_id, pool_id)
        state = states.get(key)
        if state is None:
            state = states[key] = PoolState(launch_id=launch_id, sku_id=sku_id, pool_id=pool_id)
        if available[key] > 0 and state.waiting == 0:
            available[key] -= 1
            served[key] += 1
            allocated.append((sequence, fulfilment))
        else:
            state.waitlisted_total += 1
            state.waiting += 1
            waitlisted.append((sequence, state.waitlisted_total, state.waiting))

    if not allocated and not waitlisted:
        return 0
    _write_orders(launch=launch, now=now, allocated=allocated, waitlisted=waitlisted)
    _write_stock(launch_id=launch_id, served=served)
    PoolState.objects.bulk_create([s for s in states.values() if s.pk is None])
    PoolState.objects.bulk_update(
        [s for s in states.values() if s.pk is not None], ["waitlisted_total", "served_through", "waiting"]
    )
    _write_messages(launch_id=launch_id, allocated=allocated, waitlisted=waitlisted)
    result.allocated += len(allocated)
    result.waitlisted += len(waitlisted)
    return len(allocated) + len(waitlisted)


def _write_orders(*, launch: Launch, now, allocated, waitlisted) -> None:
    collect_by = now + datetime.timedelta(days=launch.collect_hold_days)
    delivery_ids = [s for s, f in allocated if f == Order.Fulfilment.DELIVERY]
    collect_ids = [s for s, f in allocated if f == Order.Fulfilment.COLLECT]
    if delivery_ids:
        Order.objects.filter(pk__in=delivery_ids).update(status=Order.Status.ALLOCATED, allocated_at=now)
    if collect_ids:
        Order.objects.filter(pk__in=collect_ids).update(
            status=Order.Status.ALLOCATED, allocated_at=now, collect_by=collect_by
        )
    if not waitlisted:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE orders_order o SET status = 'waitlisted', wait_number = w.wait_number "
                "FROM unnest(%s::bigint[], %s::int[]) AS w(sequence, wait_number) WHERE o.sequence = w.sequence",
                [[w[0] for w in waitlisted], [w[1] for w in waitlisted]],
            )
    else:
        Order.objects.bulk_update(
            [Order(sequence=s, status=Order.Status.WAITLISTED, wait_number=n) for s, n, _ in waitlisted],
            ["status", "wait_number"],
            batch_size=500,
        )


def _write_stock(*, launch_id: int, served: dict[tuple[int, int], int]) -> None:
    """Reserve the served units and write one ledger row per pool for this batch."""
    movements = []
    for (sku_id, pool_id), count in served.items():
        if count == 0:
            continue
        Stock.objects.filter(location_id=pool_id, sku_id=sku_id).update(reserved=F("reserved") + count)
        movements.append(
            StockMovement(
                location_id=pool_id,
                sku_id=sku_id,
                kind=StockMovement.Kind.ALLOCATION,
                reserved_delta=count,
                reason="Allocated to waiting orders in sequence order",
                reference=f"allocator:launch-{launch_id}",
            )
        )
    StockMovement.objects.bulk_create(movements)


def _write_messages(*, launch_id: int, allocated, waitlisted) -> None:
    """Outbox rows in the allocator's own transaction: allocated, or received with position."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for kind, prefix, seqs, positions in (
                (Message.Kind.ALLOCATED, "allocated:", [a[0] for a in allocated], [0] * len(allocated)),
                (
                    Message.Kind.ORDER_RECEIVED,
                    "received:",
                    [w[0] for w in waitlisted],
                    [w[2] for w in waitlisted],
                ),
            ):
                if not seqs:
                    continue
                cursor.execute(
                    "INSERT INTO customers_message (kind, dedupe_key, customer_id, order_id, launch_id, context, "
                    "message_id, status, attempts, last_error, created_at) "
                    "SELECT %s, %s || o.reference, o.customer_id, o.sequence, o.launch_id, "
                    "CASE WHEN p.position > 0 THEN jsonb_build_object('position', p.position) ELSE '{}'::jsonb END, "
                    "gen_random_uuid(), 'pending', 0, '', now() "
                    "FROM unnest(%s::bigint[], %s::int[]) AS p(sequence, position) "
                    "JOIN orders_order o ON o.sequence = p.sequence "
                    "ON CONFLICT (dedupe_key) DO NOTHING",
                    [kind, prefix, seqs, positions],
                )
    else:
        orders = {
            o.sequence: o
            for o in Order.objects.filter(pk__in=[a[0] for a in allocated] + [w[0] for w in waitlisted]).only(
                "sequence", "reference", "customer_id", "launch_id"
            )
        }
        rows = [
            Message(
                kind=Message.Kind.ALLOCATED,
                dedupe_key=f"allocated:{orders[s].reference}",
                customer_id=orders[s].customer_id,
                order_id=s,
                launch_id=launch_id,
            )
            for s, _ in allocated
        ] + [
            Message(
                kind=Message.Kind.ORDER_RECEIVED,
                dedupe_key=f"received:{orders[s].reference}",
                customer_id=orders[s].customer_id,
                order_id=s,
                launch_id=launch_id,
                context={"position": p},
            )
            for s, _, p in waitlisted
        ]
        Message.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    if allocated or waitlisted:
        _nudge_outbox()


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
