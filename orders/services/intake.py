"""Delivery intake: receive, plan, distribute, then let the allocator serve the waitlists.

Each step is its own transaction and checks, under a lock on the delivery, whether it
has already been done. So a worker killed at any moment leaves every step either whole or
not begun, and running intake again finishes the rest exactly once.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import User

from inventory.models import AllocationPlan, Delivery, Location
from inventory.selectors import deliveries_due
from inventory.services import (
    PlanNotEditable,
    delivery_receive,
    plan_apply,
    plan_approve,
    plan_pool_locations,
    plan_suggest,
    store_delivery_receive,
)
from orders.selectors.demand import demand_by_pool
from orders.services.allocation import launch_allocate
from orders.services.notices import stock_notices_open

logger = logging.getLogger(__name__)

STEPS = ("receive", "plan", "distribute", "allocate")


@dataclass
class IntakeResult:
    reference: str
    received: bool = False
    plan_status: str = ""
    distributed: bool = False
    allocated: int = 0
    notified: int = 0
    waiting_for_approval: bool = False


def delivery_plan_suggest(*, delivery: Delivery, user: User | None = None, **options) -> AllocationPlan:
    """Suggest the delivery's plan from the launch's demand as it stands now."""
    # Every pool's location exists before demand is counted: registrations for home
    # delivery, or for a store that has had no unit yet, count there all the same.
    plan_pool_locations()
    demand = demand_by_pool(launch=delivery.launch) if delivery.launch is not None else {}
    return plan_suggest(delivery=delivery, demand=demand, user=user, **options)


def delivery_intake(
    *,
    delivery_id: int,
    user: User | None = None,
    on_step: Callable[[str], None] | None = None,
) -> IntakeResult:
    """Take one delivery as far as it can go. Safe to run any number of times."""
    step = on_step or (lambda name: None)
    delivery = Delivery.objects.select_related("launch").get(pk=delivery_id)
    result = IntakeResult(reference=delivery.reference)

    result.received = delivery_receive(delivery_id=delivery_id, user=user)
    step("receive")

    delivery.refresh_from_db()
    plan = AllocationPlan.objects.filter(delivery=delivery).first()
    auto = delivery.launch is not None and delivery.launch.auto_apply_plans
    if delivery.status == Delivery.Status.RECEIVED:
        if plan is None or (auto and plan.status == AllocationPlan.Status.DRAFT):
            # Suggested now, from the demand at the moment the units arrived.
            plan = delivery_plan_suggest(delivery=delivery, user=user)
        if auto and plan.status == AllocationPlan.Status.DRAFT:
            try:
                plan = plan_approve(plan_id=plan.pk, user=user)
            except PlanNotEditable:
                plan.refresh_from_db()  # approved meanwhile by head office or another run
    step("plan")
    if plan is not None:
        result.plan_status = plan.status

    if (
        delivery.status == Delivery.Status.RECEIVED
        and plan is not None
        and plan.status != AllocationPlan.Status.DRAFT
    ):
        result.distributed = plan_apply(delivery_id=delivery_id, user=user)
    delivery.refresh_from_db()
    result.waiting_for_approval = delivery.status == Delivery.Status.RECEIVED
    step("distribute")

    if delivery.status == Delivery.Status.DISTRIBUTED and delivery.launch_id:
        result.allocated = launch_allocate(launch_id=delivery.launch_id).allocated
        # What the waitlists did not take is offered to the next registered customers.
        result.notified = stock_notices_open(launch_id=delivery.launch_id).notified
    step("allocate")
    if plan is not None:
        plan.refresh_from_db()
        result.plan_status = plan.status
    logger.info("intake %s: %s", delivery.reference, result)
    return result


def deliveries_intake_due(
    *, today=None, user: User | None = None, on_step: Callable[[str], None] | None = None
) -> list[IntakeResult]:
    return [
        delivery_intake(delivery_id=pk, user=user, on_step=on_step)
        for pk in deliveries_due(today=today).values_list("pk", flat=True)
    ]


def store_delivery_confirm(
    *,
    delivery_id: int,
    location: Location,
    received: dict[int, int],
    reason: str = "",
    user: User | None = None,
) -> int:
    """A store confirms what arrived; then its waiting click-and-collect orders are served
    (in sequence order, by the allocator) before anything is sold to walk-ins.

    Returns the number of orders the allocator served.
    """
    store_delivery_receive(
        delivery_id=delivery_id, location=location, received=received, reason=reason, user=user
    )
    delivery = Delivery.objects.get(pk=delivery_id)
    if not delivery.launch_id:
        return 0
    allocated = launch_allocate(launch_id=delivery.launch_id).allocated
    stock_notices_open(launch_id=delivery.launch_id)
    return allocated
