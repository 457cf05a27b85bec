"""Stock changes. Every change is a StockMovement and the Stock row moves in step.

The database is the last guard: the conditional UPDATE below refuses a change that would
take a level negative or reserve more than is on hand (and CHECK constraints back it up),
so concurrent writers can never oversell however they interleave. This module is the
only writer of inventory_stock and inventory_stockmovement.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Q, Sum

from inventory.models import SKU, Location, Stock, StockMovement
from stores.models import Store

# --- Locations: where stock lives ---------------------------------------------------------


def location_online_pool() -> Location:
    """The online pool's location, created on first use."""
    return Location.objects.get_or_create(code="ONLINE", defaults={"kind": Location.Kind.ONLINE})[0]


def location_central() -> Location:
    """The central warehouse's location, created on first use."""
    return Location.objects.get_or_create(code="CENTRAL", defaults={"kind": Location.Kind.CENTRAL})[0]


def location_for_store(*, store: Store) -> Location:
    """A store's location, created on first use."""
    return Location.objects.get_or_create(
        store=store, defaults={"code": store.code, "kind": Location.Kind.STORE}
    )[0]


# --- Changes ------------------------------------------------------------------------------


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
def stock_apply(*, changes: list[StockChange], user: User | None = None) -> list[StockMovement]:
    """Apply stock changes and write their ledger rows, all or nothing.

    Changes to the same row are summed and the row's final levels checked. Raises
    InsufficientStock (and changes nothing) if any row would break a level. On PostgreSQL
    every row moves in one set-based UPDATE, so a delivery spread over 1,500 stock rows
    is one statement, not 1,500.
    """
    if not changes:
        return []
    stock_rows_for_update(pairs=[(c.location.pk, c.sku.pk) for c in changes])
    totals: dict[tuple[int, int], list[int]] = {}
    subjects: dict[tuple[int, int], StockChange] = {}
    for change in changes:
        key = (change.location.pk, change.sku.pk)
        subjects.setdefault(key, change)
        total = totals.setdefault(key, [0, 0, 0])
        total[0] += change.on_hand_delta
        total[1] += change.reserved_delta
        total[2] += change.in_transit_delta
    if connection.vendor == "postgresql":
        keys = list(totals)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE inventory_stock s SET on_hand = s.on_hand + v.o, reserved = s.reserved + v.r, "
                "in_transit = s.in_transit + v.t "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[]) AS v(l, k, o, r, t) "
                "WHERE s.location_id = v.l AND s.sku_id = v.k AND s.on_hand + v.o >= 0 AND s.reserved + v.r >= 0 "
                "AND s.in_transit + v.t >= 0 AND s.on_hand + v.o >= s.reserved + v.r "
                "RETURNING s.location_id, s.sku_id",
                [
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [totals[k][0] for k in keys],
                    [totals[k][1] for k in keys],
                    [totals[k][2] for k in keys],
                ],
            )
            done = {tuple(row) for row in cursor.fetchall()}
        refused = [k for k in keys if k not in done]
        if refused:
            change = subjects[refused[0]]
            raise InsufficientStock(location=change.location, sku=change.sku)
    else:
        for key, (o, r, t) in totals.items():
            updated = Stock.objects.filter(
                Q(on_hand__gte=-o) & Q(on_hand__gte=F("reserved") + r - o),  # after: reserved <= on_hand
                location_id=key[0],
                sku_id=key[1],
                reserved__gte=-r,
                in_transit__gte=-t,
            ).update(on_hand=F("on_hand") + o, reserved=F("reserved") + r, in_transit=F("in_transit") + t)
            if updated != 1:
                raise InsufficientStock(location=subjects[key].location, sku=subjects[key].sku)
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
    user: User | None = None,
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


def stock_reserve_bulk(*, reservations: Mapping[tuple[int, int], int], reason: str, reference: str) -> None:
    """Reserve units for orders, many pools at once: (location id, SKU id) -> units, with
    one ledger row per pool.

    For the allocator, which has locked these rows (stock_rows_for_update) and decided who
    gets what under that lock. On PostgreSQL one statement whatever the number of pools.
    The guard is stock_apply's (never reserve more than is on hand): a row it refuses
    raises InsufficientStock, and the caller's transaction rolls back whole.
    """
    reservations = {key: n for key, n in reservations.items() if n}
    if not reservations:
        return
    if connection.vendor == "postgresql":
        keys = sorted(reservations)
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH v AS (SELECT * FROM unnest(%(loc)s::bigint[], %(sku)s::bigint[], %(n)s::int[]) "
                "  AS v(location_id, sku_id, n)), "
                "s AS (UPDATE inventory_stock s SET reserved = s.reserved + v.n FROM v "
                "  WHERE s.location_id = v.location_id AND s.sku_id = v.sku_id AND s.reserved + v.n <= s.on_hand "
                "  RETURNING s.location_id, s.sku_id, v.n) "
                "INSERT INTO inventory_stockmovement (location_id, sku_id, kind, on_hand_delta, reserved_delta, "
                "in_transit_delta, reason, reference, created_at) "
                "SELECT s.location_id, s.sku_id, %(kind)s, 0, s.n, 0, %(reason)s, %(reference)s, now() FROM s",
                {
                    "loc": [k[0] for k in keys],
                    "sku": [k[1] for k in keys],
                    "n": [reservations[k] for k in keys],
                    "kind": StockMovement.Kind.ALLOCATION,
                    "reason": reason,
                    "reference": reference,
                },
            )
            written = cursor.rowcount
        if written != len(keys):
            _refuse_reservation(reservations)
        return
    for (location_id, sku_id), count in reservations.items():
        updated = Stock.objects.filter(
            location_id=location_id, sku_id=sku_id, on_hand__gte=F("reserved") + count
        ).update(reserved=F("reserved") + count)
        if updated != 1:
            _refuse_reservation({(location_id, sku_id): count})
    StockMovement.objects.bulk_create(
        [
            StockMovement(
                location_id=location_id,
                sku_id=sku_id,
                kind=StockMovement.Kind.ALLOCATION,
                reserved_delta=count,
                reason=reason,
                reference=reference,
            )
            for (location_id, sku_id), count in reservations.items()
        ]
    )


def _refuse_reservation(reservations: Mapping[tuple[int, int], int]) -> None:
    short = [
        stock
        for stock in Stock.objects.select_related("location", "sku").filter(
            location_id__in={k[0] for k in reservations}, sku_id__in={k[1] for k in reservations}
        )
        if (stock.location_id, stock.sku_id) in reservations
        and stock.reserved + reservations[(stock.location_id, stock.sku_id)] > stock.on_hand
    ]
    if short:
        raise InsufficientStock(location=short[0].location, sku=short[0].sku)
    location_id, sku_id = next(iter(reservations))
    raise InsufficientStock(location=Location.objects.get(pk=location_id), sku=SKU.objects.get(pk=sku_id))


# --- Adjustments and reconciliation -----------------------------------------------------


def stock_adjust(
    *,
    location: Location,
    sku: SKU,
    on_hand_delta: int,
    reason: str,
    reference: str = "",
    kind: str = StockMovement.Kind.ADJUSTMENT,
    user: User | None = None,
) -> StockMovement:
    """Damage, loss, a count or a return: a ledger row with a reason, never a silent edit."""
    if not reason.strip():
        raise ValueError("An adjustment needs a reason.")
    if on_hand_delta == 0:
        raise ValueError("An adjustment must change the stock.")
    return stock_apply(
        changes=[
            StockChange(
                location=location,
                sku=sku,
                kind=kind,
                on_hand_delta=on_hand_delta,
                reason=reason.strip(),
                reference=reference,
            )
        ],
        user=user,
    )[0]


@dataclass(frozen=True)
class Drift:
    location_code: str
    sku_code: str
    level: tuple[int, int, int]
    ledger: tuple[int, int, int]
    movements: list[StockMovement]


def stock_reconcile(*, movements_per_drift: int = 20) -> list[Drift]:
    """Every location and SKU whose Stock level differs from the sum of its movements.

    Reads in one REPEATABLE READ snapshot on PostgreSQL, so writers running meanwhile
    cannot make a consistent ledger look drifted.
    """
    # Inside a caller's transaction the snapshot is the caller's to choose.
    fresh_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and fresh_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        levels = {
            (r["location_id"], r["sku_id"]): (r["on_hand"], r["reserved"], r["in_transit"])
            for r in Stock.objects.values("location_id", "sku_id", "on_hand", "reserved", "in_transit")
        }
        sums = {
            (r["location_id"], r["sku_id"]): (r["o"] or 0, r["r"] or 0, r["t"] or 0)
            for r in StockMovement.objects.values("location_id", "sku_id").annotate(
                o=Sum("on_hand_delta"), r=Sum("reserved_delta"), t=Sum("in_transit_delta")
            )
        }
        drifted = [
            key
            for key in sorted(set(levels) | set(sums))
            if levels.get(key, (0, 0, 0)) != sums.get(key, (0, 0, 0))
        ]
        locations = dict(Location.objects.filter(pk__in={k[0] for k in drifted}).values_list("pk", "code"))
        skus = dict(SKU.objects.filter(pk__in={k[1] for k in drifted}).values_list("pk", "code"))
        return [
            Drift(
                location_code=locations[loc],
                sku_code=skus[sku],
                level=levels.get((loc, sku), (0, 0, 0)),
                ledger=sums.get((loc, sku), (0, 0, 0)),
                movements=list(
                    StockMovement.objects.filter(location_id=loc, sku_id=sku).order_by("-pk")[
                        :movements_per_drift
                    ]
                ),
            )
            for loc, sku in drifted
        ]
