"""The allocator: a single writer per launch that turns queued orders into allocations.

It holds a transaction-scoped advisory lock per launch (orders.services.locks), so any
number of workers may call it and only one allocates at a time. Each batch, in one
transaction: lock the launch's stock rows (primary-key order), serve each pool's
waitlist by wait_number, then the oldest queued orders by sequence; write orders, stock
levels, the ledger and the customers' messages in bulk. Units go strictly first come,
first served per pool (launch, SKU, location): an order is allocated only if nobody
earlier in its pool waits.

On PostgreSQL a batch costs a fixed number of statements whatever its size or number of
pools: decisions are made in Python over named tuples, and each table gets one
set-based write by the app that owns it: orders' UPDATE here, which customers'
order_events_enqueue turns into one statement with the outbox INSERT it writes (the
UPDATE's RETURNING feeds it, so no order row travels to Python and back), and stock and
ledger through inventory's stock_reserve_bulk. Nearly all remaining time is PostgreSQL's
own per-row work: a non-HOT order UPDATE (status is indexed) and the outbox INSERT and
its indexes.
"""

import datetime
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from config.metrics import ALLOCATOR_BATCH_SECONDS, BATCH_SIZE
from customers.models import Message
from customers.services.outbox import (
    OutboxMessage,
    messages_enqueue,
    order_events_enqueue,
    outbox_nudge,
)
from inventory.models import SKU, Launch
from inventory.selectors import location_online_pool_id
from inventory.services import stock_reserve_bulk, stock_rows_for_update
from orders.models import Order, PoolState
from orders.selectors.orders import ORDER_DOCUMENT_JOINS, ORDER_DOCUMENT_SQL, order_document, order_summary
from orders.services.campaigns import launch_sold_out_notify
from orders.services.fair_start import database_clock, draw_holds_allocation, drawn_queue
from orders.services.locks import admission_lock_exclusive, allocator_lock
from orders.services.order_emails import order_email
from stores.models import WebhookEventType
from stores.services.webhooks import (
    EventIn,
    webhook_broadcast,
    webhook_events_enqueue,
    webhook_events_enqueue_from,
    webhook_partners_listening,
)

logger = logging.getLogger(__name__)

# Sent by name: the task module is an entry point this core must not import.
ALLOCATE_TASK = "orders.tasks.allocate_launch"
NUDGE_INTERVAL = 0.2
ALLOCATOR_NUDGE_SECONDS = 1


@dataclass
class AllocationResult:
    allocated: int = 0
    waitlisted: int = 0
    batches: int = 0


class _Waiting(NamedTuple):
    """An order the batch may serve."""

    sequence: int
    sku_id: int
    pool_id: int
    partner_id: int | None


_WAITING_FIELDS = ("sequence", "sku_id", "pool_id", "partner_id")


@dataclass
class _Pool:
    """A pool's bookkeeping (PoolState) as the batch moves it."""

    waitlisted_total: int = 0  # the highest wait number handed out
    served_through: int = 0  # the highest wait number that got a unit
    waiting: int = 0


class _Change(NamedTuple):
    order: _Waiting
    wait_number: int | None  # a new wait number, for an order that has to wait
    position: int | None  # its place in the queue then; None: allocated


def admission_watermark(
    *, launch_id: int, opens_at: datetime.datetime | None = None, fair_start_seconds: int = 0
) -> int | None:
    """The highest sequence the allocator may serve: every order at or below it is settled.

    Taking the admission lock exclusively waits for admissions in flight (they hold it
    shared) and is released at once; admissions are paused only for that instant.

    With a fair start, None while its draw has not closed by the database's clock. The
    clock is read BEFORE the lock is asked for: an admission whose insert read that clock
    before the close held the lock shared from then on, so the lock waits for it and the
    watermark covers it (orders.services.fair_start says why no grace is needed). Read
    after the lock is released instead, an admission could insert in between, drawn and
    above the watermark, and be served after this run's first come first served orders.
    """
    with transaction.atomic():
        # (No fair start: no clock to read.)
        if (
            fair_start_seconds
            and opens_at is not None
            and draw_holds_allocation(
                opens_at=opens_at, fair_start_seconds=fair_start_seconds, now=database_clock()
            )
        ):
            return None
        admission_lock_exclusive(launch_id=launch_id)
        return Order.objects.filter(launch_id=launch_id).aggregate(m=Max("sequence"))["m"] or 0


def launch_allocate(*, launch_id: int, batch_size: int | None = None) -> AllocationResult:
    """Serve waitlists and queued orders of one launch until nothing more can move.

    With a fair start (orders.services.fair_start) nothing is served while the opening
    draw is open; then the draw's orders go first, in draw order, then the rest by sequence.
    """
    batch_size = batch_size or settings.ALLOCATOR_BATCH_SIZE
    result = AllocationResult()
    opens_at, fair_start_seconds = Launch.objects.values_list("opens_at", "fair_start_seconds").get(
        pk=launch_id
    )
    watermark = admission_watermark(
        launch_id=launch_id, opens_at=opens_at, fair_start_seconds=fair_start_seconds
    )
    if watermark is None:  # the opening draw has not closed
        return result
    # Every queued order up to `after` has been settled by an earlier batch of this run (in
    # sequence order, under the lock), so the next batch starts past it: the queue index
    # still holds their dead entries until vacuum, and skipping them by key keeps each
    # batch's read as cheap as the first.
    after = 0
    for drawn in (True, False) if fair_start_seconds else (False,):
        while True:
            started = time.monotonic()
            with transaction.atomic():
                allocator_lock(launch_id=launch_id)
                moved, after = _allocate_batch(
                    launch_id=launch_id,
                    watermark=watermark,
                    after=after,
                    batch_size=batch_size,
                    result=result,
                    drawn=drawn,
                )
            if not moved:
                break
            ALLOCATOR_BATCH_SECONDS.observe(time.monotonic() - started)
            BATCH_SIZE.labels(stage="allocation").observe(moved)
            result.batches += 1
    if result.waitlisted:
        _apologise_if_sold_out(launch_id=launch_id)
    return result


def _apologise_if_sold_out(*, launch_id: int) -> None:
    """Orders had to wait: if the online pool is empty for every SKU, the launch has sold
    out online, and head office may have asked for the apology to start by itself.

    The campaign is written under the allocator's lock, in its own transaction, so it is
    as durable as the sell-out it reports; starting it again adds nobody twice.
    """
    launch = Launch.objects.get(pk=launch_id)
    if not launch.auto_apology:
        return
    with transaction.atomic():
        allocator_lock(launch_id=launch_id)
        launch_sold_out_notify(launch=launch)


def _allocate_batch(
    *,
    launch_id: int,
    watermark: int,
    after: int,
    batch_size: int,
    result: AllocationResult,
    drawn: bool = False,
) -> tuple[int, int]:
    """One batch; returns (orders moved, last queued sequence read).

    drawn: serve a fair start's opening draw, in draw order (every order it reads is
    settled, so the next read starts at the next drawn order without a key).
    Precondition: the allocator lock for this launch is held.
    """
    launch = Launch.objects.only("collect_hold_days").get(pk=launch_id)
    now = timezone.now()
    in_turn = (
        drawn_queue(launch_id=launch_id, watermark=watermark)
        if drawn
        else Order.objects.filter(
            launch_id=launch_id, status=Order.Status.QUEUED, sequence__gt=after, sequence__lte=watermark
        ).order_by("sequence")
    )
    queued = [_Waiting(*row) for row in in_turn.values_list(*_WAITING_FIELDS)[:batch_size]]
    pools = {
        (sku, pool): _Pool(total, served, waiting)
        for sku, pool, total, served, waiting in PoolState.objects.filter(launch_id=launch_id).values_list(
            "sku_id", "pool_id", "waitlisted_total", "served_through", "waiting"
        )
    }
    touched = {(o.sku_id, o.pool_id) for o in queued} | {k for k, p in pools.items() if p.waiting > 0}
    last = queued[-1].sequence if queued and not drawn else after
    if not touched:
        return 0, last
    stock = stock_rows_for_update(pairs=[(pool, sku) for sku, pool in touched])
    available = {
        (sku, pool): stock[(pool, sku)].on_hand - stock[(pool, sku)].reserved for sku, pool in touched
    }

    waiting_before = {k: p.waiting for k, p in pools.items()}
    changes: list[_Change] = []
    served: dict[tuple[int, int], int] = defaultdict(int)
    changed: set[tuple[int, int]] = set()

    # Waitlists first: they are older than anything still queued in the same pool.
    wanted = {k: available[k] for k, p in pools.items() if p.waiting > 0 and available.get(k, 0) > 0}
    for order, wait_number in _waitlist_heads(launch_id=launch_id, wanted=wanted):
        key = (order.sku_id, order.pool_id)
        pool = pools[key]
        changes.append(_Change(order, None, None))
        pool.served_through = max(pool.served_through, wait_number)
        pool.waiting -= 1
        available[key] -= 1
        served[key] += 1
        changed.add(key)

    for order in queued:
        key = (order.sku_id, order.pool_id)
        pool = pools.setdefault(key, _Pool())
        changed.add(key)
        if pool.waiting == 0 and available[key] > 0:
            available[key] -= 1
            served[key] += 1
            changes.append(_Change(order, None, None))
        else:
            pool.waitlisted_total += 1
            pool.waiting += 1
            changes.append(_Change(order, pool.waitlisted_total, pool.waiting))

    if not changes:
        return 0, last
    collect_by = now + datetime.timedelta(days=launch.collect_hold_days)
    _write_orders_and_messages(changes=changes, now=now, collect_by=collect_by)
    stock_reserve_bulk(
        reservations={(pool, sku): n for (sku, pool), n in served.items()},
        reason="Allocated to waiting orders in sequence order",
        reference=f"allocator:launch-{launch_id}",
    )
    _write_pool_states(launch_id=launch_id, pools={k: pools[k] for k in changed})
    _write_webhook_events(launch_id=launch_id, changes=changes, pools=pools, waiting_before=waiting_before)
    outbox_nudge()
    allocated = sum(1 for c in changes if c.position is None)
    result.allocated += allocated
    result.waitlisted += len(changes) - allocated
    return len(changes), last


def _waitlist_heads(*, launch_id: int, wanted: dict[tuple[int, int], int]) -> list[tuple[_Waiting, int]]:
    """The first `n` waitlisted orders of each (sku, pool) in `wanted`, by wait number,
    each with its wait number.

    On PostgreSQL one statement for every pool (a LATERAL top-n per pool, each an index
    range scan of order_waitlisted), not one query per pool.
    """
    if not wanted:
        return []
    if connection.vendor == "postgresql":
        keys = list(wanted)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT w.sequence, p.sku_id, p.pool_id, w.partner_id, w.wait_number "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS p(sku_id, pool_id, n) "
                "CROSS JOIN LATERAL (SELECT o.sequence, o.partner_id, o.wait_number FROM orders_order o "
                "  WHERE o.launch_id = %s AND o.sku_id = p.sku_id AND o.pool_id = p.pool_id "
                "  AND o.status = 'waitlisted' ORDER BY o.wait_number LIMIT p.n) AS w",
                [[k[0] for k in keys], [k[1] for k in keys], [wanted[k] for k in keys], launch_id],
            )
            return [(_Waiting(*row[:4]), row[4]) for row in cursor.fetchall()]
    heads = []
    for (sku_id, pool_id), n in wanted.items():
        rows = (
            Order.objects.filter(
                launch_id=launch_id, sku_id=sku_id, pool_id=pool_id, status=Order.Status.WAITLISTED
            )
            .order_by("wait_number")
            .values_list(*_WAITING_FIELDS, "wait_number")[:n]
        )
        heads += [(_Waiting(*row[:4]), row[4]) for row in rows]
    return heads


# One statement for every order of a batch and its outbox row: the UPDATE's RETURNING is
# what customers' order_events_enqueue writes the messages from, in the same statement.
# An allocated order keeps the wait number it had (positions count from served_through).
# The bounds let a merge join start its primary-key scan at the batch, not at the
# table's first order.
_ORDERS_UPDATE = """
  WITH v AS (
    SELECT * FROM unnest(%(seq)s::bigint[], %(wait)s::int[], %(pos)s::int[]) AS v(sequence, wait_number, position)
  )
  UPDATE orders_order o SET
    status = CASE WHEN v.position IS NULL THEN 'allocated' ELSE 'waitlisted' END,
    wait_number = COALESCE(v.wait_number, o.wait_number),
    waitlisted_at = CASE WHEN v.position IS NULL THEN o.waitlisted_at ELSE %(now)s END,
    told_position = COALESCE(v.position, o.told_position),
    allocated_at = CASE WHEN v.position IS NULL THEN %(now)s ELSE o.allocated_at END,
    collect_by = CASE WHEN v.position IS NULL AND o.fulfilment = 'collect' THEN %(collect_by)s
                 ELSE o.collect_by END
  FROM v WHERE o.sequence = v.sequence AND o.sequence BETWEEN %(lo)s AND %(hi)s
  RETURNING o.sequence,
    CASE WHEN v.position IS NULL THEN %(allocated_kind)s ELSE %(received_kind)s END AS kind,
    o.reference, o.customer_id, o.launch_id, o.sku_id, o.store_id, o.fulfilment,
    CASE WHEN v.position IS NULL THEN o.collect_by END AS collect_by, v.position
"""


def _write_orders_and_messages(
    *, changes: list[_Change], now: datetime.datetime, collect_by: datetime.datetime
) -> None:
    """Orders allocated or waitlisted, and each one's email, in the allocator's transaction."""
    sequences = [c.order.sequence for c in changes]
    if connection.vendor == "postgresql":
        order_events_enqueue(
            source=_ORDERS_UPDATE,
            params={
                "seq": sequences,
                "wait": [c.wait_number for c in changes],
                "pos": [c.position for c in changes],
                "lo": min(sequences),
                "hi": max(sequences),
                "now": now,
                "collect_by": collect_by,
                "allocated_kind": Message.Kind.ALLOCATED,
                "received_kind": Message.Kind.ORDER_RECEIVED,
            },
        )
        return
    allocated = [c.order.sequence for c in changes if c.position is None]
    Order.objects.filter(pk__in=allocated, fulfilment=Order.Fulfilment.DELIVERY).update(
        status=Order.Status.ALLOCATED, allocated_at=now
    )
    Order.objects.filter(pk__in=allocated, fulfilment=Order.Fulfilment.COLLECT).update(
        status=Order.Status.ALLOCATED, allocated_at=now, collect_by=collect_by
    )
    Order.objects.bulk_update(
        [
            Order(
                sequence=c.order.sequence,
                status=Order.Status.WAITLISTED,
                wait_number=c.wait_number,
                waitlisted_at=now,
                told_position=c.position,
            )
            for c in changes
            if c.position is not None
        ],
        ["status", "wait_number", "waitlisted_at", "told_position"],
        batch_size=500,
    )
    orders = {o.sequence: o for o in Order.objects.filter(pk__in=sequences)}
    messages_enqueue(messages=[_message(orders[c.order.sequence], c.position) for c in sorted(changes)])


def _message(order: Order, position: int | None) -> OutboxMessage:
    """The customer's email about this event: reserved, or received with its place."""
    kind = Message.Kind.ALLOCATED if position is None else Message.Kind.ORDER_RECEIVED
    return order_email(order=order, kind=kind, position=position)


# The partners' events of a batch, built by the database from the orders just written:
# order.waitlisted (with its place) or order.allocated, and order.ready_to_collect beside
# it for a collect order (its unit is held in the store from now).
_WEBHOOK_EVENTS_TEMPLATE = """
  SELECT o.partner_id, t.type, o.reference AS subject,
    {document}
      || CASE WHEN t.type = 'order.ready_to_collect' THEN jsonb_build_object('collect_by', o.collect_by)
         ELSE '{{}}'::jsonb END AS data
  FROM unnest(%(seq)s::bigint[], %(pos)s::int[]) AS v(sequence, position)
  JOIN orders_order o ON o.sequence = v.sequence
  {joins}
  CROSS JOIN LATERAL (VALUES
    (CASE WHEN v.position IS NULL THEN 'order.allocated' ELSE 'order.waitlisted' END),
    (CASE WHEN v.position IS NULL AND o.fulfilment = 'collect' THEN 'order.ready_to_collect' END)
  ) AS t(type)
  WHERE t.type IS NOT NULL
  ORDER BY o.sequence
"""
# Composed from the constant fragments: no input reaches the text.
_WEBHOOK_EVENTS_SOURCE = _WEBHOOK_EVENTS_TEMPLATE.format(
    document=ORDER_DOCUMENT_SQL.format(position="v.position"), joins=ORDER_DOCUMENT_JOINS
)


def _write_webhook_events(
    *,
    launch_id: int,
    changes: list[_Change],
    pools: dict[tuple[int, int], _Pool],
    waiting_before: dict[tuple[int, int], int],
) -> None:
    """Events for the partners listening, in the batch's transaction: their orders'
    changes in one statement, and launch.sold_out when a SKU's online pool starts to
    keep orders waiting (its last unit is gone). Nothing at all when no partner listens.
    """
    listening = webhook_partners_listening()
    if not listening:
        return
    theirs = [c for c in changes if c.order.partner_id in listening]
    if theirs and connection.vendor == "postgresql":
        webhook_events_enqueue_from(
            source=_WEBHOOK_EVENTS_SOURCE,
            params={"seq": [c.order.sequence for c in theirs], "pos": [c.position for c in theirs]},
        )
    elif theirs:
        orders = Order.objects.select_related("launch", "customer", "sku", "store").in_bulk(
            [c.order.sequence for c in theirs]
        )
        events = []
        for c in theirs:
            order = orders[c.order.sequence]
            document = order_document(order_summary(order, queue_position=c.position))
            partner_id = c.order.partner_id
            assert partner_id is not None
            if c.position is not None:
                events.append(
                    EventIn(partner_id, WebhookEventType.ORDER_WAITLISTED, document, order.reference)
                )
                continue
            events.append(EventIn(partner_id, WebhookEventType.ORDER_ALLOCATED, document, order.reference))
            if order.fulfilment == Order.Fulfilment.COLLECT:
                events.append(
                    EventIn(
                        partner_id,
                        WebhookEventType.ORDER_READY_TO_COLLECT,
                        document | {"collect_by": order.collect_by},
                        order.reference,
                    )
                )
        webhook_events_enqueue(events=events)
    online = location_online_pool_id()
    if online is None:
        return
    sold_out = [
        sku_id
        for (sku_id, pool_id), pool in pools.items()
        if pool_id == online and pool.waiting > 0 and waiting_before.get((sku_id, pool_id), 0) == 0
    ]
    if sold_out:
        slug = Launch.objects.values_list("slug", flat=True).get(pk=launch_id)
        for sku_id, code in SKU.objects.filter(pk__in=sold_out).order_by("code").values_list("pk", "code"):
            webhook_broadcast(
                type=WebhookEventType.LAUNCH_SOLD_OUT,
                data={"launch": slug, "sku": code, "waiting": pools[(sku_id, online)].waiting},
                subject=f"{slug} {code}",
            )


def _write_pool_states(*, launch_id: int, pools: dict[tuple[int, int], _Pool]) -> None:
    """Upsert the pools this batch touched: one INSERT ... ON CONFLICT, not a CASE per row."""
    if not pools:
        return
    if connection.vendor == "postgresql":
        keys = list(pools)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO orders_poolstate (launch_id, sku_id, pool_id, waitlisted_total, served_through, "
                "waiting) SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[]) "
                "ON CONFLICT (launch_id, sku_id, pool_id) DO UPDATE SET "
                "waitlisted_total = excluded.waitlisted_total, served_through = excluded.served_through, "
                "waiting = excluded.waiting",
                [
                    launch_id,
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [pools[k].waitlisted_total for k in keys],
                    [pools[k].served_through for k in keys],
                    [pools[k].waiting for k in keys],
                ],
            )
        return
    for (sku_id, pool_id), pool in pools.items():
        PoolState.objects.update_or_create(
            launch_id=launch_id,
            sku_id=sku_id,
            pool_id=pool_id,
            defaults={
                "waitlisted_total": pool.waitlisted_total,
                "served_through": pool.served_through,
                "waiting": pool.waiting,
            },
        )


_last_nudge: dict[int, float] = {}


def allocation_nudge(*, launch_id: int) -> None:
    """Ask for an allocator run soon. Coalesced: a burst of admissions makes one task.

    First within this process (at most one nudge per launch every NUDGE_INTERVAL, no
    network), then across processes through a short-lived flag in the shared cache. The
    beat safety net runs the allocator every second anyway, so a skipped or lost nudge
    (Redis away, say) only delays allocation, never loses an order; so it never raises.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # The embedded default has no worker: allocate here, in the web process.
        launch_allocate(launch_id=launch_id)
        return
    now = time.monotonic()
    if now - _last_nudge.get(launch_id, 0.0) < NUDGE_INTERVAL:
        return
    _last_nudge[launch_id] = now
    # The flag is not cleared when the run starts: it expires, so however fast orders
    # arrive the allocator runs about once a second per launch, in batches, instead
    # of back to back competing with admission for the cores.
    try:
        if cache.add(f"allocation-pending:{launch_id}", 1, timeout=ALLOCATOR_NUDGE_SECONDS):
            current_app.send_task(ALLOCATE_TASK, args=[launch_id])
    except Exception:  # a hint only: beat's safety net allocates anyway
        logger.warning("allocation nudge for launch %s not sent", launch_id, exc_info=True)
