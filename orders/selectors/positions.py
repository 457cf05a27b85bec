"""Exact queue positions: one rule, read three ways, side by side.

The rule. Waitlisted orders in a pool are numbered by the allocator (wait_number) and
served in that order, so a waitlisted order's place is its number less those already
served (served_through) and those cancelled in between. A queued order (not yet seen by
the allocator, which runs every second) waits behind its pool's whole waitlist and the
queued orders before it in the same pool.

The readings, kept together so they cannot drift (test_positions holds them equal):
- order_queue_position: one order, any status (the status page, the API);
- QUEUED_POSITION_RETURNING: a queued order's place, read in the very INSERT that
  creates it (single admission: no extra round trip);
- queued_positions: many new queued orders of a launch at once (bulk admission);
- waitlisted_positions: many waitlisted orders at once (a campaign telling each its place).
"""

from dataclasses import dataclass

from django.db import connection

from orders.models import Order


@dataclass(frozen=True)
class QueuePosition:
    position: int | None
    units_left: int


# Queued: the pool's waitlist, plus one, plus the queued orders before it in the pool.
# An order of a fair start's opening draw has no place until the allocator has drawn it
# (null: "in the opening draw"); an order after the draw counts the whole draw ahead of it,
# which is right, as the draw's orders all have smaller sequences.
_QUEUED = """
  CASE WHEN {o}.fair_draw IS NULL THEN
  COALESCE((SELECT ps.waiting FROM orders_poolstate ps WHERE ps.launch_id = {o}.launch_id
            AND ps.sku_id = {o}.sku_id AND ps.pool_id = {o}.pool_id), 0) + 1 + (
    SELECT count(*) FROM orders_order q
    WHERE q.launch_id = {o}.launch_id AND q.status = 'queued' AND q.sku_id = {o}.sku_id
      AND q.pool_id = {o}.pool_id AND q.sequence < {o}.sequence)
  END
"""

# Waitlisted: its wait number, less those served and those cancelled in between.
_WAITLISTED = """
  {o}.wait_number - COALESCE({ps}.served_through, 0) - (
    SELECT count(*) FROM orders_order c
    WHERE c.pool_id = {o}.pool_id AND c.sku_id = {o}.sku_id AND c.status = 'cancelled'
      AND c.wait_number > COALESCE({ps}.served_through, 0) AND c.wait_number < {o}.wait_number)
"""

# For INSERT ... RETURNING: the row being inserted is orders_order itself.
QUEUED_POSITION_RETURNING = _QUEUED.format(o="orders_order")

_ONE_TEMPLATE = """
SELECT
  CASE
    WHEN o.status = 'waitlisted' THEN {waitlisted}
    WHEN o.status = 'queued' THEN {queued}
  END,
  COALESCE((SELECT s.on_hand - s.reserved FROM inventory_stock s
            WHERE s.location_id = o.pool_id AND s.sku_id = o.sku_id), 0)
FROM (SELECT CAST(%(sequence)s AS BIGINT) AS sequence, CAST(%(launch)s AS BIGINT) AS launch_id,
             CAST(%(sku)s AS BIGINT) AS sku_id, CAST(%(pool)s AS BIGINT) AS pool_id,
             CAST(%(status)s AS VARCHAR(16)) AS status, CAST(%(wait_number)s AS INTEGER) AS wait_number,
             CAST(%(fair_draw)s AS BIGINT) AS fair_draw) o
LEFT JOIN orders_poolstate ps ON ps.launch_id = o.launch_id AND ps.sku_id = o.sku_id AND ps.pool_id = o.pool_id
"""
# Composed from the constant fragments above: no input reaches the text.
_ONE = _ONE_TEMPLATE.format(waitlisted=_WAITLISTED.format(o="o", ps="ps"), queued=_QUEUED.format(o="o"))

# Many queued orders of one launch: their rank among the pool's queued orders is one
# plus the queued orders before them, read in one pass over the launch's queue (which
# the allocator keeps short).
_MANY = """
SELECT q.sequence, CASE WHEN q.fair_draw IS NULL THEN COALESCE(ps.waiting, 0) + q.rank END
FROM (
  SELECT o.sequence, o.sku_id, o.pool_id, o.fair_draw,
         row_number() OVER (PARTITION BY o.sku_id, o.pool_id ORDER BY o.sequence) AS rank
  FROM orders_order o
  WHERE o.launch_id = %(launch)s AND o.status = 'queued' AND o.sequence <= %(last)s
) q
LEFT JOIN orders_poolstate ps
  ON ps.launch_id = %(launch)s AND ps.sku_id = q.sku_id AND ps.pool_id = q.pool_id
WHERE q.sequence = ANY(%(mine)s::bigint[])
"""


_WAITLISTED_MANY_TEMPLATE = """
SELECT o.sequence, {waitlisted}
FROM orders_order o
LEFT JOIN orders_poolstate ps ON ps.launch_id = o.launch_id AND ps.sku_id = o.sku_id AND ps.pool_id = o.pool_id
WHERE o.launch_id = %s AND o.status = 'waitlisted' AND o.sequence IN ({{sequences}})
"""
_WAITLISTED_MANY = _WAITLISTED_MANY_TEMPLATE.format(waitlisted=_WAITLISTED.format(o="o", ps="ps"))
_CHUNK = 5000


def order_queue_position(*, order: Order) -> QueuePosition:
    """The order's place among orders still waiting in its pool (1 = next), and units left."""
    params: dict[str, str | int | None] = {
        "status": order.status,
        "wait_number": order.wait_number or 0,
        "pool": order.pool_id,
        "sku": order.sku_id,
        "launch": order.launch_id,
        "sequence": order.sequence,
        "fair_draw": order.fair_draw,
    }
    with connection.cursor() as cursor:
        cursor.execute(_ONE, params)
        position, units_left = cursor.fetchone()
    if order.status not in (Order.Status.QUEUED, Order.Status.WAITLISTED):
        position = None
    return QueuePosition(position=position, units_left=max(units_left, 0))


def queued_positions(*, launch_id: int, sequences: list[int]) -> dict[int, int | None]:
    """sequence -> position of queued orders of one launch, in one statement (PostgreSQL);
    None for an order in a fair start's opening draw."""
    if not sequences:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_MANY, {"launch": launch_id, "last": max(sequences), "mine": sequences})
        return dict(cursor.fetchall())


def waitlisted_positions(*, launch_id: int, sequences: list[int]) -> dict[int, int]:
    """sequence -> position of waitlisted orders of one launch (others are left out)."""
    positions: dict[int, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(sequences), _CHUNK):
            chunk = sequences[start : start + _CHUNK]
            cursor.execute(
                _WAITLISTED_MANY.format(sequences=", ".join(["%s"] * len(chunk))), [launch_id, *chunk]
            )
            positions.update(cursor.fetchall())
    return positions
