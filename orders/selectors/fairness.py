"""The fairness audit: proof from the database alone that a launch was served in turn.

Four checks, each one set-based statement over the launch's orders (or its SKUs' stock
and ledger), each counted per pool (SKU, location):

- out_of_turn: no order was served while an order ahead of it in its pool was still
  waiting. "Ahead" is the allocator's turn: a fair start's opening draw first, in draw
  order, then sequence (first come first served). An order waited from its admission
  until it was served or cancelled; a window function carries, along the pool's turn,
  the latest moment any earlier order stopped waiting, and an order served before that
  moment jumped the queue. An order marked served with no time counts as served now.
- during_draw: no order of the opening draw was served before the draw closed.
- units: no unit was sold twice. Per stock row of the launch's SKUs: the level equals
  the ledger's sum, reserved is within on hand and not negative, and the orders holding
  a unit there (allocated, any launch) are exactly the units reserved.
- positions: every waitlisted order was told its right place. The allocator records
  when it waitlisted an order and the place it told; replaying the pool's history (each
  waitlisting +1, each departure of a waitlisted order -1, departures of an instant
  before its arrivals) gives how many were waiting, itself included, at that moment.

Each returns its violations (0 on a fair launch) and how much it looked at.
"""

import datetime
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from inventory.models import SKU, Launch, Location
from orders.services.fair_start import draw_closes_at


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    checked: str  # what was looked at, in words
    looked_at: int
    violations: int


@dataclass
class PoolFairness:
    sku: str
    pool: str
    orders: int = 0
    served: int = 0
    drawn: int = 0  # orders in the opening draw
    out_of_turn: int = 0
    during_draw: int = 0
    waitlisted: int = 0
    wrong_positions: int = 0
    stock_rows: int = 0
    unit_problems: int = 0

    @property
    def violations(self) -> int:
        return self.out_of_turn + self.during_draw + self.wrong_positions + self.unit_problems


@dataclass
class FairnessAudit:
    launch: Launch
    checks: list[Check]
    pools: list[PoolFairness] = field(default_factory=list)
    audited_at: datetime.datetime = field(default_factory=timezone.now)
    fair_start_seconds: int = 0
    # Orders with a wait number but no recorded told place (waitlisted before it was kept).
    positions_unrecorded: int = 0

    @property
    def violations(self) -> int:
        return sum(c.violations for c in self.checks)


# Per pool: orders, served, served out of turn, draw orders served before the draw closed.
_TURN = """
WITH turn AS (
  SELECT o.sku_id, o.pool_id, o.fair_draw,
    CASE WHEN o.allocated_at IS NOT NULL OR o.status IN ('allocated', 'fulfilled')
         THEN COALESCE(o.allocated_at, %(now)s) END AS served_at,
    max(COALESCE(LEAST(o.allocated_at, o.cancelled_at), 'infinity'::timestamptz)) OVER (
      PARTITION BY o.sku_id, o.pool_id
      ORDER BY o.fair_draw IS NULL, o.fair_draw, o.sequence
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier_waited_until
  FROM orders_order o
  WHERE o.launch_id = %(launch)s
)
SELECT sku_id, pool_id, count(*), count(served_at), count(fair_draw),
  count(*) FILTER (WHERE served_at < earlier_waited_until),
  count(*) FILTER (WHERE fair_draw IS NOT NULL AND served_at < %(draw_closes)s)
FROM turn GROUP BY sku_id, pool_id
"""

# Per pool: waitlistings replayed, and those whose told place differs from the replay.
_POSITIONS = """
WITH event AS (
  SELECT sku_id, pool_id, waitlisted_at AS at, 1 AS arrival, wait_number, sequence, 1 AS delta,
         told_position
  FROM orders_order
  WHERE launch_id = %(launch)s AND waitlisted_at IS NOT NULL
  UNION ALL
  SELECT sku_id, pool_id, LEAST(allocated_at, cancelled_at), 0, wait_number, sequence, -1, NULL
  FROM orders_order
  WHERE launch_id = %(launch)s AND waitlisted_at IS NOT NULL
    AND (allocated_at IS NOT NULL OR cancelled_at IS NOT NULL)
), replay AS (
  SELECT event.*, sum(delta) OVER (
    PARTITION BY sku_id, pool_id ORDER BY at, arrival, wait_number, sequence ROWS UNBOUNDED PRECEDING
  ) AS waiting
  FROM event
)
SELECT sku_id, pool_id, count(*), count(*) FILTER (WHERE told_position IS DISTINCT FROM waiting)
FROM replay WHERE arrival = 1 GROUP BY sku_id, pool_id
"""

_UNRECORDED = """
SELECT count(*) FROM orders_order
WHERE launch_id = %(launch)s AND wait_number IS NOT NULL AND waitlisted_at IS NULL
"""

# Per stock row of the launch's SKUs (and any pool holding its orders without one).
_UNITS = """
WITH skus AS (SELECT sku_id FROM inventory_launch_skus WHERE launch_id = %(launch)s),
ledger AS (
  SELECT m.location_id, m.sku_id, sum(m.on_hand_delta) AS on_hand, sum(m.reserved_delta) AS reserved
  FROM inventory_stockmovement m WHERE m.sku_id IN (SELECT sku_id FROM skus)
  GROUP BY m.location_id, m.sku_id
), holding AS (
  SELECT o.pool_id AS location_id, o.sku_id, count(*) AS n
  FROM orders_order o WHERE o.status = 'allocated' AND o.sku_id IN (SELECT sku_id FROM skus)
  GROUP BY o.pool_id, o.sku_id
), level AS (
  SELECT s.location_id, s.sku_id, s.on_hand, s.reserved
  FROM inventory_stock s WHERE s.sku_id IN (SELECT sku_id FROM skus)
)
SELECT COALESCE(level.sku_id, holding.sku_id), COALESCE(level.location_id, holding.location_id),
  CASE WHEN level.location_id IS NULL
         OR level.on_hand <> COALESCE(ledger.on_hand, 0) OR level.reserved <> COALESCE(ledger.reserved, 0)
         OR level.reserved < 0 OR level.reserved > level.on_hand
         OR level.reserved <> COALESCE(holding.n, 0)
       THEN 1 ELSE 0 END
FROM level
LEFT JOIN ledger ON ledger.location_id = level.location_id AND ledger.sku_id = level.sku_id
FULL JOIN holding ON holding.location_id = level.location_id AND holding.sku_id = level.sku_id
"""


def launch_fairness(*, launch: Launch) -> FairnessAudit:
    """Audit one launch: four statements, whatever its size."""
    closes = draw_closes_at(opens_at=launch.opens_at, fair_start_seconds=launch.fair_start_seconds)
    params: dict[str, int | datetime.datetime | None] = {
        "launch": launch.pk,
        "now": timezone.now(),
        "draw_closes": closes,
    }
    pools: dict[tuple[int, int], PoolFairness] = {}

    def pool(sku_id: int, location_id: int) -> PoolFairness:
        return pools.setdefault((sku_id, location_id), PoolFairness(sku="", pool=""))

    with connection.cursor() as cursor:
        cursor.execute(_TURN, params)
        for sku_id, location_id, orders, served, drawn, out_of_turn, during_draw in cursor.fetchall():
            p = pool(sku_id, location_id)
            p.orders, p.served, p.drawn = orders, served, drawn
            p.out_of_turn, p.during_draw = out_of_turn, during_draw
        cursor.execute(_POSITIONS, params)
        for sku_id, location_id, waitlisted, wrong in cursor.fetchall():
            p = pool(sku_id, location_id)
            p.waitlisted, p.wrong_positions = waitlisted, wrong
        cursor.execute(_UNITS, params)
        for sku_id, location_id, problem in cursor.fetchall():
            p = pool(sku_id, location_id)
            p.stock_rows += 1
            p.unit_problems += problem
        cursor.execute(_UNRECORDED, params)
        (unrecorded,) = cursor.fetchone()

    sku_codes = dict(SKU.objects.filter(pk__in={k[0] for k in pools}).values_list("pk", "code"))
    location_codes = dict(Location.objects.filter(pk__in={k[1] for k in pools}).values_list("pk", "code"))
    for (sku_id, location_id), p in pools.items():
        p.sku, p.pool = sku_codes.get(sku_id, str(sku_id)), location_codes.get(location_id, str(location_id))
    lines = sorted(pools.values(), key=lambda p: (p.sku, p.pool))

    def total(attribute: str) -> int:
        return sum(getattr(p, attribute) for p in lines)

    checks = [
        Check(
            "out_of_turn",
            "No order served while an earlier one waited",
            "served orders, each against every order ahead of it in its pool's turn "
            "(the opening draw in draw order, then first come first served)",
            total("served"),
            total("out_of_turn"),
        ),
        Check(
            "during_draw",
            "Nobody served while the opening draw was open",
            "orders of the opening draw, against the moment it closed"
            if closes
            else "no fair start on this launch: nothing to check",
            total("drawn"),
            total("during_draw"),
        ),
        Check(
            "units",
            "No unit sold twice",
            "stock rows of the launch's SKUs against their ledger, and the orders holding a unit "
            "against the units reserved",
            total("stock_rows"),
            total("unit_problems"),
        ),
        Check(
            "positions",
            "Every waitlisted order was told its right place",
            "each place told when an order was waitlisted, against the pool's replayed history",
            total("waitlisted"),
            total("wrong_positions"),
        ),
    ]
    return FairnessAudit(
        launch=launch,
        checks=checks,
        pools=lines,
        fair_start_seconds=launch.fair_start_seconds,
        positions_unrecorded=unrecorded,
    )


CSV_HEADER = [
    "sku",
    "pool",
    "orders",
    "served",
    "in_opening_draw",
    "served_out_of_turn",
    "served_during_draw",
    "waitlisted_told",
    "wrong_positions_told",
    "stock_rows",
    "stock_rows_wrong",
]


def fairness_csv_rows(*, audit: FairnessAudit) -> list[list[str | int]]:
    """The audit per pool, for the CSV export (CSV_HEADER's columns)."""
    return [
        [
            p.sku,
            p.pool,
            p.orders,
            p.served,
            p.drawn,
            p.out_of_turn,
            p.during_draw,
            p.waitlisted,
            p.wrong_positions,
            p.stock_rows,
            p.unit_problems,
        ]
        for p in audit.pools
    ]
