"""Stock notices: freed units offered in registration order, held for a claim window,
claimed first come first served, and passed on to the next customers when unclaimed."""

import datetime
import re
import threading
import time
from collections import Counter

import pytest
from celery import current_app
from django.core.cache import cache
from django.db import connection, connections
from django.utils import timezone

from customers.models import Customer, Message, UpgradeRegistration
from customers.services import outbox
from customers.services.outbox import claim_token_make
from inventory.models import Stock
from inventory.services import location_for_store, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import ClaimWindow, Order, StockNotice
from orders.services.allocation import launch_allocate
from orders.services.notices import (
    SERVE_FREED_TASK,
    ClaimProblem,
    ClaimRefused,
    claim_windows_expire,
    launch_free_units_serve,
    stock_notice_claim,
)
from orders.tests.invariants import fcfs_violations, oversold
from stores.models import StaffMembership
from stores.tests.factories import StoreFactory, UserFactory, head_office_login

CLAIM_LINK = re.compile(r"/upgrade/claim/([^/\s\"]+)/")


def world(*, customers: int, units: int = 0):
    """An open launch, a store, `customers` registered for collection there whose
    registration order is the reverse of their ids (so ordering by id would show)."""
    sku = SKUFactory(code="IP3G-8GB-BLACK")
    launch = LaunchFactory(slug="notices", skus=[sku])
    store = StoreFactory(code="S001")
    location = location_for_store(store=store)
    people = Customer.objects.bulk_create(
        [
            Customer(
                account_number=f"N{n:07d}", name=f"N {n}", email=f"n{n}@example.com", postcode="SW1A 1AA"
            )
            for n in range(1, customers + 1)
        ]
    )
    registrations = UpgradeRegistration.objects.bulk_create(
        [
            UpgradeRegistration(customer=c, launch=launch, preferred_sku=sku, preferred_store=store)
            for c in people
        ]
    )
    base = timezone.now() - datetime.timedelta(days=3)
    for registration in registrations:
        registration.registered_at = base - datetime.timedelta(seconds=registration.customer_id)
    UpgradeRegistration.objects.bulk_update(registrations, ["registered_at"], batch_size=500)
    if units:
        stock_receive(location=location, sku=sku, quantity=units, reference="freed")
    in_registration_order = [c.pk for c in sorted(people, key=lambda c: -c.pk)]
    return launch, sku, store, location, in_registration_order


def tokens(launch) -> dict[int, str]:
    """customer id -> claim token, as the links in their emails carry them."""
    return {
        n.customer_id: claim_token_make(notice_id=n.pk, expires_at=n.window.closes_at)
        for n in StockNotice.objects.filter(launch=launch).select_related("window")
    }


def stock(location, sku) -> Stock:
    return Stock.objects.get(location=location, sku=sku)


@pytest.fixture
def start_mail_worker(celery_worker_factory, smtp_sink):
    cache.delete_many([outbox.NUDGE_KEY, outbox.WAKE_KEY])
    return lambda: celery_worker_factory(
        extra_env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
            "OUTBOX_BATCH_SIZE": "50",
        }
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_40_freed_units_notify_exactly_60_in_registration_order_each_once_and_40_claims_win(
    start_mail_worker, smtp_sink
):
    launch, sku, store, location, order_of_registration = world(customers=1000, units=40)
    worker = start_mail_worker()

    # The trigger as a cancellation's nudge sends it: to the worker, by name.
    current_app.send_task(SERVE_FREED_TASK, args=[launch.pk])
    assert smtp_sink.wait_for(60, timeout=60), worker.log()[-3000:]
    told = list(
        StockNotice.objects.filter(launch=launch).order_by("rank").values_list("customer_id", flat=True)
    )
    assert told == order_of_registration[:60]
    expected = {Customer.objects.get(pk=pk).email: pk for pk in told}
    assert Counter(r.rcpt[0] for r in smtp_sink.received) == Counter(expected.keys())
    assert stock(location, sku).reserved == 40  # held: nobody else can have them

    # Repeated triggers (the worker twice, and in process as intake runs it) find nothing
    # free and tell nobody twice.
    current_app.send_task(SERVE_FREED_TASK, args=[launch.pk])
    current_app.send_task(SERVE_FREED_TASK, args=[launch.pk])
    assert launch_free_units_serve(launch_id=launch.pk).notified == 0
    deadline = time.monotonic() + 30
    while worker.log().count(f"{SERVE_FREED_TASK}[") < 6 and time.monotonic() < deadline:
        time.sleep(0.2)  # received and succeeded, three times
    assert "'notified': 0" in worker.log(), worker.log()[-3000:]
    time.sleep(1)  # and any email the outbox would have sent
    assert StockNotice.objects.filter(launch=launch).count() == 60
    assert smtp_sink.count() == 60

    # The links in the emails are what the customers click, earliest registered last.
    links = {r.rcpt[0]: CLAIM_LINK.search(r.text()).group(1) for r in smtp_sink.received}
    clicks = [links[email] for email in reversed(list(expected))]
    orders = [stock_notice_claim(token=token) for token in clicks[:40]]
    assert {o.status for o in orders} == {Order.Status.ALLOCATED}
    with pytest.raises(ClaimRefused) as refused:
        stock_notice_claim(token=clicks[40])
    assert refused.value.problem is ClaimProblem.GONE
    assert "All 40 phones" in refused.value.message
    assert Order.objects.filter(launch=launch).count() == 40
    assert stock(location, sku).reserved == 40
    assert oversold(launch_id=launch.pk) == []
    assert fcfs_violations(launch_id=launch.pk) == []
    # Each winner got the "reserved" email as well; the sink saw nothing twice.
    assert smtp_sink.wait_for(100, timeout=60)
    assert max(Counter(r.message_id for r in smtp_sink.received).values()) == 1


@pytest.mark.django_db(transaction=True)
def test_expired_window_returns_units_and_notifies_the_next_customers():
    launch, sku, store, location, order_of_registration = world(customers=100, units=10)
    assert launch_free_units_serve(launch_id=launch.pk).notified == 15
    links = tokens(launch)
    for pk in order_of_registration[:4]:
        stock_notice_claim(token=links[pk])
    window = ClaimWindow.objects.get(launch=launch)

    assert claim_windows_expire(now=window.closes_at - datetime.timedelta(seconds=1)) == 0
    later = window.closes_at + datetime.timedelta(seconds=1)
    assert claim_windows_expire(now=later) == 1
    assert claim_windows_expire(now=later) == 0  # twice changes nothing

    window.refresh_from_db()
    assert (window.status, window.claimed) == (ClaimWindow.Status.CLOSED, 4)
    # 6 unclaimed units back, offered to the next 9 customers in registration order.
    second = ClaimWindow.objects.get(launch=launch, status=ClaimWindow.Status.OPEN)
    assert (second.units, second.notified) == (6, 9)
    told = list(
        StockNotice.objects.filter(window=second).order_by("rank").values_list("customer_id", flat=True)
    )
    assert told == order_of_registration[15:24]
    assert Message.objects.filter(kind=Message.Kind.STOCK_NOTICE).count() == 24
    assert stock(location, sku).reserved == 4 + 6
    # The first window's link is now an honest "expired", and changes nothing.
    with pytest.raises(ClaimRefused) as refused:
        stock_notice_claim(token=links[order_of_registration[5]], now=later)
    assert refused.value.problem is ClaimProblem.EXPIRED
    assert oversold(launch_id=launch.pk) == []


@pytest.mark.django_db(transaction=True)
def test_waiting_orders_are_served_before_anyone_is_notified():
    launch, sku, store, location, order_of_registration = world(customers=30)
    waiting = [
        Order.objects.create(
            reference=f"LDW{n:07d}",
            launch=launch,
            customer_id=order_of_registration[-1 - n],
            sku=sku,
            channel=Order.Channel.ONLINE,
            fulfilment=Order.Fulfilment.COLLECT,
            store=store,
            pool=location,
        )
        for n in range(3)
    ]
    stock_receive(location=location, sku=sku, quantity=5, reference="freed")
    result = launch_free_units_serve(launch_id=launch.pk)
    assert {o.status for o in Order.objects.filter(pk__in=[w.pk for w in waiting])} == {
        Order.Status.ALLOCATED
    }
    assert (result.held, result.notified) == (2, 3)
    assert fcfs_violations(launch_id=launch.pk) == []


@pytest.mark.django_db(transaction=True)
def test_tampered_link_and_own_second_claim_change_nothing():
    launch, sku, store, location, order_of_registration = world(customers=10, units=2)
    launch_free_units_serve(launch_id=launch.pk)
    token = tokens(launch)[order_of_registration[0]]
    with pytest.raises(ClaimRefused) as refused:
        stock_notice_claim(token=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert refused.value.problem is ClaimProblem.TAMPERED
    order = stock_notice_claim(token=token)
    with pytest.raises(ClaimRefused) as refused:
        stock_notice_claim(token=token)
    assert refused.value.problem is ClaimProblem.ALREADY_ORDERED
    assert refused.value.reference == order.reference
    assert Order.objects.filter(launch=launch).count() == 1
    assert ClaimWindow.objects.get(launch=launch).claimed == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_racing_claims_on_postgresql_never_oversell():
    if connection.vendor != "postgresql":
        pytest.skip("the race needs PostgreSQL")
    launch, sku, store, location, order_of_registration = world(customers=40, units=10)
    launch_free_units_serve(launch_id=launch.pk)
    links = list(tokens(launch).values())
    assert len(links) == 15
    barrier = threading.Barrier(len(links))
    outcomes: list[str] = []

    def claim(token: str) -> None:
        try:
            barrier.wait()
            stock_notice_claim(token=token)
            outcomes.append("order")
        except ClaimRefused as refused:
            outcomes.append(refused.problem.name)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(t,)) for t in links]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(outcomes) == {"order": 10, "GONE": 5}
    assert Order.objects.filter(launch=launch, status=Order.Status.ALLOCATED).count() == 10
    assert stock(location, sku).reserved == 10
    assert oversold(launch_id=launch.pk) == []


@pytest.mark.django_db(transaction=True)
def test_claim_page_offers_orders_and_refuses_each_way_with_its_own_page(client):
    launch, sku, store, location, order_of_registration = world(customers=10, units=2)
    launch_free_units_serve(launch_id=launch.pk)  # 2 held, 3 told
    links = tokens(launch)
    first, second, third = (links[pk] for pk in order_of_registration[:3])

    offer = client.get(f"/upgrade/claim/{first}/")
    assert offer.status_code == 200
    assert b"collection at" in offer.content and b"Order this phone" in offer.content
    assert Order.objects.count() == 0  # looking changes nothing

    tampered = client.post(f"/upgrade/claim/{first[:-3]}abc/")
    assert tampered.status_code == 400 and b"link doesn" in tampered.content

    placed = client.post(f"/upgrade/claim/{first}/")
    order = Order.objects.get(customer_id=order_of_registration[0])
    assert placed.status_code == 302 and placed["Location"] == f"/upgrade/orders/{order.reference}/"
    assert (order.status, order.fulfilment, order.store_id) == (Order.Status.ALLOCATED, "collect", store.pk)

    again = client.post(f"/upgrade/claim/{first}/")
    assert again.status_code == 409 and order.reference.encode() in again.content
    assert client.post(f"/upgrade/claim/{second}/").status_code == 302
    gone = client.post(f"/upgrade/claim/{third}/")
    assert gone.status_code == 409 and b"held phones have gone" in gone.content

    window = ClaimWindow.objects.get(launch=launch)
    ClaimWindow.objects.filter(pk=window.pk).update(closes_at=timezone.now() - datetime.timedelta(seconds=1))
    expired = client.post(f"/upgrade/claim/{third}/")
    assert expired.status_code == 410 and b"offer has ended" in expired.content
    assert Order.objects.count() == 2
    assert stock(location, sku).reserved == 2


@pytest.mark.django_db(transaction=True)
def test_head_office_sees_notices_per_pool_and_sets_factor_and_window(client):
    launch, sku, store, location, order_of_registration = world(customers=20, units=4)
    launch_free_units_serve(launch_id=launch.pk)  # 4 held, 6 told
    stock_notice_claim(token=tokens(launch)[order_of_registration[0]])
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    page = client.get(f"/office/launches/{launch.slug}/")
    assert page.status_code == 200
    row = re.search(rb'data-notice-pool="IP3G-8GB-BLACK[^"]*">(.*?)</tr>', page.content, re.S).group(1)
    figures = dict(re.findall(rb'data-field="(\w+)">(\d+)<', row))
    assert figures == {
        b"notified": b"6",
        b"claimed": b"1",
        b"expired": b"0",
        b"held_now": b"3",
        b"returned": b"0",
    }

    for bad in ({"notice_factor": "-1", "claim_window_minutes": "60"}, {"notice_factor": "1.5", "x": "1"}):
        refused = client.post(f"/office/launches/{launch.slug}/stock-notices/", bad)
        assert refused.status_code == 200 and b"There is a problem" in refused.content
    # A NUL byte never reaches the form: the input guard answers 400 for every page.
    nul = client.post(f"/office/launches/{launch.slug}/stock-notices/", {"notice_factor": "1\x00"})
    assert nul.status_code == 400
    launch.refresh_from_db()
    assert (str(launch.notice_factor), launch.claim_window_minutes) == ("1.50", 120)

    saved = client.post(
        f"/office/launches/{launch.slug}/stock-notices/", {"notice_factor": "2", "claim_window_minutes": "30"}
    )
    assert saved.status_code == 302
    launch.refresh_from_db()
    assert (launch.notice_factor, launch.claim_window_minutes) == (2, 30)


@pytest.mark.django_db(transaction=True)
def test_a_held_unit_is_not_sold_to_a_walk_in_and_staff_are_told_why():
    from orders.services.walkin import SoldOut, ticket_issue, ticket_serve_next

    launch, sku, store, location, order_of_registration = world(customers=10, units=2)
    launch_free_units_serve(launch_id=launch.pk)
    ticket_issue(launch=launch, store=store)
    with pytest.raises(SoldOut, match="held for customers told by a stock notice"):
        ticket_serve_next(launch=launch, store=store, sku=sku)
    assert (stock(location, sku).on_hand, stock(location, sku).reserved) == (2, 2)
    window = ClaimWindow.objects.get(launch=launch)
    claim_windows_expire(now=window.closes_at + datetime.timedelta(seconds=1))
    # Nobody claimed: the units came back, and went to the next customers told, not the counter.
    assert stock(location, sku).reserved == 2
    assert StockNotice.objects.filter(launch=launch).count() == 6


@pytest.mark.django_db(transaction=True)
def test_customers_holding_a_link_are_not_told_sold_out_until_their_window_closes():
    from customers.models import Campaign
    from orders.selectors.campaigns import campaign_audience

    launch, sku, store, location, order_of_registration = world(customers=10, units=2)
    launch_free_units_serve(launch_id=launch.pk)  # the first 3 told
    audience = {
        r.customer_id
        for r in campaign_audience(launch=launch, audience=Campaign.Audience.REGISTERED_WITHOUT_ORDER)
    }
    assert audience == set(order_of_registration[3:])
    ClaimWindow.objects.update(status=ClaimWindow.Status.CLOSED)
    audience = {
        r.customer_id
        for r in campaign_audience(launch=launch, audience=Campaign.Audience.REGISTERED_WITHOUT_ORDER)
    }
    assert audience == set(order_of_registration)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_claims_racing_the_window_closing_never_lose_or_double_a_unit():
    if connection.vendor != "postgresql":
        pytest.skip("the race needs PostgreSQL")
    launch, sku, store, location, order_of_registration = world(customers=60, units=10)
    launch_free_units_serve(launch_id=launch.pk)
    window = ClaimWindow.objects.get(launch=launch)
    links = list(tokens(launch).values())
    barrier = threading.Barrier(len(links) + 1)
    outcomes: list[str] = []
    # Both sides believe they are in time: the claims a moment before the end, the close at it.
    claim_at = window.closes_at - datetime.timedelta(milliseconds=1)

    def claim(token: str) -> None:
        try:
            barrier.wait()
            stock_notice_claim(token=token, now=claim_at)
            outcomes.append("order")
        except ClaimRefused as refused:
            outcomes.append(refused.problem.name)
        finally:
            connections.close_all()

    def close() -> None:
        try:
            barrier.wait()
            time.sleep(0.005)  # a few claims land first, the rest race the close
            claim_windows_expire(now=window.closes_at)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(t,)) for t in links] + [threading.Thread(target=close)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window.refresh_from_db()
    orders = Order.objects.filter(launch=launch, status=Order.Status.ALLOCATED).count()
    assert window.status == ClaimWindow.Status.CLOSED
    assert outcomes.count("order") == window.claimed == orders <= 10
    assert set(outcomes) <= {"order", "GONE", "EXPIRED"}, outcomes
    # What was not claimed went back and on to the next customers; nothing else moved.
    nxt = ClaimWindow.objects.filter(launch=launch, status=ClaimWindow.Status.OPEN).first()
    assert stock(location, sku).reserved == orders + (nxt.units if nxt else 0)
    assert (nxt.units if nxt else 0) == 10 - orders
    assert oversold(launch_id=launch.pk) == []


@pytest.mark.django_db(transaction=True)
def test_the_order_form_honours_a_notice_and_serves_the_held_unit(client):
    launch, sku, store, location, order_of_registration = world(customers=10, units=2)
    launch_free_units_serve(launch_id=launch.pk)  # 2 held for the first 3
    told, untold = (Customer.objects.get(pk=order_of_registration[i]) for i in (0, 5))

    def order_form(customer):
        return client.post(
            f"/upgrade/{launch.slug}/order/",
            {
                "account_number": customer.account_number,
                "postcode": customer.postcode,
                "sku": sku.code,
                "fulfilment": "collect",
                "store": store.code,
                "token": "",
            },
        )

    assert order_form(told).status_code == 302
    order = Order.objects.get(customer=told)
    assert order.status == Order.Status.ALLOCATED and order.stock_notice.window.claimed == 1
    # Someone not told queues behind the hold, as anyone not notified does.
    assert order_form(untold).status_code == 302
    launch_allocate(launch_id=launch.pk)
    assert Order.objects.get(customer=untold).status == Order.Status.WAITLISTED
    assert stock(location, sku).reserved == 2
    assert fcfs_violations(launch_id=launch.pk) == [] and oversold(launch_id=launch.pk) == []


@pytest.mark.django_db(transaction=True)
def test_a_cancellation_and_an_expired_collection_free_units_that_are_offered_in_order():
    from orders.services.cancellation import order_cancel
    from orders.services.collection import collect_deadlines_expire

    launch, sku, store, location, order_of_registration = world(customers=20, units=2)
    buyers = [Customer.objects.get(pk=pk) for pk in order_of_registration[-2:]]  # registered last
    orders = [
        Order.objects.create(
            reference=f"LDX{n:07d}",
            launch=launch,
            customer=customer,
            sku=sku,
            channel=Order.Channel.ONLINE,
            fulfilment=Order.Fulfilment.COLLECT,
            store=store,
            pool=location,
        )
        for n, customer in enumerate(buyers)
    ]
    launch_allocate(launch_id=launch.pk)
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {Order.Status.ALLOCATED}
    assert StockNotice.objects.count() == 0  # nothing was free

    # A cancellation: its nudge (eager here) serves the waitlist, then tells 1 x 1.5 = 1.
    order_cancel(order=orders[0], reason="changed mind")
    assert list(StockNotice.objects.values_list("customer_id", flat=True)) == order_of_registration[:1]

    # An uncollected unit: back to the pool at its deadline, and on to the next customer.
    collect_by = Order.objects.get(pk=orders[1].pk).collect_by
    assert collect_deadlines_expire(now=collect_by + datetime.timedelta(minutes=1)) == 1
    told = list(StockNotice.objects.order_by("window_id", "rank").values_list("customer_id", flat=True))
    assert told == order_of_registration[:2]
    assert stock(location, sku).reserved == 2  # both freed units held, one per window
    assert oversold(launch_id=launch.pk) == []
