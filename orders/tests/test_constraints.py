"""Orders, launches, pools and tickets refuse impossible rows in the database itself.

"One order per customer" and "one answer per idempotency key" are database rules, not
check-then-insert, so these constraints are what admission relies on under races.
"""

import datetime
import itertools

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.tests.factories import CustomerFactory
from inventory.models import Launch
from inventory.tests.factories import LaunchFactory, SKUFactory, online_pool, store_location
from orders.models import Order, PoolState, Ticket
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db
_refs = itertools.count(1)


def rejects(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


@pytest.fixture
def launch():
    return LaunchFactory()


@pytest.fixture
def sku():
    return SKUFactory()


def make_order(*, launch, sku, customer=None, **overrides) -> Order:
    fields = {
        "reference": f"REF{next(_refs):06d}",
        "launch": launch,
        "customer": customer or CustomerFactory(),
        "sku": sku,
        "channel": Order.Channel.ONLINE,
        "fulfilment": Order.Fulfilment.DELIVERY,
        "pool": online_pool(),
    }
    fields.update(overrides)
    return Order.objects.create(**fields)


def test_one_order_per_customer_slot(launch, sku):
    customer = CustomerFactory()
    make_order(launch=launch, sku=sku, customer=customer)
    rejects(lambda: make_order(launch=launch, sku=sku, customer=customer, channel=Order.Channel.PARTNER))
    # A second slot (a launch limit of two) and another launch are separate orders.
    make_order(launch=launch, sku=sku, customer=customer, slot=2)
    make_order(launch=LaunchFactory(), sku=sku, customer=customer)


def test_slot_starts_at_one(launch, sku):
    rejects(lambda: make_order(launch=launch, sku=sku, slot=0))


def test_idempotency_key_unique_per_scope(launch, sku):
    make_order(launch=launch, sku=sku, idempotency_scope="partner:cpw", idempotency_key="k-1")
    rejects(
        lambda: make_order(launch=launch, sku=sku, idempotency_scope="partner:cpw", idempotency_key="k-1")
    )
    # Another caller may use the same key, and orders without a key never collide.
    make_order(launch=launch, sku=sku, idempotency_scope="partner:other", idempotency_key="k-1")
    make_order(launch=launch, sku=sku, idempotency_scope="partner:cpw", idempotency_key=None)
    make_order(launch=launch, sku=sku, idempotency_scope="partner:cpw", idempotency_key=None)


def test_collect_orders_name_a_store(launch, sku):
    store = StoreFactory()
    rejects(lambda: make_order(launch=launch, sku=sku, fulfilment=Order.Fulfilment.COLLECT, store=None))
    make_order(
        launch=launch, sku=sku, fulfilment=Order.Fulfilment.COLLECT, store=store, pool=store_location(store)
    )


def test_delivery_orders_name_no_store(launch, sku):
    rejects(
        lambda: make_order(launch=launch, sku=sku, fulfilment=Order.Fulfilment.DELIVERY, store=StoreFactory())
    )


def test_wait_numbers_are_unique_in_a_pool(launch, sku):
    make_order(launch=launch, sku=sku, status=Order.Status.WAITLISTED, wait_number=1)
    rejects(lambda: make_order(launch=launch, sku=sku, status=Order.Status.WAITLISTED, wait_number=1))
    make_order(launch=launch, sku=SKUFactory(), status=Order.Status.WAITLISTED, wait_number=1)


def test_order_references_are_unique(launch, sku):
    order = make_order(launch=launch, sku=sku)
    rejects(lambda: make_order(launch=launch, sku=sku, reference=order.reference))


def test_launch_window_must_close_after_it_opens():
    now = timezone.now()
    rejects(lambda: Launch.objects.create(slug="backwards", name="x", opens_at=now, closes_at=now))
    rejects(
        lambda: Launch.objects.create(
            slug="backwards2", name="x", opens_at=now, closes_at=now - datetime.timedelta(hours=1)
        )
    )


def test_launch_limit_is_at_least_one():
    now = timezone.now()
    rejects(
        lambda: Launch.objects.create(
            slug="nolimit",
            name="x",
            opens_at=now,
            closes_at=now + datetime.timedelta(days=1),
            per_customer_limit=0,
        )
    )


def test_one_pool_state_per_pool(launch, sku):
    PoolState.objects.create(launch=launch, sku=sku, pool=online_pool())
    rejects(lambda: PoolState.objects.create(launch=launch, sku=sku, pool=online_pool()))


def test_ticket_numbers_are_unique_per_store_and_launch(launch):
    store = StoreFactory()
    Ticket.objects.create(launch=launch, store=store, number=1)
    rejects(lambda: Ticket.objects.create(launch=launch, store=store, number=1))
    Ticket.objects.create(launch=launch, store=StoreFactory(), number=1)
