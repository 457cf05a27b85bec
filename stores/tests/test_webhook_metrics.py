"""Webhook metrics count what the delivery log records: each attempt sent (2xx), retried,
and each delivery given up on (config.metrics, launchday_webhooks_total)."""

import time

import pytest
from prometheus_client import REGISTRY

from orders.services.allocation import launch_allocate
from stores.models import WebhookAttempt, WebhookDelivery, WebhookEventType
from stores.services.webhooks import webhooks_drain
from stores.tests.receiver import Answer
from stores.tests.webhook_world import world_make

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def webhooks(outcome: str) -> float:
    return REGISTRY.get_sample_value("launchday_webhooks_total", {"outcome": outcome}) or 0.0


def test_webhooks_sent_retried_and_failed_are_counted_as_the_log_records_them(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.2]
    settings.WEBHOOK_RETRY_JITTER = 0.0
    settings.WEBHOOK_DOWN_PAUSE_SECONDS = 0.1
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WEBHOOK_NUDGE_TTL_SECONDS = 0
    world = world_make(online_units=2)
    world.endpoint(receiver.url(), types=[WebhookEventType.ORDER_ALLOCATED])
    # Two deliveries: one arrives at once; the other fails twice and is given up on (the
    # schedule has one retry). Whichever takes which answer, the counts are the same.
    receiver.script("/hook", Answer(200), Answer(500), Answer(500))
    before = {outcome: webhooks(outcome) for outcome in ("sent", "retried", "failed")}
    world.order(0)
    world.order(1)
    launch_allocate(launch_id=world.launch.pk)
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.filter(status__in=["pending", "sending"]).exists():
        assert time.monotonic() < deadline, "not settled in time"
        webhooks_drain(time_budget=2)
        time.sleep(0.1)

    counted = {outcome: webhooks(outcome) - before[outcome] for outcome in before}
    assert counted == {"sent": 1, "retried": 1, "failed": 1}
    assert WebhookAttempt.objects.count() == sum(counted.values()) == 3
    assert sorted(WebhookDelivery.objects.values_list("status", flat=True)) == ["delivered", "failed"]
