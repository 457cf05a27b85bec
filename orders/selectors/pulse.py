"""The launch's pulse: the few figures head office watches on launch morning, cheap
enough to poll every few seconds at any number of orders.

Each figure reads a small table or a narrow slice of a large one: stock rows of the
online pool, the allocator's waitlist counts (PoolState) and queued orders through their
partial index, and the last minute of orders through the BRIN index on created_at.
The last-hour chart counts a finished minute once: its count is kept in the cache (a
finished minute's orders never change their created_at), so a poll counts only the
minute in progress.

Changes are against a snapshot of the same figures taken about CHANGE_OVER ago; the
snapshots live in the cache, so they are shared by every head-office screen and lost
(the change then reads "—") when the cache is.
"""

import datetime
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from inventory.models import Launch
from inventory.selectors import location_online_pool_id, pool_available
from orders.models import Order, PoolState

CHANGE_OVER = datetime.timedelta(minutes=5)
SNAPSHOT_EVERY = datetime.timedelta(seconds=30)
CHART_MINUTES = 60
# Finished minutes' counts outlive the chart's hour a little, then go.
_MINUTE_TTL = int(datetime.timedelta(hours=2).total_seconds())
_SNAPSHOTS_TTL = int((CHANGE_OVER * 3).total_seconds())


@dataclass(frozen=True)
class Figure:
    value: int
    change: int | None  # None: nothing to compare with yet

    @property
    def change_sign(self) -> str:
        if not self.change:
            return "flat"
        return "up" if self.change > 0 else "down"


@dataclass(frozen=True)
class LaunchPulse:
    at: datetime.datetime
    since: datetime.datetime | None  # when the snapshot the changes are measured against was taken
    units_left_online: Figure
    sold_out_skus: Figure
    sold_out_codes: list[str]
    waitlist: Figure
    orders_per_minute: Figure
    last_hour: dict

    def figures(self) -> dict[str, int]:
        return {
            "units_left_online": self.units_left_online.value,
            "sold_out_skus": self.sold_out_skus.value,
            "waitlist": self.waitlist.value,
            "orders_per_minute": self.orders_per_minute.value,
        }


def launch_waitlist(*, launch: Launch) -> int:
    """Orders still owed a unit, in every pool: the allocator's waitlists and the queued
    orders it has not read yet. The same two counts as orders.selectors.availability, summed."""
    waiting = PoolState.objects.filter(launch=launch).aggregate(n=Sum("waiting"))["n"] or 0
    queued = Order.objects.filter(launch=launch, status=Order.Status.QUEUED).count()
    return waiting + queued


def _minute_key(launch: Launch, minute: datetime.datetime) -> str:
    return f"pulse:{launch.pk}:minute:{int(minute.timestamp())}"


def launch_last_hour(*, launch: Launch, now: datetime.datetime) -> dict:
    """Orders admitted per minute over the last hour, oldest first, the minute in progress
    last. Finished minutes come from the cache when counted before (one query counts every
    missing one at once); the minute in progress is counted on every call."""
    this_minute = now.replace(second=0, microsecond=0)
    minutes = [this_minute - datetime.timedelta(minutes=m) for m in range(CHART_MINUTES - 1, -1, -1)]
    finished = minutes[:-1]
    keys = {_minute_key(launch, m): m for m in finished}
    cached = cache.get_many(list(keys))
    counts = {keys[k]: n for k, n in cached.items()}
    missing = [m for m in finished if m not in counts]
    if missing:
        found = dict.fromkeys(missing, 0)
        for row in (
            Order.objects.filter(launch=launch, created_at__gte=missing[0], created_at__lt=this_minute)
            .annotate(minute=TruncMinute("created_at", tzinfo=datetime.UTC))
            .values("minute")
            .annotate(n=Count("pk"))
        ):
            if row["minute"] in found:
                found[row["minute"]] = row["n"]
        counts.update(found)
        cache.set_many({_minute_key(launch, m): found[m] for m in missing}, _MINUTE_TTL)
    counts[this_minute] = Order.objects.filter(launch=launch, created_at__gte=this_minute).count()
    return {
        "labels": [timezone.localtime(m).strftime("%H:%M") for m in minutes],
        "counts": [counts[m] for m in minutes],
    }


def _snapshots_key(launch: Launch) -> str:
    return f"pulse:{launch.pk}:snapshots"


def _baseline(
    *, launch: Launch, now: datetime.datetime, figures: dict[str, int]
) -> tuple[datetime.datetime | None, dict[str, int] | None]:
    """The snapshot about CHANGE_OVER old (the oldest kept, while none is that old yet), and
    today's figures added to the list when the newest is older than SNAPSHOT_EVERY. Two
    pollers may race to add one: the later write wins and a snapshot is lost, which only
    moves the baseline by SNAPSHOT_EVERY."""
    snapshots: list[tuple[float, dict[str, int]]] = cache.get(_snapshots_key(launch)) or []
    stamp = now.timestamp()
    if not snapshots or stamp - snapshots[-1][0] >= SNAPSHOT_EVERY.total_seconds():
        keep_after = stamp - (CHANGE_OVER + SNAPSHOT_EVERY * 2).total_seconds()
        cache.set(
            _snapshots_key(launch),
            [s for s in snapshots if s[0] >= keep_after] + [(stamp, figures)],
            _SNAPSHOTS_TTL,
        )
    older = [s for s in snapshots if stamp - s[0] >= CHANGE_OVER.total_seconds()]
    chosen = older[-1] if older else (snapshots[0] if snapshots else None)
    if chosen is None:
        return None, None
    return datetime.datetime.fromtimestamp(chosen[0], tz=datetime.UTC), chosen[1]


def launch_pulse(*, launch: Launch, now: datetime.datetime | None = None) -> LaunchPulse:
    """Units left online, sold-out SKUs, the waitlist and orders in the last minute, each
    with its change, and the last hour per minute. Six small queries."""
    now = now or timezone.now()
    skus = list(launch.skus.order_by("code").values_list("pk", "code"))
    online_id = location_online_pool_id()
    left = pool_available(pool_id=online_id, sku_ids=[pk for pk, _ in skus])
    sold_out_codes = [code for pk, code in skus if left[pk] <= 0]
    per_minute = Order.objects.filter(
        launch=launch, created_at__gt=now - datetime.timedelta(minutes=1)
    ).aggregate(n=Count("pk", filter=Q(created_at__lte=now)))["n"]
    figures = {
        "units_left_online": sum(max(0, n) for n in left.values()),
        "sold_out_skus": len(sold_out_codes),
        "waitlist": launch_waitlist(launch=launch),
        "orders_per_minute": per_minute,
    }
    since, before = _baseline(launch=launch, now=now, figures=figures)

    def figure(name: str) -> Figure:
        return Figure(value=figures[name], change=None if before is None else figures[name] - before[name])

    return LaunchPulse(
        at=now,
        since=since,
        units_left_online=figure("units_left_online"),
        sold_out_skus=figure("sold_out_skus"),
        sold_out_codes=sold_out_codes,
        waitlist=figure("waitlist"),
        orders_per_minute=figure("orders_per_minute"),
        last_hour=launch_last_hour(launch=launch, now=now),
    )


PULSE_SHARED_SECONDS = 2


def launch_pulse_shared(*, launch: Launch) -> LaunchPulse:
    """launch_pulse, shared for PULSE_SHARED_SECONDS by every head-office screen polling
    it: a room of screens on launch morning costs one count every two seconds, not one
    per screen per poll. Its `at` says when it was counted."""
    key = f"pulse:{launch.pk}:shared"
    pulse = cache.get(key)
    if pulse is None:
        pulse = launch_pulse(launch=launch)
        cache.set(key, pulse, PULSE_SHARED_SECONDS)
    return pulse
