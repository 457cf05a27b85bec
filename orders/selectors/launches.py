"""Reads for head office's launch pages: the overview and its charts.

The tables below the live figures count every order and registration of the launch
(hundreds of milliseconds at launch scale), so the page reads them through a snapshot in
the cache and says how old it is; the figures that must be live are
orders.selectors.pulse's, counted on every poll. Beat recounts the snapshots of the
launches head office watches (office_snapshots_refresh), so no page load pays for the
count; a page that finds none (no beat: the demo, the tests) counts and keeps it
OVERVIEW_SNAPSHOT_SECONDS itself.
"""

import datetime
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from config.metrics import Backlog
from inventory.models import SKU, Launch, Location, Stock
from inventory.selectors import StockFigures, StockRow, stock_figures
from orders.models import Order
from orders.selectors.demand import demand_vs_supply_refresh
from orders.selectors.launch_counts import LaunchCounts, launch_counts
from orders.selectors.store_page import COLLECT_WAITING_STATUSES
from stores.models import Store

STATUSES: tuple[str, ...] = tuple(Order.Status.values)


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
    counted_at: datetime.datetime = field(default_factory=timezone.now)


def launch_overview(*, launch: Launch, counts: LaunchCounts | None = None) -> LaunchOverview:
    """Online pool, orders by status and registrations per SKU; stock per store. Five
    queries, two of them the launch's `counts` (counted here if not given)."""
    counts = counts if counts is not None else launch_counts(launch_id=launch.pk)
    skus = list(launch.skus.order_by("code"))
    sku_ids = [s.pk for s in skus]

    stock_rows = Stock.objects.filter(
        sku_id__in=sku_ids, location__kind__in=[Location.Kind.ONLINE, Location.Kind.STORE]
    ).values("location__kind", "location__store_id", "sku_id", "on_hand", "reserved", "in_transit")
    online: dict[int, StockRow] = {}
    per_store: dict[int, dict[int, StockRow]] = defaultdict(dict)
    for stock_row in stock_rows:
        if stock_row["location__kind"] == Location.Kind.ONLINE:
            online[stock_row["sku_id"]] = stock_row
        else:
            per_store[stock_row["location__store_id"]][stock_row["sku_id"]] = stock_row

    by_status: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    totals = dict.fromkeys(STATUSES, 0)
    collect_by_store: dict[int, int] = defaultdict(int)
    for count in counts.orders:
        by_status[count.sku_id][count.status] += count.n
        totals[count.status] += count.n
        if count.store_id is not None and count.status in COLLECT_WAITING_STATUSES:
            collect_by_store[count.store_id] += count.n

    reg_by_sku: dict[int, int] = defaultdict(int)
    reg_by_store: dict[int | None, int] = defaultdict(int)
    for (store_id, sku_id), n in counts.registrations.items():
        reg_by_sku[sku_id] += n
        reg_by_store[store_id] += n

    sku_lines = [
        SkuLine(
            sku=sku,
            online=stock_figures(online.get(sku.pk)),
            orders_by_status=by_status[sku.pk],
            registrations=reg_by_sku[sku.pk],
        )
        for sku in skus
    ]
    store_lines = [
        StoreLine(
            store=store,
            stock=[stock_figures(per_store[store.pk].get(sku.pk)) for sku in skus],
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


OVERVIEW_SNAPSHOT_SECONDS = 15


def _overview_key(launch: Launch) -> str:
    return f"launch-overview:{launch.pk}"


def launch_overview_refresh(
    *, launch: Launch, seconds: float = OVERVIEW_SNAPSHOT_SECONDS, counts: LaunchCounts | None = None
) -> LaunchOverview:
    """Count launch_overview now and keep it `seconds` as the launch's snapshot."""
    overview = launch_overview(launch=launch, counts=counts)
    cache.set(_overview_key(launch), overview, seconds)
    return overview


def launch_overview_cached(*, launch: Launch) -> LaunchOverview:
    """The launch's snapshot of launch_overview (its `counted_at` says when it was counted),
    counted now if there is none."""
    overview = cache.get(_overview_key(launch))
    if overview is None:
        overview = launch_overview_refresh(launch=launch)
    return overview


# A launch's window and the day after its opening: the morning's orders are still being
# allocated, collected and cancelled after a short window closes, and head office reads
# the overview and the demand report all that day to plan the next deliveries. Older
# launches are read now and then, and a page that finds no snapshot counts its own.
# Launches not open yet have no orders to count.
WATCHED_AFTER_OPENING = datetime.timedelta(days=1)
# Beat refreshes every 10 s (config/settings/base.py); a refreshed snapshot is kept
# longer than that, so a late or skipped run never leaves a page to find it expired,
# and a beat that stopped leaves the pages counting for themselves within a minute.
REFRESHED_SNAPSHOT_SECONDS = 60


def launches_watched(*, now: datetime.datetime | None = None) -> list[Launch]:
    """Launches whose window is open now or opened within WATCHED_AFTER_OPENING."""
    now = now or timezone.now()
    return list(
        Launch.objects.filter(opens_at__lte=now)
        .filter(Q(closes_at__gt=now) | Q(opens_at__gte=now - WATCHED_AFTER_OPENING))
        .order_by("opens_at", "pk")
    )


def office_snapshots_refresh(
    *, now: datetime.datetime | None = None, seconds: float = REFRESHED_SNAPSHOT_SECONDS
) -> list[Launch]:
    """Recount the overview and demand snapshots of every launch head office watches and
    keep them `seconds` (beat's refresh-office-snapshots); returns those launches."""
    watched = launches_watched(now=now)
    for launch in watched:
        with counting_on_one_core():
            counts = launch_counts(launch_id=launch.pk)
            launch_overview_refresh(launch=launch, seconds=seconds, counts=counts)
            demand_vs_supply_refresh(launch=launch, seconds=seconds, counts=counts)
    return watched


@contextmanager
def counting_on_one_core():
    """Counts without PostgreSQL's parallel workers. Each count scans the launch's orders or
    registrations, and with parallel workers every one took both cores of the bench's
    machine for ~130 ms, 1 s of every 10: page loads that fell in it waited, and their p99
    doubled. On one worker the recount takes longer but leaves the other cores to pages."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield


# The smallest bucket that keeps the chart at or under this many points.
CHART_MAX_POINTS = 1440
_BUCKETS: tuple[tuple[str, datetime.timedelta], ...] = (
    ("minute", datetime.timedelta(minutes=1)),
    ("hour", datetime.timedelta(hours=1)),
    ("day", datetime.timedelta(days=1)),
)


def _bucket_for(span: datetime.timedelta) -> tuple[str, datetime.timedelta]:
    for unit, step in _BUCKETS:
        if span / step <= CHART_MAX_POINTS:
            return unit, step
    return _BUCKETS[-1]


def _truncate(moment: datetime.datetime, unit: str) -> datetime.datetime:
    local = timezone.localtime(moment)
    if unit == "minute":
        return local.replace(second=0, microsecond=0)
    if unit == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# A bucket's count is kept once the bucket ended at least this long ago: an order's
# created_at is taken before its transaction commits, so the newest moments may still gain
# rows, but never a bucket a minute old. Kept counts outlive a launch morning.
SETTLED_AFTER = datetime.timedelta(minutes=1)
_SETTLED_TTL = int(datetime.timedelta(hours=6).total_seconds())


def _settled_key(launch: Launch, unit: str) -> str:
    # The opening is in the key: moving it moves every bucket.
    return f"launch-series:{launch.pk}:{int(launch.opens_at.timestamp())}:{unit}"


def launch_orders_over_time(*, launch: Launch, now: datetime.datetime | None = None) -> dict:
    """Orders admitted per minute (or hour, or day for long windows) from the window's
    opening to now or its close, counted in PostgreSQL with date_trunc in one query.

    A settled bucket (ended SETTLED_AFTER ago; its orders never change their created_at
    and are never deleted) is counted once and kept in the cache, so a call counts only
    the buckets since the last call and the one in progress: the cost follows the last
    minutes' orders, not the launch's (a whole morning's 320,000 orders took 130-250 ms
    to count on every call). Empty buckets are filled with zeros here (at most
    CHART_MAX_POINTS of them), so the chart's time axis is even.
    """
    now = now or timezone.now()
    end = min(now, launch.closes_at)
    if end <= launch.opens_at:
        return {"unit": "minute", "labels": [], "counts": [], "total": 0, "peak": None}
    unit, step = _bucket_for(end - launch.opens_at)
    settle_to = max(launch.opens_at, _truncate(end - SETTLED_AFTER, unit))
    key = _settled_key(launch, unit)
    through, settled = cache.get(key) or (launch.opens_at, {})
    if through > settle_to:  # asked about an earlier moment than the kept counts: count it all
        through, settled = launch.opens_at, {}
    rows = (
        Order.objects.filter(launch=launch, created_at__gte=through, created_at__lt=end)
        .annotate(bucket=Trunc("created_at", unit))
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by("bucket")
    )
    settled = dict(settled)
    counts: dict[datetime.datetime, int] = {}
    for r in rows:
        bucket = timezone.localtime(r["bucket"])
        (settled if bucket < settle_to else counts)[bucket] = r["n"]
    if settle_to > through:
        cache.set(key, (settle_to, settled), _SETTLED_TTL)
    counts.update(settled)
    buckets: dict[datetime.datetime, int] = {}
    moment = launch.opens_at
    while moment < end:
        buckets.setdefault(_truncate(moment, unit), 0)
        moment += step
    buckets.setdefault(_truncate(end - datetime.timedelta(microseconds=1), unit), 0)  # the partial last one
    for bucket, n in counts.items():  # a bucket the walk missed (a DST seam) still counts
        buckets[bucket] = buckets.get(bucket, 0) + n
    fmt = {"minute": "%H:%M", "hour": "%d %b %H:00", "day": "%d %b"}[unit]
    ordered = sorted(buckets.items())
    peak = max(ordered, key=lambda item: item[1], default=None)
    return {
        "unit": unit,
        "labels": [b.strftime(fmt) for b, _ in ordered],
        "counts": [n for _, n in ordered],
        "total": sum(counts.values()),
        "peak": {"label": peak[0].strftime(fmt), "count": peak[1]} if peak and peak[1] else None,
    }


def launch_chart_data(
    *, overview: LaunchOverview, now: datetime.datetime | None = None, with_window_series: bool = True
) -> dict:
    """Everything the overview's charts draw, as plain JSON-ready values.

    Built from the overview's own counts plus one query for the time series, so the
    charts and the tables beside them cannot disagree. The overview page leaves the whole
    window's series out (with_window_series=False): it draws the last hour from the pulse.
    """
    store_available: dict[int, int] = defaultdict(int)
    for line in overview.store_lines:
        for sku, figures in zip(overview.skus, line.stock, strict=True):
            store_available[sku.pk] += figures.available
    lines = overview.sku_lines
    data: dict = {}
    if with_window_series:
        data["orders_over_time"] = launch_orders_over_time(launch=overview.launch, now=now)
    return data | {
        "by_status": {
            "labels": list(STATUSES),
            "counts": [overview.totals_by_status.get(s, 0) for s in STATUSES],
        },
        # Demand (registered, ordered) beside supply: units already given to orders plus
        # units free now online and in stores. On hand alone would shrink as orders are
        # served and make the shortfall look worse than it is.
        "stock_vs_demand": {
            "labels": [line.sku.code for line in lines],
            "registered": [line.registrations for line in lines],
            "ordered": [line.orders_total - line.orders_by_status[Order.Status.CANCELLED] for line in lines],
            "served": [
                line.orders_by_status[Order.Status.ALLOCATED] + line.orders_by_status[Order.Status.FULFILLED]
                for line in lines
            ],
            "available": [line.online.available + store_available[line.sku.pk] for line in lines],
        },
    }


def allocator_backlog() -> Backlog:
    """Orders admitted and not yet settled by the allocator (queued), across every launch,
    and the oldest one's admission time: its age is the allocator's lag. Read through the
    partial index on queued orders, so the cost follows the backlog, not the table."""
    figures = Order.objects.filter(status=Order.Status.QUEUED).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    return Backlog(waiting=figures["n"], oldest_at=figures["oldest"])
