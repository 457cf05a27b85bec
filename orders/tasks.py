"""Thin Celery tasks for the allocator. They take ids and are safe to run twice."""

import logging

from celery import shared_task
from django.utils import timezone

from config.logcontext import log_context
from inventory.models import Launch
from orders.models import Rehearsal
from orders.rehearsal.rehearse import Options, rehearse
from orders.selectors.launches import office_snapshots_refresh
from orders.services.allocation import ALLOCATE_TASK, launch_allocate
from orders.services.notices import SERVE_FREED_TASK, claim_windows_expire, launch_free_units_serve
from orders.services.rehearsals import REHEARSE_TASK, rehearsal_fail, rehearsal_finish, rehearsal_progress

logger = logging.getLogger(__name__)

ALLOCATOR_TASK_KWARGS = {"ignore_result": True, "acks_late": True, "max_retries": 0}


@shared_task(name=ALLOCATE_TASK, **ALLOCATOR_TASK_KWARGS)
def allocate_launch(launch_id: int) -> dict:
    log_context(launch=launch_id)
    result = launch_allocate(launch_id=launch_id)
    logger.info(
        "allocator run: %s allocated, %s waitlisted in %s batches",
        result.allocated, result.waitlisted, result.batches,
        extra={"allocated": result.allocated, "waitlisted": result.waitlisted, "batches": result.batches},
    )  # fmt: skip
    return {"allocated": result.allocated, "waitlisted": result.waitlisted}


@shared_task(**ALLOCATOR_TASK_KWARGS)
def allocate_open_launches() -> int:
    """Beat's safety net (every second): run the allocator for every open launch."""
    now = timezone.now()
    ids = list(Launch.objects.filter(opens_at__lte=now, closes_at__gt=now).values_list("pk", flat=True))
    for launch_id in ids:
        launch_allocate(launch_id=launch_id)
    return len(ids)


@shared_task(name=SERVE_FREED_TASK, **ALLOCATOR_TASK_KWARGS)
def serve_freed_units(launch_id: int) -> dict:
    """A unit came free (a cancellation): the waitlist first, then stock notices."""
    result = launch_free_units_serve(launch_id=launch_id)
    return {"notified": result.notified, "held": result.held}


@shared_task(**ALLOCATOR_TASK_KWARGS)
def expire_claim_windows() -> int:
    """Beat: close claim windows past their end and offer their units to the next customers."""
    return claim_windows_expire()


@shared_task(ignore_result=True, max_retries=0)
def refresh_office_snapshots() -> int:
    """Beat: recount head office's overview and demand snapshots of the launches it watches,
    so no page load pays for the count. A lost run is made good by the next one."""
    return len(office_snapshots_refresh())


@shared_task(name=REHEARSE_TASK, ignore_result=True, acks_late=False, max_retries=0)
def rehearse_launch(rehearsal_id: int) -> None:
    """A rehearsal queued by head office: never retried (it would be a second morning)."""
    rehearsal = Rehearsal.objects.select_related("launch").get(pk=rehearsal_id)
    options = Options(**rehearsal.options)

    def progress(tally: dict) -> None:
        rehearsal_progress(rehearsal_id=rehearsal_id, progress=tally)

    try:
        summary, page = rehearse(options, progress=progress)
    except Exception as exc:
        rehearsal_fail(rehearsal_id=rehearsal_id, error=repr(exc))
        raise
    rehearsal_finish(rehearsal_id=rehearsal_id, summary=summary, report_html=page)
