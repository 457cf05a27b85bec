"""Email tasks: thin wrappers that drain the outbox (customers.services.outbox).

Why these options:
- acks_late: the broker keeps the task until it has run, so a worker that dies before
  finishing does not swallow it. The drain is idempotent (rows are claimed in the
  database), so running it twice sends nothing twice.
- reject_on_worker_lost stays False: with it, a task whose worker dies is requeued at
  once, and a message that crashes its worker would loop forever. Nothing depends on the
  task surviving: the rows are in PostgreSQL, a killed batch is reclaimed when its lease
  runs out, a worker that starts nudges the drain, and beat drains every few seconds.
- retries with exponential backoff only for an unreachable SMTP server; per-message
  failures are retried by the outbox itself (next_attempt_at), not by Celery.
"""

from __future__ import annotations

import datetime

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from customers.services import outbox

EMAIL_TASK_KWARGS = {
    "acks_late": True,
    "reject_on_worker_lost": False,
    "autoretry_for": (outbox.OutboxConnectionError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 20,
    "ignore_result": True,
}


@shared_task(name=outbox.DRAIN_TASK, **EMAIL_TASK_KWARGS)
def outbox_drain() -> dict:
    # Cleared at the start, not the end: a nudge arriving while this runs must queue
    # another drain, or rows written meanwhile could wait for beat.
    # A scheduled wake is spent once any drain runs: this one sees the same rows.
    cache.delete_many([outbox.NUDGE_KEY, outbox.WAKE_KEY])
    result = outbox.outbox_drain()
    if outbox_drain.app.conf.task_always_eager:
        # Embedded mode runs tasks inline: chaining here would recurse. Beat's safety net
        # and the next nudge take over.
        return result.__dict__
    if outbox.outbox_has_due():
        # The time budget ran out with work left: hand over to a fresh task.
        outbox.outbox_nudge_now()
    else:
        _wake_when_due()
    return result.__dict__


def _wake_when_due() -> None:
    """Schedule one drain for when the next backoff or lease ends (beat is the safety net)."""
    due = outbox.outbox_next_due()
    if due is None:
        return
    delay = max((due - timezone.now()).total_seconds(), 0) + 0.2
    if delay > settings.OUTBOX_WAKE_MAX_SECONDS:
        return
    if cache.add(outbox.WAKE_KEY, 1, timeout=int(delay) + 2):
        outbox_drain.apply_async(countdown=delay)


@worker_ready.connect
def _drain_on_worker_start(**kwargs) -> None:
    """A restarted worker resumes the outbox at once instead of waiting for beat."""
    if settings.OUTBOX_DRAIN_ON_WORKER_START:
        cache.delete(outbox.NUDGE_KEY)
        cache.delete(outbox.WAKE_KEY)
        outbox.outbox_nudge_now()


@shared_task(name="customers.tasks.outbox_drain_periodic", ignore_result=True, acks_late=True)
def outbox_drain_periodic() -> None:
    """Beat's safety net: a lost nudge or a finished lease never leaves a message waiting."""
    if (
        outbox.outbox_has_due()
        or outbox.outbox_next_due() is not None
        and (outbox.outbox_next_due() <= timezone.now() + datetime.timedelta(seconds=1))
    ):
        outbox.outbox_nudge_now()
