"""Allocation plans: how one delivery is split between the online pool and the stores.

Suggested from demand (largest remainder, inventory.fair_share), edited by head office
while a draft, approved once (never more than was delivered), applied once: the units
leave the central warehouse for the pools, all in one transaction.
"""

import time
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_update_with_history

from inventory.fair_share import Demand, plan_split
from inventory.models import SKU, AllocationPlan, AllocationPlanLine, Delivery, Location, StockMovement
from inventory.selectors import plan_remaining
from inventory.services.deliveries import DeliveryError
from inventory.services.stock import StockChange, location_central, location_online_pool, stock_apply
from stores.models import Store


def _set_history_user(instance: AllocationPlan | AllocationPlanLine, user: User | None) -> None:
    """Name the user django-simple-history records for the instance's next save.

    simple_history reads `_history_user` off the instance when it writes the history row;
    the attribute is its convention, not a declared field, so the model's type does not
    know it and it is set by name.
    """
    setattr(instance, "_history_user", user)  # noqa: B010 - see the docstring


def _set_history_reason(instance: AllocationPlan, reason: str) -> None:
    """The sentence simple_history records as the next history row's change reason (its
    `_change_reason` convention, set by name for the same reason as _set_history_user)."""
    setattr(instance, "_change_reason", reason)  # noqa: B010 - see _set_history_user


def plan_pool_locations() -> tuple[Location, list[Location]]:
    """The online pool and the location of every active store (created if missing)."""
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
    user: User | None = None,
    minimum_per_store: int | None = None,
    partner_share_percent: int | None = -1,
) -> AllocationPlan:
    """Suggest (or suggest again) the split of a delivery, per SKU, between the pools.

    `demand` maps (location id, SKU id) to what waits there; pools not in it have none.
    The suggestion is one entry in the plan's history (its change reason says so), not one
    per figure: the lines' own history keeps head office's edits.
    A plan that is approved or applied is not touched (PlanNotEditable). Passing
    minimum_per_store / partner_share_percent changes the plan's settings first
    (partner_share_percent=None clears it; the default -1 keeps it).
    """
    online, stores = plan_pool_locations()
    pools = [online, *stores]
    partner_pools = [loc.pk for loc in stores if loc.store is not None and loc.store.partner_id is not None]
    with transaction.atomic():
        plan, _ = AllocationPlan.objects.get_or_create(delivery=delivery)
        plan = AllocationPlan.objects.select_for_update().get(pk=plan.pk)
        if plan.status != AllocationPlan.Status.DRAFT:
            raise PlanNotEditable(f"The plan for {delivery} is {plan.get_status_display().lower()}.")
        if minimum_per_store is not None:
            plan.minimum_per_store = minimum_per_store
        if partner_share_percent != -1:
            plan.partner_share_percent = partner_share_percent
        _set_history_user(plan, user)
        suggested_before = plan.lines.exists()
        share = "none" if plan.partner_share_percent is None else f"{plan.partner_share_percent}%"
        _set_history_reason(
            plan,
            f"{'suggested again' if suggested_before else 'suggested'} from demand "
            f"(minimum per store {plan.minimum_per_store}, partners' share {share})",
        )
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
        AllocationPlanLine.objects.bulk_create(to_create)
        AllocationPlanLine.objects.bulk_update(
            to_update, ["quantity", "suggested_quantity", "demand_waitlisted", "demand_registered"]
        )
    return plan


class PlanNotEditable(DeliveryError):
    pass


class PlanInvalid(DeliveryError):
    pass


def plan_lines_set(*, plan_id: int, quantities: Mapping[int, int], user: User | None = None) -> int:
    """Head office saves the figures of a draft plan (line id -> units), all or none; the
    lines' history keeps who changed which figure and when. Returns how many changed.

    Giving a SKU more than was delivered is allowed while drafting (approval refuses it),
    so a figure can be raised before another is lowered.
    """
    if any(quantity < 0 for quantity in quantities.values()):
        raise PlanInvalid("A quantity cannot be negative.")
    with transaction.atomic():
        plan = AllocationPlan.objects.select_for_update().get(pk=plan_id)
        if plan.status != AllocationPlan.Status.DRAFT:
            raise PlanNotEditable(
                f"The plan is {plan.get_status_display().lower()}; it can no longer change."
            )
        lines = {line.pk: line for line in plan.lines.filter(pk__in=list(quantities))}
        if len(lines) != len(quantities):
            raise PlanInvalid("A figure belongs to no line of this plan.")
        changed = [line for pk, line in lines.items() if line.quantity != quantities[pk]]
        for line in changed:
            line.quantity = quantities[line.pk]
        bulk_update_with_history(changed, AllocationPlanLine, ["quantity"], default_user=user)
    return len(changed)


def plan_line_set(*, line_id: int, quantity: int, user: User | None = None) -> AllocationPlanLine:
    """Head office changes one figure of a draft plan (plan_lines_set for one line)."""
    plan_id = AllocationPlanLine.objects.values_list("plan_id", flat=True).get(pk=line_id)
    plan_lines_set(plan_id=plan_id, quantities={line_id: quantity}, user=user)
    return AllocationPlanLine.objects.get(pk=line_id)


def plan_approve(*, plan_id: int, user: User | None = None) -> AllocationPlan:
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
        _set_history_user(plan, plan.approved_by)
        plan.save()
    return plan


def plan_apply(*, delivery_id: int, user: User | None = None) -> bool:
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
        _set_history_user(plan, user)
        plan.save()
        delivery.status = Delivery.Status.DISTRIBUTED
        delivery.distributed_at = now
        delivery.save(update_fields=["status", "distributed_at"])
    return True
