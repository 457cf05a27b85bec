"""Head office's view of stock notices: per pool, who was told and what came of it."""

from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from inventory.models import Launch, Location
from orders.models import ClaimWindow, StockNotice


@dataclass(frozen=True)
class NoticePoolLine:
    sku_code: str
    pool: str
    windows: int
    notified: int
    claimed: int
    expired: int  # told, did not order, and the window has closed
    held_now: int
    returned: int  # units given back by closed windows


def stock_notice_summary(*, launch: Launch) -> list[NoticePoolLine]:
    windows = (
        ClaimWindow.objects.filter(launch=launch)
        .values("sku__code", "pool_id")
        .annotate(
            windows=Count("pk"),
            told=Sum("notified"),
            took=Sum("claimed"),
            open_units=Sum("units", filter=Q(status=ClaimWindow.Status.OPEN)),
            open_claimed=Sum("claimed", filter=Q(status=ClaimWindow.Status.OPEN)),
            closed_units=Sum("units", filter=Q(status=ClaimWindow.Status.CLOSED)),
            closed_claimed=Sum("claimed", filter=Q(status=ClaimWindow.Status.CLOSED)),
        )
        .order_by("sku__code", "pool_id")
    )
    expired = {
        (row["window__sku__code"], row["window__pool_id"]): row["n"]
        for row in StockNotice.objects.filter(
            launch=launch, order__isnull=True, window__status=ClaimWindow.Status.CLOSED
        )
        .values("window__sku__code", "window__pool_id")
        .annotate(n=Count("pk"))
    }
    names = {
        loc.pk: (loc.store.name if loc.store is not None else "Online pool (home delivery)")
        for loc in Location.objects.filter(pk__in={w["pool_id"] for w in windows}).select_related("store")
    }
    return [
        NoticePoolLine(
            sku_code=w["sku__code"],
            pool=names.get(w["pool_id"], ""),
            windows=w["windows"],
            notified=w["told"] or 0,
            claimed=w["took"] or 0,
            expired=expired.get((w["sku__code"], w["pool_id"]), 0),
            held_now=(w["open_units"] or 0) - (w["open_claimed"] or 0),
            returned=(w["closed_units"] or 0) - (w["closed_claimed"] or 0),
        )
        for w in windows
    ]
