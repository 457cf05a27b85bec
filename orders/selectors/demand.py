"""Demand per pool and SKU: what allocation plans are split by, and what head office argues with.

Pools are inventory Locations: the online pool, and one per store. An order waits in its
pool; a registration without an order counts at its preferred store (or online, for
home delivery).
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Sum
from django.utils import timezone

from customers.models import UpgradeRegistration
from customers.selectors import count_by_preference
from inventory.fair_share import Demand
from inventory.models import DeliveryLine, Launch, Location, Stock, StockMovement
from inventory.selectors import location_online_pool_id
from orders.models import Order
from orders.selectors.launch_counts import LaunchCounts, launch_counts

WAITING = (Order.Status.QUEUED, Order.Status.WAITLISTED)
SERVED = (Order.Status.ALLOCATED, Order.Status.FULFILLED)


def _unordered_by_preference(
    *, launch: Launch, counts: LaunchCounts | None = None
) -> dict[tuple[int | None, int], int]:
    """(preferred store id, preferred SKU id) -> registrations without an order.

    Given the launch's `counts` (its registrations per preference already counted), the
    smaller side is counted: while fewer than half the registrations have ordered, those
    with an order are counted, from the orders' side, and taken from the registrations
    `counts` holds. A launch's first hours are like that, and counting those without an
    order read every registration: 275 ms for 1,000,000 registrations and 913 orders on
    the bench's machine, against 9 ms. A registration made and ordered between the two
    counts is taken from a figure it was not counted in, so no figure goes below zero."""
    registrations = UpgradeRegistration.objects.filter(launch=launch)
    ordered = Exists(Order.objects.filter(launch=launch, customer_id=OuterRef("customer_id")))
    if counts is not None and 2 * sum(c.n for c in counts.orders) < sum(counts.registrations.values()):
        with_order = count_by_preference(registrations=registrations.filter(ordered))
        return {
            key: n - with_order.get(key, 0)
            for key, n in counts.registrations.items()
            if n > with_order.get(key, 0)
        }
    return count_by_preference(registrations=registrations.exclude(ordered))


def _pool_of_store() -> dict[int | None, int]:
    """Preferred store id -> the pool its registrations count in: the store's own location;
    None (home delivery) -> the online pool. A store with no location yet has no pool."""
    pools: dict[int | None, int] = dict(
        Location.objects.filter(kind=Location.Kind.STORE).values_list("store_id", "pk")
    )
    online = location_online_pool_id()
    if online is not None:
        pools[None] = online
    return pools


def _by_pool(
    by_preference: dict[tuple[int | None, int], int], pool_of_store: dict[int | None, int]
) -> dict[tuple[int, int], int]:
    """Registrations per (preferred store, SKU) as per (pool, SKU)."""
    pooled: defaultdict[tuple[int, int], int] = defaultdict(int)
    for (store_id, sku_id), n in by_preference.items():
        if (location := pool_of_store.get(store_id)) is not None:
            pooled[(location, sku_id)] += n
    return pooled


def demand_by_pool(*, launch: Launch) -> dict[tuple[int, int], Demand]:
    """(location id, SKU id) -> orders waiting there and registrations without an order."""
    waiting: defaultdict[tuple[int, int], int] = defaultdict(int)
    for row in (
        Order.objects.filter(launch=launch, status__in=WAITING)
        .values("pool_id", "sku_id")
        .annotate(n=Count("*"))
    ):
        waiting[(row["pool_id"], row["sku_id"])] = row["n"]
    registered = _by_pool(_unordered_by_preference(launch=launch), _pool_of_store())
    return {
        key: Demand(waiting=waiting[key], registered=registered[key])
        for key in set(waiting) | set(registered)
    }


@dataclass
class DemandRow:
    location_id: int
    location_code: str
    store_name: str
    sku_id: int
    sku_code: str
    registered: int = 0
    ordered: int = 0
    allocated: int = 0
    sold: int = 0
    waiting: int = 0
    delivered: int = 0
    available: int = 0
    registered_without_order: int = 0

    @property
    def shortfall(self) -> int:
        """Units still needed to serve everyone who ordered or registered here."""
        return max(0, self.waiting + self.registered_without_order - self.available)


@dataclass
class SupplyRow:
    sku_code: str
    requested: int
    delivered: int

    @property
    def shortfall(self) -> int:
        return max(0, self.requested - self.delivered)


def demand_vs_supply(
    *, launch: Launch, counts: LaunchCounts | None = None
) -> tuple[list[DemandRow], list[SupplyRow]]:
    """Per pool and SKU: registered, ordered, allocated, sold, waiting, delivered; and per SKU
    what was asked of the supplier against what came. The launch's `counts` are counted
    here if not given."""
    counts = counts if counts is not None else launch_counts(launch_id=launch.pk)
    skus = {s.pk: s.code for s in launch.skus.all()}
    pools = [
        *Location.objects.filter(kind=Location.Kind.ONLINE),
        *Location.objects.filter(kind=Location.Kind.STORE).select_related("store").order_by("code"),
    ]
    rows = {
        (loc.pk, sku_id): DemandRow(
            location_id=loc.pk,
            location_code=loc.code,
            store_name=loc.store.name if loc.store is not None else "Online (home delivery)",
            sku_id=sku_id,
            sku_code=code,
        )
        for loc in pools
        for sku_id, code in sorted(skus.items(), key=lambda kv: kv[1])
    }
    pool_of_store = _pool_of_store()
    for key, n in _by_pool(counts.registrations, pool_of_store).items():
        if (target := rows.get(key)) is not None:
            target.registered += n
    for key, n in _by_pool(_unordered_by_preference(launch=launch, counts=counts), pool_of_store).items():
        if (target := rows.get(key)) is not None:
            target.registered_without_order += n
    for count in counts.orders:
        if (
            count.status == Order.Status.CANCELLED
            or (target := rows.get((count.pool_id, count.sku_id))) is None
        ):
            continue
        target.ordered += count.n
        if count.status in SERVED:
            target.allocated += count.n
        elif count.status in WAITING:
            target.waiting += count.n
    for moved in (
        StockMovement.objects.filter(
            sku_id__in=skus, kind__in=[StockMovement.Kind.SALE, StockMovement.Kind.TRANSFER_IN]
        )
        .values("location_id", "sku_id", "kind")
        .annotate(on_hand=Sum("on_hand_delta"), in_transit=Sum("in_transit_delta"))
    ):
        if (target := rows.get((moved["location_id"], moved["sku_id"]))) is None:
            continue
        if moved["kind"] == StockMovement.Kind.SALE:
            target.sold += -moved["on_hand"]
        else:
            target.delivered += moved["on_hand"] + moved["in_transit"]
    for stock in Stock.objects.filter(sku_id__in=skus).values("location_id", "sku_id", "on_hand", "reserved"):
        if (target := rows.get((stock["location_id"], stock["sku_id"]))) is not None:
            target.available = stock["on_hand"] - stock["reserved"]
    supply = [
        SupplyRow(
            sku_code=skus[r["sku_id"]],
            requested=r["requested"] or 0,
            delivered=r["delivered"] or 0,
        )
        for r in DeliveryLine.objects.filter(delivery__launch=launch)
        .values("sku_id")
        .annotate(requested=Sum("requested_quantity"), delivered=Sum("quantity"))
        .order_by("sku__code")
        if r["sku_id"] in skus
    ]
    return list(rows.values()), supply


DEMAND_SNAPSHOT_SECONDS = 15


@dataclass
class DemandSnapshot:
    """demand_vs_supply's answer as counted at `counted_at`."""

    rows: list[DemandRow]
    supply: list[SupplyRow]
    counted_at: datetime.datetime = field(default_factory=timezone.now)


def _snapshot_key(launch: Launch) -> str:
    return f"demand-snapshot:{launch.pk}"


def demand_vs_supply_refresh(
    *, launch: Launch, seconds: float = DEMAND_SNAPSHOT_SECONDS, counts: LaunchCounts | None = None
) -> DemandSnapshot:
    """Count demand_vs_supply now and keep it `seconds` as the launch's snapshot."""
    rows, supply = demand_vs_supply(launch=launch, counts=counts)
    snapshot = DemandSnapshot(rows=rows, supply=supply)
    cache.set(_snapshot_key(launch), snapshot, seconds)
    return snapshot


def demand_vs_supply_cached(*, launch: Launch) -> DemandSnapshot:
    """The launch's snapshot of demand_vs_supply, counted now if there is none: it counts
    every order, registration and stock movement of the launch (about 300 ms at launch
    scale), which a page head office reloads on launch morning should not pay each time.
    Beat keeps the snapshots of the launches head office watches fresh
    (orders.selectors.launches.office_snapshots_refresh)."""
    snapshot = cache.get(_snapshot_key(launch))
    if snapshot is None:
        snapshot = demand_vs_supply_refresh(launch=launch)
    return snapshot
