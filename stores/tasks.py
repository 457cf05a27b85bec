"""Webhook tasks (queue `webhooks`): thin wrappers around stores.services.webhooks.

Why these options:
- acks_late, reject_on_worker_lost False: as the email drain (customers/tasks.py). The
  rows are in PostgreSQL: a killed drain's claimed deliveries are retaken when their lease
  runs out, and beat drains every two seconds, so nothing depends on the task surviving.
- No countdowns beyond WEBHOOK_DRAIN_SECONDS: a retry hours away is a row's
  next_attempt_at, found by beat, never a Celery ETA (one past the Redis visibility
  timeout would run twice).
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from customers.services.partner_notices import webhook_disabled_notices_enqueue
from stores.services import webhooks

WEBHOOK_TASK_KWARGS = {
    "acks_late": True,
    "reject_on_worker_lost": False,
    "ignore_result": True,
    "max_retries": 0,
}


@shared_task(name=webhooks.DRAIN_TASK, **WEBHOOK_TASK_KWARGS)
def webhooks_deliver() -> dict:
    # Cleared at the start: a nudge arriving while this runs queues another drain; a
    # scheduled wake is spent by any drain.
    cache.delete_many([webhooks.NUDGE_KEY, webhooks.WAKE_KEY])
    result = webhooks.webhooks_drain()
    if result.disabled:
        webhook_disabled_notices_enqueue()
    if webhooks_deliver.app.conf.task_always_eager:
        return {k: v for k, v in result.__dict__.items() if k != "disabled"}
    if webhooks.webhooks_due():
        # The time budget ran out with work left: hand over to a fresh task.
        webhooks.webhooks_nudge_now()
    else:
        _wake_when_due()
    return {k: v for k, v in result.__dict__.items() if k != "disabled"}


def _wake_when_due() -> None:
    """One drain for when the next retry or lease comes due, if that is within
    WEBHOOK_WAKE_MAX_SECONDS (a short countdown, far inside the broker's visibility
    timeout); anything later is beat's."""
    due = webhooks.webhooks_next_due()
    if due is None:
        return
    delay = max((due - timezone.now()).total_seconds(), 0) + 0.1
    if delay <= settings.WEBHOOK_WAKE_MAX_SECONDS and cache.add(webhooks.WAKE_KEY, 1, timeout=int(delay) + 2):
        webhooks_deliver.apply_async(countdown=delay)


@worker_ready.connect
def _deliver_on_worker_start(**kwargs) -> None:
    """A restarted worker resumes deliveries at once (a killed one's rows after their lease)."""
    cache.delete_many([webhooks.NUDGE_KEY, webhooks.WAKE_KEY])
    webhooks.webhooks_nudge_now()


@shared_task(name="stores.tasks.webhooks_deliver_periodic", **WEBHOOK_TASK_KWARGS)
def webhooks_deliver_periodic() -> None:
    """Beat's safety net: retries come due, lost nudges and dead senders' leases end."""
    webhook_disabled_notices_enqueue()
    if webhooks.webhooks_due():
        webhooks.webhooks_nudge_now()
