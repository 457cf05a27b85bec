"""Checks of DESIGN.md's invariants 1 and 2 against the database, shared by tests."""

from collections import defaultdict

from django.db.models import Sum

from inventory.models import Stock, StockMovement
from orders.models import ClaimWindow, Order
from orders.selectors.positions import order_queue_position

SERVED = (Order.Status.ALLOCATED, Order.Status.FULFILLED)
WAITING = (Order.Status.QUEUED, Order.Status.WAITLISTED)


def fcfs_violations(*, launch_id: int) -> list[str]:
    """Pools where an order was served while an earlier order of the same pool still waits.

    An order placed through a stock notice's claim link is served from units held before
    it (and before anyone now waiting) was placed, so it is not part of the queue.
    """
    served_max: dict = defaultdict(int)
    waiting_min: dict = {}
    for seq, sku, pool, status in Order.objects.filter(
        launch_id=launch_id, stock_notice__isnull=True
    ).values_list("sequence", "sku_id", "pool_id", "status"):
        key = (sku, pool)
        if status in SERVED:
            served_max[key] = max(served_max[key], seq)
        elif status in WAITING:
            waiting_min[key] = min(waiting_min.get(key, seq), seq)
    return [
        f"pool {key}: served #{served_max[key]} while #{first} waits"
        for key, first in waiting_min.items()
        if served_max.get(key, 0) > first
    ]


def oversold(*, launch_id: int) -> list[str]:
    """Pools where allocated orders exceed units, or stock disagrees with the ledger.

    Units held by open claim windows are reserved too: reserved = allocated + held.
    """
    problems = []
    for stock in Stock.objects.all():
        ledger = StockMovement.objects.filter(location_id=stock.location_id, sku_id=stock.sku_id).aggregate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
        )
        if (stock.on_hand, stock.reserved) != (ledger["on_hand"] or 0, ledger["reserved"] or 0):
            problems.append(f"{stock}: level {stock.on_hand}/{stock.reserved} != ledger {ledger}")
        if stock.reserved > stock.on_hand:
            problems.append(f"{stock}: reserved {stock.reserved} > on hand {stock.on_hand}")
        allocated = Order.objects.filter(
            launch_id=launch_id, pool_id=stock.location_id, sku_id=stock.sku_id, status=Order.Status.ALLOCATED
        ).count()
        held = sum(
            w.held
            for w in ClaimWindow.objects.filter(
                launch_id=launch_id,
                pool_id=stock.location_id,
                sku_id=stock.sku_id,
                status=ClaimWindow.Status.OPEN,
            )
        )
        if allocated + held != stock.reserved:
            problems.append(
                f"{stock}: {allocated} allocated orders + {held} held but {stock.reserved} reserved"
            )
    return problems


def position_gaps(*, launch_id: int) -> list[str]:
    """Waiting orders of each pool must hold positions 1..N in sequence order."""
    by_pool: dict = defaultdict(list)
    for order in Order.objects.filter(launch_id=launch_id, status__in=WAITING).order_by("sequence"):
        by_pool[(order.sku_id, order.pool_id)].append(order)
    problems = []
    for key, orders in by_pool.items():
        positions = [order_queue_position(order=o).position for o in orders]
        if positions != list(range(1, len(orders) + 1)):
            problems.append(f"pool {key}: positions {positions[:20]}")
    return problems


def starved_pools(*, launch_id: int) -> list[str]:
    """Pools where orders still wait although units are free (after a full allocator run).

    FCFS and no-oversell alone hold for an allocator that serves nobody; this is the
    liveness half: every unit that can go to a waiting order does.
    """
    waiting: dict = defaultdict(int)
    for sku, pool in Order.objects.filter(launch_id=launch_id, status__in=WAITING).values_list(
        "sku_id", "pool_id"
    ):
        waiting[(sku, pool)] += 1
    problems = []
    for stock in Stock.objects.filter(sku_id__in={k[0] for k in waiting}):
        key = (stock.sku_id, stock.location_id)
        if waiting.get(key) and stock.on_hand - stock.reserved > 0:
            problems.append(
                f"{stock}: {waiting[key]} waiting while {stock.on_hand - stock.reserved} are free"
            )
    return problems
