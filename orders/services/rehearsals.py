"""The rehearsals' records: queued by head office or the command, advanced by the run."""

from celery import current_app
from django.db import transaction
from django.utils import timezone

from inventory.models import Launch
from orders.models import Rehearsal

# Started by name (a service never imports a task): orders.tasks.rehearse_launch.
REHEARSE_TASK = "orders.rehearse"


def rehearsal_queue(*, launch: Launch, options: dict) -> Rehearsal:
    return Rehearsal.objects.create(launch=launch, options=options)


def rehearsal_progress(*, rehearsal_id: int, progress: dict) -> None:
    Rehearsal.objects.filter(pk=rehearsal_id).update(status=Rehearsal.Status.RUNNING, progress=progress)


def rehearsal_finish(*, rehearsal_id: int, summary: dict, report_html: str) -> None:
    found = summary["invariants"]
    # The headline the list shows, kept apart so the list need not load whole reports.
    headline = {
        "people": summary["people"],
        "admitted_peak_per_second": summary["admitted_peak_per_second"],
        **{
            k: found[k]
            for k in (
                "acknowledged",
                "orders_in_database",
                "oversold",
                "lost",
                "duplicated",
                "fcfs_violations",
            )
        },
    }
    Rehearsal.objects.filter(pk=rehearsal_id).update(
        status=Rehearsal.Status.DONE,
        progress=headline,
        summary=summary,
        report_html=report_html,
        finished_at=timezone.now(),
    )


def rehearsal_fail(*, rehearsal_id: int, error: str) -> None:
    Rehearsal.objects.filter(pk=rehearsal_id).update(
        status=Rehearsal.Status.FAILED, error=error[:4000], finished_at=timezone.now()
    )


def rehearsal_start(*, launch: Launch, options: dict) -> Rehearsal:
    """Queue a rehearsal and hand it to a Celery worker, once the row is committed."""
    rehearsal = rehearsal_queue(launch=launch, options=options)
    transaction.on_commit(lambda: current_app.send_task(REHEARSE_TASK, args=[rehearsal.pk]))
    return rehearsal
