"""The outbox drained by a real Celery worker on Redis, into a real SMTP server (aiosmtpd).

No eager mode and no mocks: the worker is a separate process on the test database, so a
SIGKILL is a real crash.
"""

import time
from collections import Counter

import pytest
from django.core.cache import cache

from customers.models import Campaign, Message
from customers.services import outbox
from customers.tests.conftest import allocated_messages, order_make
from customers.tests.factories import CustomerFactory
from orders.services.campaigns import launch_campaign_start as campaign_start

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start_mail_worker(celery_worker_factory, smtp_sink):
    cache.delete_many([outbox.NUDGE_KEY, outbox.WAKE_KEY])

    def start(**env):
        base = {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
            "OUTBOX_LEASE_SECONDS": "3",
            "OUTBOX_RETRY_BASE_SECONDS": "0.5",
            "OUTBOX_BATCH_SIZE": "25",
        }
        base.update({k: str(v) for k, v in env.items()})
        return celery_worker_factory(extra_env=base)

    return start


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def all_sent(n: int):
    return lambda: Message.objects.filter(status=Message.Status.SENT).count() == n


def test_n_queued_messages_arrive_exactly_n_times(start_mail_worker, smtp_sink, launch_with_sku):
    launch, sku = launch_with_sku
    messages = allocated_messages(launch=launch, sku=sku, n=120)
    worker = start_mail_worker()
    outbox.outbox_nudge()  # outside a transaction: runs at once, as after the allocator's commit
    assert wait_until(all_sent(120), 20), worker.log()[-3000:]
    time.sleep(0.5)  # anything extra would have arrived by now
    assert smtp_sink.count() == 120
    expected = {m.customer.email: m for m in messages}
    assert Counter(r.rcpt[0] for r in smtp_sink.received) == Counter(expected.keys())
    for got in smtp_sink.received:
        message = expected[got.rcpt[0]]
        assert got.message_id == f"<{message.message_id}@launchday.example>"
        assert message.order_reference in got.text()
        assert message.order_reference in got["Subject"]


def test_worker_killed_mid_batch_loses_nothing_and_duplicates_at_most_the_one_in_flight(
    start_mail_worker, smtp_sink, launch_with_sku, capsys
):
    launch, sku = launch_with_sku
    n, kills = 300, 2
    allocated_messages(launch=launch, sku=sku, n=n)
    # Paced so each kill lands in the middle of a batch.
    worker = start_mail_worker(EMAIL_SEND_RATE_PER_SECOND=150)
    outbox.outbox_nudge()
    # A kill counts when it lands mid-batch (the killed batch then stays `sending` until
    # its lease ends); on a slow machine one may land between batches, so kill again.
    landed = made = 0
    while landed < kills and made < kills + 3:
        assert smtp_sink.wait_for(smtp_sink.count() + 40, 15), worker.log()[-3000:]
        worker.kill()
        made += 1
        landed += Message.objects.filter(status=Message.Status.SENDING).exists()
        worker = start_mail_worker(EMAIL_SEND_RATE_PER_SECOND=150)  # nudges the outbox on start
    assert landed == kills, (made, Counter(Message.objects.values_list("status", flat=True)))
    assert wait_until(all_sent(n), 20), worker.log()[-3000:]
    time.sleep(0.5)
    per_id = Counter(r.message_id for r in smtp_sink.received)
    duplicates = sum(c - 1 for c in per_id.values())
    assert set(per_id) == {
        f"<{m}@launchday.example>" for m in Message.objects.values_list("message_id", flat=True)
    }
    assert max(per_id.values()) <= 2
    assert duplicates <= made, per_id.most_common(3)
    with capsys.disabled():
        print(
            f"\n[outbox] {n} messages, {made} SIGKILLs ({landed} mid-batch): 0 lost, {duplicates} duplicate(s), same Message-ID"
        )


def test_smtp_refusing_for_a_while_leads_to_retries_then_full_delivery(
    start_mail_worker, smtp_sink, launch_with_sku
):
    launch, sku = launch_with_sku
    worker = start_mail_worker()
    smtp_sink.refuse_until = time.monotonic() + 2.5
    messages = allocated_messages(launch=launch, sku=sku, n=40)
    outbox.outbox_nudge()
    assert wait_until(all_sent(40), 20), worker.log()[-3000:]
    assert smtp_sink.refused >= 40
    assert Counter(r.rcpt[0] for r in smtp_sink.received) == Counter(m.customer.email for m in messages)
    assert Message.objects.filter(attempts__gt=1).count() == 40
    assert Message.objects.filter(last_error__contains="451").count() == 40


def test_campaign_started_twice_delivers_one_copy_per_customer(start_mail_worker, smtp_sink, launch_with_sku):
    launch, sku = launch_with_sku
    customers = [CustomerFactory() for _ in range(30)]
    for number, customer in enumerate(customers, start=1):
        order_make(launch=launch, customer=customer, sku=sku, status="waitlisted", wait_number=number)
    worker = start_mail_worker()
    first = campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    second = campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    assert first.pk == second.pk and second.queued == 30
    assert wait_until(all_sent(30), 20), worker.log()[-3000:]
    campaign_start(launch=launch, kind=Message.Kind.APOLOGY, audience=Campaign.Audience.WAITLISTED)
    time.sleep(1.0)
    assert Counter(r.rcpt[0] for r in smtp_sink.received) == Counter(c.email for c in customers)
    assert all("We're sorry" in r.text() for r in smtp_sink.received)
