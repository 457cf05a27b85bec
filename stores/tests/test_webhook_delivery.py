"""Delivery to a real receiver on loopback: signed as partners verify (standardwebhooks),
retried with the same webhook-id, 410 and five failing days switch the endpoint off,
redirects are not followed, private addresses are refused, secrets rotate.

The sender runs in this process (webhooks_drain): real HTTP, real PostgreSQL. The worker
tests (test_webhook_worker) run it in a Celery worker.
"""

import datetime
import threading
import time

import pytest
import standardwebhooks
from django.utils import timezone

from customers.models import Message
from customers.services.partner_notices import webhook_disabled_notices_enqueue
from orders.services.allocation import launch_allocate
from stores.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookEventType
from stores.services.webhooks import webhook_delivery_retry, webhook_endpoint_rotate_secret, webhooks_drain
from stores.tests.receiver import Answer
from stores.tests.webhook_world import world_make

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

T = WebhookEventType


@pytest.fixture(autouse=True)
def quick(settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.3, 0.3, 0.3]
    settings.WEBHOOK_RETRY_JITTER = 0.0
    settings.WEBHOOK_DOWN_PAUSE_SECONDS = 0.2
    settings.CELERY_TASK_ALWAYS_EAGER = False  # no inline drains: each test drains itself
    settings.WEBHOOK_NUDGE_TTL_SECONDS = 0


def drain_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhooks_drain(time_budget=2)
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("not settled in time")


def settled() -> bool:
    return not WebhookDelivery.objects.filter(status__in=["pending", "sending"]).exists()


def test_every_event_arrives_once_signed_as_standardwebhooks_verifies_with_its_webhook_id(receiver):
    world = world_make(online_units=1, store_units=1)
    endpoint = world.endpoint(receiver.url())
    for n in range(3):
        world.order(n)
    world.order(3, collect=True)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    got = receiver.at()
    events = {e.webhook_id: e for e in WebhookEvent.objects.all()}
    assert sorted(r.webhook_id for r in got) == sorted(events)  # each once
    for request in got:
        payload = request.verify(endpoint.secret)
        event = events[request.webhook_id]
        assert payload["type"] == event.type and payload["data"] == event.data
        assert set(payload) == {"type", "timestamp", "data"}
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            request.verify("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    attempt = WebhookAttempt.objects.first()
    assert attempt.status_code == 200 and attempt.response_body == "ok"
    assert (
        attempt.request_headers["webhook-id"].startswith("msg_")
        and "webhook-signature" in attempt.request_headers
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_500_then_200_arrives_on_the_second_attempt_with_the_same_webhook_id(receiver):
    world = world_make(online_units=1)
    world.endpoint(receiver.url(), types=[T.ORDER_ALLOCATED])
    receiver.script("/hook", Answer(500, body=b"x" * 5000), Answer(200))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    webhooks_drain(time_budget=2)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
    assert delivery.next_attempt_at > timezone.now()  # waits its retry, not sent again at once
    drain_until(settled)
    first, second = receiver.at()
    assert first.webhook_id == second.webhook_id and first.body == second.body
    log = list(WebhookAttempt.objects.order_by("id").values_list("status_code", "response_body"))
    assert [c for c, _ in log] == [500, 200] and len(log[0][1]) == 2048  # the first 2 KB kept
    assert WebhookDelivery.objects.get().status == "delivered"


def test_retry_after_is_honoured(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0.1]
    world = world_make(online_units=1)
    world.endpoint(receiver.url(), types=[T.ORDER_ALLOCATED])
    receiver.script("/hook", Answer(503, headers={"Retry-After": "120"}))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    webhooks_drain(time_budget=2)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=110)


def test_retries_end_in_failed_after_the_schedule(receiver):
    world = world_make(online_units=1)
    world.endpoint(receiver.url(), types=[T.ORDER_ALLOCATED])
    receiver.script("/hook", Answer(500))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    assert len(receiver.at()) == 4  # first try and three retries
    assert WebhookDelivery.objects.get().status == "failed"


def test_410_switches_the_endpoint_off_and_its_other_deliveries_fail(receiver):
    world = world_make(online_units=0)
    world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    receiver.script("/hook", Answer(410))
    for n in range(3):
        world.order(n)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    assert len(receiver.at()) == 1
    endpoint = WebhookEndpoint.objects.get()
    assert not endpoint.is_enabled and endpoint.disabled_reason == "gone"
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    world.order(3)
    launch_allocate(launch_id=world.launch.pk)
    assert not WebhookDelivery.objects.filter(status="pending").exists()


def test_redirects_are_not_followed(receiver):
    world = world_make(online_units=1)
    world.endpoint(receiver.url("/moved"), types=[T.ORDER_ALLOCATED])
    receiver.script("/moved", Answer(307, headers={"Location": receiver.url("/hook")}))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    webhooks_drain(time_budget=2)
    assert len(receiver.at("/moved")) == 1 and receiver.at("/hook") == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and "Redirects are not followed" in delivery.last_error


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_and_loopback_addresses_are_refused_unless_allowed(receiver, settings, host):
    """An address, or a name that resolves to one (the guard checks after the lookup)."""
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    world = world_make(online_units=1)
    url = receiver.url().replace("127.0.0.1", host)
    WebhookEndpoint.objects.create(
        partner=world.partner, url=url, event_types=[T.ORDER_ALLOCATED], secret="whsec_QUFB"
    )  # as if its name had resolved to a public address when it was registered
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    webhooks_drain(time_budget=2)
    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "address refused" in attempt.error
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    drain_until(settled)
    assert len(receiver.at()) == 1


def test_rotation_both_secrets_verify_during_the_overlap_then_only_the_new_one(receiver):
    world = world_make(online_units=0)
    endpoint = world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    old = endpoint.secret
    endpoint = webhook_endpoint_rotate_secret(endpoint=endpoint)
    new = endpoint.secret
    assert new != old and endpoint.previous_secret == old
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    during = receiver.at()[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    during.verify(old)
    during.verify(new)
    # The overlap ends (24 h after the rotation): the old secret stops signing.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    webhook_delivery_retry(delivery=WebhookDelivery.objects.get())
    drain_until(lambda: len(receiver.at()) == 2)
    after = receiver.at()[-1]
    assert after.webhook_id == during.webhook_id
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    after.verify(new)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        after.verify(old)


def test_failing_for_five_days_switches_off_and_mails_the_partners_contact_once(receiver):
    world = world_make(online_units=0)
    endpoint = world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    receiver.script("/hook", Answer(500))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    webhooks_drain(time_budget=2)
    endpoint.refresh_from_db()
    assert endpoint.is_enabled and endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - datetime.timedelta(days=5, seconds=1)
    )
    world.order(1)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    endpoint.refresh_from_db()
    assert not endpoint.is_enabled and endpoint.disabled_reason == "failing"
    assert webhook_disabled_notices_enqueue() == 1
    assert webhook_disabled_notices_enqueue() == 0
    message = Message.objects.get(kind=Message.Kind.WEBHOOK_DISABLED)
    assert message.to_email == "integrations@cpw.example" and message.customer_id is None
    from customers.services.outbox import message_render

    rendered = message_render(message=message)
    assert (
        receiver.url() in rendered.text
        and "replay" in rendered.text
        and "Carphone Warehouse" in rendered.subject
    )


def test_a_success_ends_the_failure_streak(receiver):
    world = world_make(online_units=0)
    endpoint = world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    receiver.script("/hook", Answer(500), Answer(200))
    world.order(0)
    launch_allocate(launch_id=world.launch.pk)
    drain_until(settled)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.is_enabled


def test_requests_to_one_endpoint_never_exceed_its_concurrency_cap(receiver, settings):
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    settings.WEBHOOK_BATCH_SIZE = 5
    world = world_make(online_units=0, customers=30)
    world.endpoint(receiver.url(), types=[T.ORDER_WAITLISTED])
    receiver.script("/hook", Answer(200, delay=0.05))
    for n in range(30):
        world.order(n)
    launch_allocate(launch_id=world.launch.pk)
    threads = [
        threading.Thread(target=webhooks_drain, kwargs={"time_budget": 10, "senders": 3}) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receiver.at()) == 30
    assert receiver.max_in_flight["/hook"] == 2  # six senders, two slots
