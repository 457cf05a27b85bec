"""Thin Celery tasks for the allocator. They take ids and are safe to run twice."""

from celery import shared_task
from django.utils import timezone

from inventory.models import Launch
from orders.models import Rehearsal
from orders.rehearsal.rehearse import Options, rehearse
from orders.services.allocation import ALLOCATE_TASK, launch_allocate
from orders.services.rehearsals import REHEARSE_TASK, rehearsal_fail, rehearsal_finish, rehearsal_progress

ALLOCATOR_TASK_KWARGS = {"ignore_result": True, "acks_late": True, "max_retries": 0}


@shared_task(name=ALLOCATE_TASK, **ALLOCATOR_TASK_KWARGS)
def allocate_launch(launch_id: int) -> dict:
    result = launch_allocate(launch_id=launch_id)
    return {"allocated": result.allocated, "waitlisted": result.waitlisted}


@shared_task(**ALLOCATOR_TASK_KWARGS)
def allocate_open_launches() -> int:
    """Beat's safety net (every second): run the allocator for every open launch."""
    now = timezone.now()
    ids = list(Launch.objects.filter(opens_at__lte=now, closes_at__gt=now).values_list("pk", flat=True))
    for launch_id in ids:
        launch_allocate(launch_id=launch_id)
    return len(ids)


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
