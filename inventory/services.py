"""Stock changes. Every change is a StockMovement and the Stock row moves in step.

The database is the last guard: the conditional UPDATE below refuses a change that would
take a level negative or reserve more than is on hand (and CHECK constraints back it up),
so concurrent writers can never oversell however they interleave.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from inventory.fair_share import Demand, plan_split
from inventory.models import (
    SKU,
    AllocationPlan,
    AllocationPlanLine,
    Delivery,
    DeliveryLine,
    Location,
    Stock,
    StockMovement,
)
from inventory.selectors import location_central, location_online_pool

if TYPE_CHECKING:
    from inventory.manifests import Manifest


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


# --- Adjustments and reconciliation -----------------------------------------------------


def stock_adjust(
    *,
    location: Location,
    sku: SKU,
    on_hand_delta: int,
    reason: str,
    reference: str = "",
    kind: str = StockMovement.Kind.ADJUSTMENT,
    user: AbstractBaseUser | None = None,
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


# --- Deliveries: announce, receive ------------------------------------------------------


class DeliveryError(Exception):
    """A delivery cannot take this step now; the message says why."""


def _launch_model():
    # Delivery points at orders.Launch by name; reading the model from the relation keeps
    # inventory from importing orders (imports point orders -> inventory).
    return Delivery._meta.get_field("launch").related_model


def delivery_announce(*, manifest: "Manifest", source: str, supplier=None) -> tuple[Delivery, bool]:
    """Record an announced delivery. The same reference again changes nothing.

    Returns (delivery, created). Raises ManifestInvalid if the launch is unknown or a SKU
    is not part of it; nothing is written then.
    """
    from inventory.manifests import ManifestInvalid, Problem

    existing = Delivery.objects.filter(reference=manifest.reference).first()
    if existing is not None:
        return existing, False
    Launch = _launch_model()
    launch = None
    if manifest.launch_slug:
        launch = Launch.objects.filter(slug=manifest.launch_slug).first()
        if launch is None:
            raise ManifestInvalid([Problem(None, f"Unknown launch {manifest.launch_slug!r}.")])
    else:
        # The newest launch selling the first SKU: suppliers deliver for one launch at a time.
        launch = Launch.objects.filter(skus=manifest.lines[0].sku).order_by("-opens_at").first()
    if launch is not None:
        launch_skus = set(launch.skus.values_list("pk", flat=True))
        problems = [
            Problem(line.line, f"SKU {line.sku.code} is not part of launch {launch.slug}.")
            for line in manifest.lines
            if line.sku.pk not in launch_skus
        ]
        if problems:
            raise ManifestInvalid(problems)
    with transaction.atomic():
        delivery, created = Delivery.objects.get_or_create(
            reference=manifest.reference,
            defaults={
                "launch": launch,
                "supplier": supplier,
                "expected_on": manifest.expected_on,
                "source": source[:32],
            },
        )
        if created:
            DeliveryLine.objects.bulk_create(
                [
                    DeliveryLine(
                        delivery=delivery,
                        sku=line.sku,
                        quantity=line.quantity,
                        requested_quantity=line.requested_quantity,
                    )
                    for line in manifest.lines
                ]
            )
    return delivery, created


@dataclass(frozen=True)
class InboxOutcome:
    filename: str
    outcome: str  # announced | duplicate | rejected
    reference: str = ""
    problems: tuple[str, ...] = ()


def _move_aside(path: Path, folder: str) -> Path | None:
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}.{timezone.now():%Y%m%dT%H%M%S%f}{path.suffix}"
    try:
        path.rename(target)
    except FileNotFoundError:
        return None  # another scanner took it first
    return target


def delivery_inbox_scan(*, inbox_dir: str | Path | None = None) -> list[InboxOutcome]:
    """Announce every manifest in the inbox folder, then move it aside.

    Good and duplicate files go to processed/, bad ones to rejected/ next to a
    `.problems.txt` naming every problem by line. A crash between announcing and moving
    is harmless: the file is read again and its reference is already known.
    """
    from inventory.manifests import ManifestInvalid, Problem, manifest_max_bytes, manifest_parse

    inbox = Path(inbox_dir or settings.DELIVERY_INBOX_DIR)
    inbox.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".json")):
        try:
            size = path.stat().st_size
            if size > manifest_max_bytes():
                # Refused on its size alone: a huge file is never read into memory.
                raise ManifestInvalid(
                    [
                        Problem(
                            None,
                            f"The file is {size:,} bytes; a manifest may be at most {manifest_max_bytes():,}.",
                        )
                    ]
                )
            manifest = manifest_parse(content=path.read_bytes(), filename=path.name)
            delivery, created = delivery_announce(manifest=manifest, source="inbox")
        except FileNotFoundError:
            continue
        except ManifestInvalid as exc:
            problems = tuple(str(p) for p in exc.problems)
            moved = _move_aside(path, "rejected")
            if moved is not None:
                moved.with_name(moved.name + ".problems.txt").write_text(
                    f"{path.name} was rejected; nothing was recorded.\n" + "\n".join(problems) + "\n"
                )
            outcomes.append(InboxOutcome(path.name, "rejected", problems=problems))
            continue
        _move_aside(path, "processed")
        outcomes.append(InboxOutcome(path.name, "announced" if created else "duplicate", delivery.reference))
    return outcomes


def delivery_receive(*, delivery_id: int, user: AbstractBaseUser | None = None) -> bool:
    """Receive an announced delivery into the central warehouse. Returns False if it already was.

    The delivery row is locked and its status checked in the same transaction as the
    receipts, so two runs (or a rerun after a crash) can never receive it twice.
    """
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != Delivery.Status.ANNOUNCED:
            return False
        central = location_central()
        stock_apply(
            changes=[
                StockChange(
                    location=central,
                    sku=line.sku,
                    kind=StockMovement.Kind.RECEIPT,
                    on_hand_delta=line.quantity,
                    reason="Supplier delivery",
                    reference=delivery.reference,
                )
                for line in delivery.lines.select_related("sku")
            ],
            user=user,
        )
        delivery.status = Delivery.Status.RECEIVED
        delivery.received_at = timezone.now()
        delivery.save(update_fields=["status", "received_at"])
    return True


# --- Allocation plans -------------------------------------------------------------------


def plan_pool_locations() -> tuple[Location, list[Location]]:
    """The online pool and the location of every active store (created if missing)."""
    from stores.models import Store

    online = location_online_pool()
    stores = list(Store.objects.filter(is_active=True).order_by("code"))
    have = set(Location.objects.filter(store__in=stores).values_list("store_id", flat=True))
    Location.objects.bulk_create(
        [Location(code=s.code, kind=Location.Kind.STORE, store=s) for s in stores if s.pk not in have],
        ignore_conflicts=True,
    )
    locations = list(Location.objects.filter(store__in=stores).select_related("store").order_by("code"))
    return online, locations


def plan_suggest(
    *,
    delivery: Delivery,
    demand: Mapping[tuple[int, int], Demand],
    user: AbstractBaseUser | None = None,
    minimum_per_store: int | None = None,
    partner_share_percent: int | None = -1,
) -> AllocationPlan:
    """Suggest (or suggest again) the split of a delivery, per SKU, between the pools.

    `demand` maps (location id, SKU id) to what waits there; pools not in it have none.
    A plan that is approved or applied is not touched (PlanNotEditable). Passing
    minimum_per_store / partner_share_percent changes the plan's settings first
    (partner_share_percent=None clears it; the default -1 keeps it).
    """
    online, stores = plan_pool_locations()
    pools = [online, *stores]
    partner_pools = [loc.pk for loc in stores if loc.store.partner_id is not None]
    with transaction.atomic():
        plan, _ = AllocationPlan.objects.get_or_create(delivery=delivery)
        plan = AllocationPlan.objects.select_for_update().get(pk=plan.pk)
        if plan.status != AllocationPlan.Status.DRAFT:
            raise PlanNotEditable(f"The plan for {delivery} is {plan.get_status_display().lower()}.")
        if minimum_per_store is not None:
            plan.minimum_per_store = minimum_per_store
        if partner_share_percent != -1:
            plan.partner_share_percent = partner_share_percent
        plan._history_user = user
        plan.save()
        existing = {(line.sku_id, line.location_id): line for line in plan.lines.all()}
        to_create, to_update = [], []
        for delivery_line in delivery.lines.all():
            sku_demand = {loc.pk: demand.get((loc.pk, delivery_line.sku_id), Demand()) for loc in pools}
            split = plan_split(
                total=delivery_line.quantity,
                demand=sku_demand,
                stores=[loc.pk for loc in stores],
                partner_stores=partner_pools,
                minimum_per_store=plan.minimum_per_store,
                partner_share_percent=plan.partner_share_percent,
            )
            for loc in pools:
                d = sku_demand[loc.pk]
                line = existing.get((delivery_line.sku_id, loc.pk))
                if line is None:
                    line = AllocationPlanLine(plan=plan, sku_id=delivery_line.sku_id, location=loc)
                    to_create.append(line)
                else:
                    to_update.append(line)
                line.quantity = line.suggested_quantity = split[loc.pk]
                line.demand_waitlisted = d.waiting
                line.demand_registered = d.registered
        bulk_create_with_history(to_create, AllocationPlanLine, default_user=user)
        bulk_update_with_history(
            to_update,
            AllocationPlanLine,
            ["quantity", "suggested_quantity", "demand_waitlisted", "demand_registered"],
            default_user=user,
        )
    return plan


class PlanNotEditable(DeliveryError):
    pass


class PlanInvalid(DeliveryError):
    pass


def plan_remaining(*, plan: AllocationPlan) -> dict[int, int]:
    """Units of each SKU of the delivery not yet given to a pool (negative: too many given)."""
    delivered = dict(plan.delivery.lines.values_list("sku_id", "quantity"))
    planned = dict(plan.lines.values("sku_id").annotate(n=Sum("quantity")).values_list("sku_id", "n"))
    return {sku: delivered[sku] - (planned.get(sku) or 0) for sku in delivered}


def plan_line_set(*, line_id: int, quantity: int, user: AbstractBaseUser | None = None) -> AllocationPlanLine:
    """Head office changes one figure of a draft plan; the history keeps who and when."""
    if quantity < 0:
        raise PlanInvalid("A quantity cannot be negative.")
    with transaction.atomic():
        line = AllocationPlanLine.objects.select_related("plan").get(pk=line_id)
        plan = AllocationPlan.objects.select_for_update().get(pk=line.plan_id)
        if plan.status != AllocationPlan.Status.DRAFT:
            raise PlanNotEditable(
                f"The plan is {plan.get_status_display().lower()}; it can no longer change."
            )
        if line.quantity != quantity:
            line.quantity = quantity
            line._history_user = user
            line.save(update_fields=["quantity"])
    return line


def plan_approve(*, plan_id: int, user: AbstractBaseUser | None = None) -> AllocationPlan:
    """Approve a draft plan. Refused if it gives any SKU more units than were delivered."""
    with transaction.atomic():
        plan = AllocationPlan.objects.select_for_update().select_related("delivery").get(pk=plan_id)
        if plan.status != AllocationPlan.Status.DRAFT:
            raise PlanNotEditable(f"The plan is already {plan.get_status_display().lower()}.")
        over = {sku: -n for sku, n in plan_remaining(plan=plan).items() if n < 0}
        if over:
            codes = dict(SKU.objects.filter(pk__in=over).values_list("pk", "code"))
            raise PlanInvalid(
                "The plan gives more than was delivered: "
                + ", ".join(f"{codes[s]} by {n}" for s, n in sorted(over.items()))
                + "."
            )
        plan.status = AllocationPlan.Status.APPROVED
        plan.approved_by = user if user is not None and user.is_authenticated else None
        plan.approved_at = timezone.now()
        plan._history_user = plan.approved_by
        plan.save()
    return plan


def plan_apply(*, delivery_id: int, user: AbstractBaseUser | None = None) -> bool:
    """Move the approved plan's units out of the central warehouse. False if already done.

    The online pool's share goes straight on hand (the warehouse ships online orders);
    each store's share is in transit until the store confirms it arrived. All of it, the
    plan's and the delivery's status commit together or not at all.
    """
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status == Delivery.Status.DISTRIBUTED:
            return False
        if delivery.status != Delivery.Status.RECEIVED:
            raise DeliveryError(
                f"Delivery {delivery} is {delivery.get_status_display().lower()}, not received."
            )
        plan = AllocationPlan.objects.select_for_update().filter(delivery=delivery).first()
        if plan is None or plan.status != AllocationPlan.Status.APPROVED:
            raise DeliveryError(f"The plan for {delivery} is not approved.")
        central = location_central()
        changes = []
        out: dict[int, int] = {}
        skus = {s.pk: s for s in SKU.objects.filter(pk__in=plan.lines.values("sku_id"))}
        for line in (
            plan.lines.filter(quantity__gt=0).select_related("location").order_by("sku_id", "location_id")
        ):
            sku = skus[line.sku_id]
            out[line.sku_id] = out.get(line.sku_id, 0) + line.quantity
            is_online = line.location.kind == Location.Kind.ONLINE
            changes.append(
                StockChange(
                    location=line.location,
                    sku=sku,
                    kind=StockMovement.Kind.TRANSFER_IN,
                    on_hand_delta=line.quantity if is_online else 0,
                    in_transit_delta=0 if is_online else line.quantity,
                    reason="Delivery share for the online pool"
                    if is_online
                    else "Delivery share, in transit",
                    reference=delivery.reference,
                )
            )
        changes = [
            StockChange(
                location=central,
                sku=skus[sku_id],
                kind=StockMovement.Kind.TRANSFER_OUT,
                on_hand_delta=-n,
                reason="Delivery distributed by plan",
                reference=delivery.reference,
            )
            for sku_id, n in sorted(out.items())
        ] + changes
        stock_apply(changes=changes, user=user)
        if settings.INTAKE_PAUSE_SECONDS:
            time.sleep(settings.INTAKE_PAUSE_SECONDS)  # see the setting: lets tests kill us here
        now = timezone.now()
        plan.status = AllocationPlan.Status.APPLIED
        plan.applied_at = now
        plan._history_user = user
        plan.save()
        delivery.status = Delivery.Status.DISTRIBUTED
        delivery.distributed_at = now
        delivery.save(update_fields=["status", "distributed_at"])
    return True


# --- Store receiving --------------------------------------------------------------------


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
    return StockMovement.objects.filter(
        location=location,
        reference=delivery.reference,
        kind__in=[StockMovement.Kind.STORE_RECEIPT, StockMovement.Kind.ADJUSTMENT],
    ).exists()


def store_delivery_receive(
    *,
    delivery_id: int,
    location: Location,
    received: Mapping[int, int],
    reason: str = "",
    user: AbstractBaseUser | None = None,
) -> list[StockMovement]:
    """A store confirms what arrived: in transit becomes on hand, and any difference is an
    adjustment with the staff's reason. Once per delivery and store.
    """
    if any(n < 0 for n in received.values()):
        raise DeliveryError("A received quantity cannot be negative.")
    with transaction.atomic():
        # The delivery row lock serialises two confirmations of the same delivery.
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        expected = store_delivery_expected(delivery=delivery, location=location)
        if not expected:
            raise DeliveryError(f"Delivery {delivery} sent nothing to {location}.")
        if store_delivery_is_received(delivery=delivery, location=location):
            raise DeliveryError(f"Delivery {delivery} was already received at {location}.")
        unknown = set(received) - set(expected)
        if unknown:
            raise DeliveryError("Only SKUs of this delivery can be received.")
        skus = {s.pk: s for s in SKU.objects.filter(pk__in=expected)}
        changes = []
        for sku_id, want in sorted(expected.items()):
            got = received.get(sku_id, want)
            both = min(want, got)
            if both:
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.STORE_RECEIPT,
                        on_hand_delta=both,
                        in_transit_delta=-both,
                        reason="Received at store",
                        reference=delivery.reference,
                    )
                )
            if got != want:
                if not reason.strip():
                    raise DeliveryError("Say why what arrived differs from what was sent.")
                short = got < want
                changes.append(
                    StockChange(
                        location=location,
                        sku=skus[sku_id],
                        kind=StockMovement.Kind.ADJUSTMENT,
                        on_hand_delta=0 if short else got - want,
                        in_transit_delta=-(want - got) if short else 0,
                        reason=f"{'Short' if short else 'Over'} by {abs(want - got)}: {reason.strip()}"[:255],
                        reference=delivery.reference,
                    )
                )
        return stock_apply(changes=changes, user=user)
