"""Reads of the catalogue, stock, deliveries and plans shared by several callers.

Pure reads: nothing here creates a row (the locations' get-or-create lives in
inventory.services.stock), so a GET page that reads through these writes nothing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TypedDict

from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from inventory.models import (
    SKU,
    AllocationPlan,
    AllocationPlanLine,
    Delivery,
    Launch,
    Location,
    Stock,
    StockMovement,
)
from stores.models import Store

# --- Launches -----------------------------------------------------------------------------


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


# --- Locations and stock -------------------------------------------------------------------


def location_online_pool_id() -> int | None:
    """The online pool's location id, or None before any stock has been there."""
    return Location.objects.filter(kind=Location.Kind.ONLINE).values_list("pk", flat=True).first()


def location_of_store(*, store: Store) -> Location | None:
    return Location.objects.filter(store=store).first()


@dataclass(frozen=True)
class StockFigures:
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass
class StoreStockLine:
    sku: SKU
    stock: StockFigures


class StockRow(TypedDict):
    """The figures of a values() row of Stock (the row may carry other columns too)."""

    on_hand: int
    reserved: int
    in_transit: int


def stock_figures(row: StockRow | None) -> StockFigures:
    """Figures from a values() row of Stock (zeros where there is no row yet)."""
    if row is None:
        return StockFigures()
    return StockFigures(on_hand=row["on_hand"], reserved=row["reserved"], in_transit=row["in_transit"])


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
    return [StoreStockLine(sku=sku, stock=stock_figures(rows.get(sku.pk))) for sku in skus]


def store_stock_document(*, store: Store) -> list[dict]:
    """The store's stock as partners read it: the API's stock answer and the
    store.stock_received event carry the same lines."""
    return [
        {
            "sku": line.sku.code,
            "on_hand": line.stock.on_hand,
            "reserved": line.stock.reserved,
            "available": line.stock.available,
        }
        for line in store_stock(store=store, launch=None)
    ]


def pool_available(*, pool_id: int | None, sku_ids: list[int]) -> dict[int, int]:
    """Units free (on hand, not reserved) per SKU in one pool; 0 where none."""
    if pool_id is None:
        return dict.fromkeys(sku_ids, 0)
    free = dict.fromkeys(sku_ids, 0)
    for sku_id, on_hand, reserved in Stock.objects.filter(
        location_id=pool_id, sku_id__in=sku_ids
    ).values_list("sku_id", "on_hand", "reserved"):
        free[sku_id] = max(on_hand - reserved, 0)
    return free


# --- Deliveries ----------------------------------------------------------------------------


def delivery_next(*, launch_id: int, sku_id: int | None = None) -> Delivery | None:
    """The next announced delivery of the launch, from today on: with a SKU, the next one
    bringing it (or whose lines are not known yet), the honest date to tell a customer
    waiting for that SKU."""
    deliveries = Delivery.objects.filter(
        launch_id=launch_id, status=Delivery.Status.ANNOUNCED, expected_on__gte=timezone.localdate()
    )
    if sku_id is not None:
        deliveries = deliveries.filter(Q(lines__sku_id=sku_id) | Q(lines__isnull=True))
    return deliveries.order_by("expected_on", "reference").first()


def _received_at(location_id: int | OuterRef, reference) -> QuerySet[StockMovement]:
    """A store has received a delivery once it confirmed it: a receipt or an adjustment
    carrying the delivery's reference at its location (the one rule for 'received')."""
    return StockMovement.objects.filter(
        location_id=location_id,
        reference=reference,
        kind__in=[StockMovement.Kind.STORE_RECEIPT, StockMovement.Kind.ADJUSTMENT],
    )


def store_delivery_expected(*, delivery: Delivery, location: Location) -> dict[int, int]:
    """Units per SKU the applied plan sent to this store."""
    return dict(
        AllocationPlanLine.objects.filter(
            plan__delivery=delivery,
            plan__status=AllocationPlan.Status.APPLIED,
            location=location,
            quantity__gt=0,
        ).values_list("sku_id", "quantity")
    )


def store_delivery_is_received(*, delivery: Delivery, location: Location) -> bool:
    return _received_at(location.pk, delivery.reference).exists()


def store_deliveries(*, location: Location, to_receive_only: bool, limit: int) -> list[Delivery]:
    """Applied deliveries that sent units to this store, newest plan first.

    Each carries `units` (sent here) and `received` (confirmed by the store). One query.
    With to_receive_only, only those the store has still to confirm, oldest first.
    """
    lines = AllocationPlanLine.objects.filter(
        plan__delivery=OuterRef("pk"), location=location, quantity__gt=0
    )
    deliveries = (
        Delivery.objects.filter(plan__status=AllocationPlan.Status.APPLIED)
        .filter(Exists(lines))
        .annotate(
            received=Exists(_received_at(location.pk, OuterRef("reference"))),
            units=Sum(
                "plan__lines__quantity",
                filter=Q(plan__lines__location=location, plan__lines__quantity__gt=0),
            ),
        )
    )
    if to_receive_only:
        deliveries = deliveries.filter(received=False).order_by("expected_on", "reference")
    else:
        deliveries = deliveries.order_by("-distributed_at", "reference")
    return list(deliveries[:limit])


# --- Plans ---------------------------------------------------------------------------------


def plan_remaining(*, plan: AllocationPlan) -> dict[int, int]:
    """Units of each SKU of the delivery not yet given to a pool (negative: too many given)."""
    delivered = dict(plan.delivery.lines.values_list("sku_id", "quantity"))
    planned = dict(plan.lines.values("sku_id").annotate(n=Sum("quantity")).values_list("sku_id", "n"))
    return {sku: delivered[sku] - (planned.get(sku) or 0) for sku in delivered}


def deliveries_due(*, today: datetime.date | None = None) -> QuerySet[Delivery]:
    """Deliveries whose day has come and that are not yet distributed."""
    today = today or timezone.localdate()
    return Delivery.objects.filter(
        Q(status=Delivery.Status.ANNOUNCED) | Q(status=Delivery.Status.RECEIVED), expected_on__lte=today
    ).order_by("expected_on", "pk")
