"""Reads for the head-office launch pages and the store page.

Every number here is counted in the database at request time; nothing is cached, so
what staff see is what the ledger and the orders table say now.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet
from django.utils import timezone

from customers.models import UpgradeRegistration
from inventory.models import SKU, Location, Stock
from orders.models import Launch, Order
from stores.models import Store

STATUSES: tuple[str, ...] = tuple(Order.Status.values)
# A collect order the store still has to act on: waiting for a unit, or holding one.
COLLECT_WAITING_STATUSES: tuple[str, ...] = (
    Order.Status.QUEUED,
    Order.Status.WAITLISTED,
    Order.Status.ALLOCATED,
)


@dataclass(frozen=True)
class StockFigures:
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass
class SkuLine:
    sku: SKU
    online: StockFigures
    orders_by_status: dict[str, int]
    registrations: int

    @property
    def orders_total(self) -> int:
        return sum(self.orders_by_status.values())


@dataclass
class StoreLine:
    store: Store
    stock: list[StockFigures]  # in the order of the launch's SKUs
    registrations: int = 0
    collect_waiting: int = 0


@dataclass
class LaunchOverview:
    launch: Launch
    skus: list[SKU]
    sku_lines: list[SkuLine]
    store_lines: list[StoreLine]
    totals_by_status: dict[str, int] = field(default_factory=dict)
    registrations_total: int = 0
    home_delivery_registrations: int = 0


@dataclass
class StoreStockLine:
    sku: SKU
    stock: StockFigures


def launch_list() -> QuerySet[Launch]:
    return Launch.objects.order_by("-opens_at")


def launch_current() -> Launch | None:
    """The open launch that opened most recently, or None."""
    now = timezone.now()
    return Launch.objects.filter(opens_at__lte=now, closes_at__gt=now).order_by("-opens_at").first()


def launch_for_store_page() -> Launch | None:
    """The open launch if there is one, otherwise the next one to open, otherwise the latest."""
    current = launch_current()
    if current is not None:
        return current
    now = timezone.now()
    upcoming = Launch.objects.filter(opens_at__gt=now).order_by("opens_at").first()
    return upcoming or Launch.objects.order_by("-opens_at").first()


def _figures(row: dict | None) -> StockFigures:
    if row is None:
        return StockFigures()
    return StockFigures(on_hand=row["on_hand"], reserved=row["reserved"], in_transit=row["in_transit"])


def launch_overview(*, launch: Launch) -> LaunchOverview:
    """Online pool, orders by status and registrations per SKU; stock per store. Five queries."""
    skus = list(launch.skus.order_by("code"))
    sku_ids = [s.pk for s in skus]

    stock_rows = Stock.objects.filter(
        sku_id__in=sku_ids, location__kind__in=[Location.Kind.ONLINE, Location.Kind.STORE]
    ).values("location__kind", "location__store_id", "sku_id", "on_hand", "reserved", "in_transit")
    online: dict[int, dict] = {}
    per_store: dict[int, dict[int, dict]] = defaultdict(dict)
    for row in stock_rows:
        if row["location__kind"] == Location.Kind.ONLINE:
            online[row["sku_id"]] = row
        else:
            per_store[row["location__store_id"]][row["sku_id"]] = row

    by_status: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    totals = dict.fromkeys(STATUSES, 0)
    for row in Order.objects.filter(launch=launch).values("sku_id", "status").annotate(n=Count("pk")):
        by_status[row["sku_id"]][row["status"]] = row["n"]
        totals[row["status"]] = totals.get(row["status"], 0) + row["n"]

    reg_by_sku: dict[int, int] = defaultdict(int)
    reg_by_store: dict[int | None, int] = defaultdict(int)
    for row in (
        UpgradeRegistration.objects.filter(launch=launch)
        .values("preferred_sku_id", "preferred_store_id")
        .annotate(n=Count("pk"))
    ):
        reg_by_sku[row["preferred_sku_id"]] += row["n"]
        reg_by_store[row["preferred_store_id"]] += row["n"]

    collect_by_store = dict(
        Order.objects.filter(
            launch=launch, fulfilment=Order.Fulfilment.COLLECT, status__in=COLLECT_WAITING_STATUSES
        )
        .values_list("store_id")
        .annotate(n=Count("pk"))
    )

    sku_lines = [
        SkuLine(
            sku=sku,
            online=_figures(online.get(sku.pk)),
            orders_by_status=by_status[sku.pk],
            registrations=reg_by_sku[sku.pk],
        )
        for sku in skus
    ]
    store_lines = [
        StoreLine(
            store=store,
            stock=[_figures(per_store[store.pk].get(sku.pk)) for sku in skus],
            registrations=reg_by_store.get(store.pk, 0),
            collect_waiting=collect_by_store.get(store.pk, 0),
        )
        for store in Store.objects.select_related("partner").order_by("code")
    ]
    return LaunchOverview(
        launch=launch,
        skus=skus,
        sku_lines=sku_lines,
        store_lines=store_lines,
        totals_by_status=totals,
        registrations_total=sum(reg_by_sku.values()),
        home_delivery_registrations=reg_by_store.get(None, 0),
    )


def store_stock(*, store: Store, launch: Launch | None) -> list[StoreStockLine]:
    """The store's stock of the launch's SKUs (zeros where no row exists yet).

    Without a launch, every SKU the store holds a row for.
    """
    rows = {
        r["sku_id"]: r
        for r in Stock.objects.filter(location__store=store).values(
            "sku_id", "on_hand", "reserved", "in_transit"
        )
    }
    skus = (
        list(launch.skus.order_by("code"))
        if launch
        else list(SKU.objects.filter(pk__in=rows).order_by("code"))
    )
    return [StoreStockLine(sku=sku, stock=_figures(rows.get(sku.pk))) for sku in skus]


def store_collect_orders(*, store: Store, launch: Launch | None) -> dict[str, int]:
    """Collect orders for this store still to be handed over, by status."""
    counts = dict.fromkeys(COLLECT_WAITING_STATUSES, 0)
    if launch is None:
        return counts
    for status, n in (
        Order.objects.filter(
            launch=launch,
            store=store,
            fulfilment=Order.Fulfilment.COLLECT,
            status__in=COLLECT_WAITING_STATUSES,
        )
        .values_list("status")
        .annotate(n=Count("pk"))
    ):
        counts[status] = n
    return counts
