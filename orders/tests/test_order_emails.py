"""What an email about an order says is one rule (orders.services.order_emails): the
allocator's set-based statement, staff cancellation and the collection deadline all
write what order_facts gives for their kind."""

import datetime

import pytest
from django.utils import timezone

from customers.models import Message
from customers.services.outbox import OrderFacts
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel_by_staff
from orders.services.collection import collect_deadlines_expire
from orders.services.order_emails import order_facts
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def told(order: Order, kind: str) -> OrderFacts | None:
    message = Message.objects.get(order_reference=order.reference, kind=kind)
    return OrderFacts.from_row(reference=message.order_reference, context=message.context)


@pytest.fixture
def held_and_waiting(launch_with_stock):
    """One unit in the store: the first collect order holds it, the second waits."""
    launch_with_stock(store_units=1, customers=2)
    held, waiting = (
        order_admit(
            launch="iphone-3g",
            customer=account,
            sku="IP3G-8GB-BLACK",
            fulfilment="collect",
            store="S001",
            channel=Order.Channel.ONLINE,
        ).order
        for account in ("D0000001", "D0000002")
    )
    launch_allocate(launch_id=held.launch_id)
    held.refresh_from_db()
    waiting.refresh_from_db()
    assert (held.status, waiting.status) == (Order.Status.ALLOCATED, Order.Status.WAITLISTED)
    return held, waiting


def test_the_allocators_set_based_emails_say_what_order_facts_says(held_and_waiting):
    held, waiting = held_and_waiting
    reserved = told(held, Message.Kind.ALLOCATED)
    assert reserved == order_facts(order=held, kind=Message.Kind.ALLOCATED)
    assert reserved is not None and reserved.collect_by == held.collect_by is not None
    assert told(waiting, Message.Kind.ORDER_RECEIVED) == order_facts(
        order=waiting, kind=Message.Kind.ORDER_RECEIVED, position=1
    )


def test_a_cancelled_order_is_not_told_its_old_deadline(held_and_waiting):
    held, _ = held_and_waiting
    order_cancel_by_staff(order=held, reason="Asked by phone", user=UserFactory(username="head"))
    cancelled = told(held, Message.Kind.ORDER_CANCELLED)
    assert cancelled == order_facts(order=held, kind=Message.Kind.ORDER_CANCELLED)
    assert cancelled is not None and cancelled.collect_by is None and cancelled.store_id == held.store_id


def test_an_uncollected_order_is_told_the_deadline_it_missed(held_and_waiting):
    held, _ = held_and_waiting
    assert collect_deadlines_expire(now=timezone.now() + datetime.timedelta(days=30)) == 1
    expired = told(held, Message.Kind.COLLECTION_EXPIRED)
    assert expired == order_facts(order=held, kind=Message.Kind.COLLECTION_EXPIRED)
    assert expired is not None and expired.collect_by == held.collect_by
