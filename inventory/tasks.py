"""Thin Celery tasks for deliveries. They take ids (or nothing), load fresh state and are
safe to run twice: every step they call checks under a lock whether it is already done.

Intake and collect deadlines are steps of the orders app's services (demand, the
allocator, the order status machine); tasks are entry points, which may call any app's
services.
"""

from celery import shared_task
from django.contrib.auth import get_user_model

from inventory.services import delivery_inbox_scan
from orders.services.allocation import launch_allocate
from orders.services.collection import collect_deadlines_expire
from orders.services.intake import deliveries_intake_due, delivery_intake

# acks_late: the message is acknowledged only after the task finished, and a worker lost
# mid-task (SIGKILL, OOM) gets it redelivered (after the broker's visibility timeout on
# Redis). That is safe only because intake is idempotent step by step.
INTAKE_TASK_KWARGS = {
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 0,
}


@shared_task(**INTAKE_TASK_KWARGS)
def scan_delivery_inbox() -> dict:
    outcomes = delivery_inbox_scan()
    return {o.filename: o.outcome for o in outcomes}


@shared_task(**INTAKE_TASK_KWARGS)
def intake_due_deliveries() -> list[str]:
    """Weekly (beat): announce what is in the inbox, then take in every due delivery."""
    delivery_inbox_scan()
    return [r.reference for r in deliveries_intake_due()]


@shared_task(**INTAKE_TASK_KWARGS)
def intake_delivery(delivery_id: int, user_id: int | None = None) -> dict:
    """One delivery now (head office's button, or after a plan is approved)."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    result = delivery_intake(delivery_id=delivery_id, user=user)
    return {"reference": result.reference, "distributed": result.distributed, "allocated": result.allocated}


@shared_task(**INTAKE_TASK_KWARGS)
def allocate_after_store_receipt(launch_id: int) -> int:
    return launch_allocate(launch_id=launch_id).allocated


@shared_task(**INTAKE_TASK_KWARGS)
def expire_collect_deadlines() -> int:
    return collect_deadlines_expire()
