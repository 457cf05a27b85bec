"""Stock changes. Every change is a StockMovement and the Stock row moves in step.

The database is the last guard: the conditional UPDATE below refuses a change that would
take a level negative or reserve more than is on hand (and CHECK constraints back it up),
so concurrent writers can never oversell however they interleave.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q

from inventory.models import SKU, Location, Stock, StockMovement


class InsufficientStock(Exception):
    """The change would take stock below zero or reserve more than is on hand."""

    def __init__(self, *, location: Location, sku: SKU):
        super().__init__(f"Not enough stock of {sku} at {location}.")
        self.location = location
        self.sku = sku


@dataclass(frozen=True)
class StockChange:
    location: Location
    sku: SKU
    kind: str
    on_hand_delta: int = 0
    reserved_delta: int = 0
    in_transit_delta: int = 0
    reason: str = ""
    reference: str = ""


def stock_rows_for_update(*, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], Stock]:
    """Create any missing Stock rows, then lock them in primary-key order.

    Locking in one global order is what keeps two writers touching the same rows from
    deadlocking. Must be called inside a transaction.
    """
    wanted = set(pairs)
    existing = set(
        Stock.objects.filter(
            location_id__in={p[0] for p in wanted}, sku_id__in={p[1] for p in wanted}
        ).values_list("location_id", "sku_id")
    )
    missing = wanted - existing
    if missing:
        Stock.objects.bulk_create(
            [Stock(location_id=loc, sku_id=sku) for loc, sku in missing], ignore_conflicts=True
        )
    rows = (
        Stock.objects.select_for_update()
        .filter(location_id__in={p[0] for p in wanted}, sku_id__in={p[1] for p in wanted})
        .order_by("pk")
    )
    return {(r.location_id, r.sku_id): r for r in rows if (r.location_id, r.sku_id) in wanted}


@transaction.atomic
def stock_apply(*, changes: list[StockChange], user: AbstractBaseUser | None = None) -> list[StockMovement]:
    """Apply stock changes and write their ledger rows, all or nothing.

    Raises InsufficientStock (and changes nothing) if any change would break a level.
    """
    stock_rows_for_update(pairs=[(c.location.pk, c.sku.pk) for c in changes])
    for change in changes:
        updated = Stock.objects.filter(
            Q(on_hand__gte=-change.on_hand_delta)
            # after the change, reserved <= on_hand
            & Q(on_hand__gte=F("reserved") + change.reserved_delta - change.on_hand_delta),
            location=change.location,
            sku=change.sku,
            reserved__gte=-change.reserved_delta,
            in_transit__gte=-change.in_transit_delta,
        ).update(
            on_hand=F("on_hand") + change.on_hand_delta,
            reserved=F("reserved") + change.reserved_delta,
            in_transit=F("in_transit") + change.in_transit_delta,
        )
        if updated != 1:
            raise InsufficientStock(location=change.location, sku=change.sku)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return StockMovement.objects.bulk_create(
        [
            StockMovement(
                location=c.location,
                sku=c.sku,
                kind=c.kind,
                on_hand_delta=c.on_hand_delta,
                reserved_delta=c.reserved_delta,
                in_transit_delta=c.in_transit_delta,
                reason=c.reason,
                reference=c.reference,
                created_by_id=user_id,
            )
            for c in changes
        ]
    )


def stock_receive(
    *,
    location: Location,
    sku: SKU,
    quantity: int,
    reference: str,
    reason: str = "",
    user: AbstractBaseUser | None = None,
) -> StockMovement:
    """Units arrive at a location (a supplier receipt, or seeding a store for the demo)."""
    if quantity <= 0:
        raise ValueError("A receipt must be of at least one unit.")
    return stock_apply(
        changes=[
            StockChange(
                location=location,
                sku=sku,
                kind=StockMovement.Kind.RECEIPT,
                on_hand_delta=quantity,
                reason=reason,
                reference=reference,
            )
        ],
        user=user,
    )[0]
