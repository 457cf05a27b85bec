"""The launch's orders and registrations counted once, for both of head office's snapshots.

The overview (orders per SKU and status, click and collect orders waiting per store) and
the demand report (orders per pool and SKU: ordered, allocated, waiting) are each a sum of
one grouping of the launch's orders, so one scan serves both: at 320,000 orders each scan
is a few hundred milliseconds of a core, and beat's recount ran three of them.
"""

from dataclasses import dataclass

from django.db.models import Count

from customers.selectors import registrations_by_preference
from orders.models import Order


@dataclass(frozen=True)
class OrderCount:
    sku_id: int
    pool_id: int
    store_id: int | None  # set for click and collect (Order's order_store_iff_collect)
    status: str
    n: int


@dataclass(frozen=True)
class LaunchCounts:
    orders: list[OrderCount]
    # (preferred store id, None for home delivery; preferred SKU id) -> registrations
    registrations: dict[tuple[int | None, int], int]


def launch_counts(*, launch_id: int) -> LaunchCounts:
    """Two statements: the launch's orders per (SKU, pool, store, status), at most a few
    hundred rows, and its registrations per preference."""
    rows = (
        Order.objects.filter(launch_id=launch_id)
        .values_list("sku_id", "pool_id", "store_id", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return LaunchCounts(
        orders=[OrderCount(*row) for row in rows],
        registrations=registrations_by_preference(launch_id=launch_id),
    )
