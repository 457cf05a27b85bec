"""Webhooks delivered by a real Celery worker (its own process, on Redis) to a real
receiver on loopback: after commit and never for a rollback, a never-answering partner
does not hold up another, and a SIGKILLed sender loses nothing."""

import time
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import transaction

from orders.models import Order
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel
from stores.models import WebhookDelivery, WebhookEvent, WebhookEventType
from stores.services import webhooks
from stores.tests.receiver import Answer
from stores.tests.webhook_world import world_make

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

T = WebhookEventType


@pytest.fixture
def start_webhook_worker(celery_worker_factory):
    cache.delete(webhooks.NUDGE_KEY)

    def start(**env):
        base = {
            "WEBHOOK_LEASE_SECONDS": "3",
            "WEBHOOK_RETRY_SCHEDULE": "0.5,0.5",
            "WEBHOOK_RETRY_JITTER": "0",
        }
        base.update({k: str(v) for k, v in env.items()})
        return celery_worker_factory(extra_env=base, concurrency=2)

    return start


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_worker_delivers_after_commit_and_never_for_a_rolled_back_change(start_webhook_worker, receiver):
    world = world_make(online_units=2)
    # The worker's allocator serves the orders too (their admissions nudged it): only
    # cancellations matter here.
    endpoint = world.endpoint(receiver.url(), types=[T.ORDER_CANCELLED])
    worker = start_webhook_worker()
    kept, undone = world.order(0), world.order(1)
    with transaction.atomic():
        order_cancel(order=kept)
        time.sleep(1.0)  # a nudge sent before the commit would have been delivered by now
        assert receiver.requests == []
    with pytest.raises(RuntimeError), transaction.atomic():
        order_cancel(order=undone)
        raise RuntimeError("rolled back")
    assert receiver.wait_for(1, 10), worker.log()[-3000:]
    time.sleep(1.0)
    assert len(receiver.at()) == 1, [(r.webhook_id, r.body[:80], r.at) for r in receiver.at()]
    (request,) = receiver.at()
    payload = request.verify(endpoint.secret)
    assert payload["type"] == "order.cancelled" and payload["data"]["reference"] == kept.reference
    assert Order.objects.get(pk=undone.pk).status != "cancelled"
    assert WebhookEvent.objects.count() == 1


def test_a_receiver_that_never_answers_cannot_delay_another_partners_deliveries(
    start_webhook_worker, receiver
):
    world = world_make(online_units=0, customers=20)
    world.endpoint(receiver.url("/hangs"), types=[T.ORDER_WAITLISTED])
    world.endpoint(receiver.url("/quick"), partner=world.other, types=[T.ORDER_WAITLISTED])
    receiver.script("/hangs", Answer(hang=True))
    worker = start_webhook_worker(WEBHOOK_TIMEOUT_SECONDS=20, WEBHOOK_LEASE_SECONDS=60)
    for n in range(10):
        world.order(n)  # the hanging partner's first
    launch_allocate(launch_id=world.launch.pk)
    assert receiver.wait_for(1, 10, "/hangs"), worker.log()[-3000:]
    started = time.monotonic()
    for n in range(10, 20):
        world.order(n, partner=world.other)
    launch_allocate(launch_id=world.launch.pk)
    assert receiver.wait_for(10, 10, "/quick"), worker.log()[-3000:]
    took = time.monotonic() - started
    assert took < 5, took  # well inside the hanging request's 20 s
    assert receiver.max_in_flight["/hangs"] <= 2  # the endpoint's cap, not every sender


def test_a_sigkilled_sender_loses_nothing_and_repeats_at_most_what_was_in_flight(
    start_webhook_worker, receiver
):
    # Each sender writes its successes `every` at a time: killed, it repeats at most the
    # request it was waiting on and the successes not yet written (sender.py's docstring).
    n, kills, cap, every = 150, 2, 2, 4
    world = world_make(online_units=0, customers=n)
    world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    receiver.script("/hook", Answer(200, delay=0.02))  # slow enough for each kill to land mid-batch
    for i in range(n):
        world.order(i)
    worker = start_webhook_worker(
        WEBHOOK_ENDPOINT_CONCURRENCY=cap, WEBHOOK_BATCH_SIZE=50, WEBHOOK_RECORD_EVERY=every
    )
    launch_allocate(launch_id=world.launch.pk)
    for k in range(kills):
        assert receiver.wait_for((k + 1) * 40, 20), worker.log()[-3000:]
        worker.kill()
        assert WebhookDelivery.objects.filter(status="sending").exists(), Counter(
            WebhookDelivery.objects.values_list("status", flat=True)
        )
        worker = start_webhook_worker(
            WEBHOOK_ENDPOINT_CONCURRENCY=cap, WEBHOOK_BATCH_SIZE=50, WEBHOOK_RECORD_EVERY=every
        )
    delivered = lambda: WebhookDelivery.objects.filter(status="delivered").count() == n  # noqa: E731
    assert wait_until(delivered, 30), (
        worker.log()[-3000:],
        Counter(WebhookDelivery.objects.values_list("status", flat=True)),
    )
    time.sleep(0.5)
    per_id = Counter(r.webhook_id for r in receiver.at())
    assert set(per_id) == {e.webhook_id for e in WebhookEvent.objects.all()}  # nothing lost
    duplicates = sum(c - 1 for c in per_id.values())
    assert duplicates <= kills * cap * every, per_id.most_common(5)  # at most what was in flight
    print(
        f"\n[webhooks] {n} events, {kills} SIGKILLs mid-batch: 0 lost, {duplicates} repeated, same webhook-id"
    )
