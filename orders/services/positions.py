"""Exact queue positions, read in one statement without scanning the queue.

Waitlisted orders in a pool are numbered by the allocator (wait_number) and served in
that order, so an order's place is its number less those already served and those
cancelled in between. A queued order (not yet seen by the allocator, which runs every
second) waits behind the whole waitlist of its pool and the queued orders before it.
"""

from dataclasses import dataclass

from django.db import connection

from orders.models import Order


@dataclass(frozen=True)
class QueuePosition:
    position: int | None
    units_left: int


_SQL = """
SELECT
  CASE
    WHEN %(status)s = 'waitlisted' THEN
      %(wait_number)s - COALESCE(ps.served_through, 0) - (
        SELECT count(*) FROM orders_order c
        WHERE c.pool_id = %(pool)s AND c.sku_id = %(sku)s AND c.status = 'cancelled'
          AND c.wait_number > COALESCE(ps.served_through, 0) AND c.wait_number < %(wait_number)s)
    WHEN %(status)s = 'queued' THEN
      COALESCE(ps.waiting, 0) + 1 + (
        SELECT count(*) FROM orders_order q
        WHERE q.launch_id = %(launch)s AND q.status = 'queued' AND q.sequence < %(sequence)s
          AND q.sku_id = %(sku)s AND q.pool_id = %(pool)s)
  END,
  COALESCE((SELECT s.on_hand - s.reserved FROM inventory_stock s
            WHERE s.location_id = %(pool)s AND s.sku_id = %(sku)s), 0)
FROM (SELECT 1) AS one
LEFT JOIN orders_poolstate ps ON ps.launch_id = %(launch)s AND ps.sku_id = %(sku)s AND ps.pool_id = %(pool)s
"""


def order_queue_position(*, order: Order) -> QueuePosition:
    """The order's place among orders still waiting in its pool (1 = next), and units left."""
    params = {
        "status": order.status,
        "wait_number": order.wait_number or 0,
        "pool": order.pool_id,
        "sku": order.sku_id,
        "launch": order.launch_id,
        "sequence": order.sequence,
    }
    with connection.cursor() as cursor:
        cursor.execute(_SQL, params)
        position, units_left = cursor.fetchone()
    if order.status not in (Order.Status.QUEUED, Order.Status.WAITLISTED):
        position = None
    return QueuePosition(position=position, units_left=max(units_left, 0))
