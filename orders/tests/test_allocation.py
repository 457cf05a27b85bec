"""The allocator's own rules, one run at a time (races are in test_allocation_concurrency)."""

import pytest

from customers.models import Message
from inventory.services import location_online_pool, stock_receive
from orders.models import Order
from orders.services import allocation
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate

pytestmark = pytest.mark.django_db


def admit(account: str):
    return order_admit(
        launch="iphone-3g",
        customer=account,
        sku="IP3G-8GB-BLACK",
        fulfilment="delivery",
        channel=Order.Channel.ONLINE,
    ).order


def test_an_order_waitlisted_then_allocated_gets_both_emails(launch_with_stock):
    """ "We have your order" (with its place) when it has to wait, then "your phone is
    reserved" when a unit comes: two events, two messages, neither swallowing the other."""
    launch, sku, _, _ = launch_with_stock(online_units=0, customers=1)
    order = admit("D0000001")
    launch_allocate(launch_id=launch.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.WAITLISTED
    stock_receive(location=location_online_pool(), sku=sku, quantity=1, reference="delivery-2")
    launch_allocate(launch_id=launch.pk)
    order.refresh_from_db()
    assert order.status == Order.Status.ALLOCATED
    kinds = sorted(Message.objects.filter(customer=order.customer).values_list("kind", flat=True))
    assert kinds == sorted([Message.Kind.ORDER_RECEIVED, Message.Kind.ALLOCATED])


def test_orders_past_the_admission_watermark_stay_queued(launch_with_stock, monkeypatch):
    """The allocator serves only orders at or below the watermark it read under the
    admission lock: a later order may sit behind an earlier one not yet committed."""
    launch, *_ = launch_with_stock(online_units=5, customers=2)
    first = admit("D0000001")
    later = admit("D0000002")
    monkeypatch.setattr(allocation, "admission_watermark", lambda *, launch_id, **_: first.sequence)
    result = launch_allocate(launch_id=launch.pk)
    first.refresh_from_db()
    later.refresh_from_db()
    assert result.allocated == 1
    assert first.status == Order.Status.ALLOCATED
    assert later.status == Order.Status.QUEUED


def test_the_allocators_email_says_what_the_order_was_given(launch_with_stock):
    """The allocator writes each email's facts in SQL (one statement with its UPDATE):
    the rendered mail names the store, the model and the collection deadline it set."""
    from django.utils import timezone

    from customers.services.outbox import message_render

    launch, sku, store, _ = launch_with_stock(store_units=1, customers=2)
    held = order_admit(
        launch="iphone-3g",
        customer="D0000001",
        sku=sku.code,
        fulfilment="collect",
        store="S001",
        channel=Order.Channel.ONLINE,
    ).order
    waiting = order_admit(
        launch="iphone-3g",
        customer="D0000002",
        sku=sku.code,
        fulfilment="collect",
        store="S001",
        channel=Order.Channel.ONLINE,
    ).order
    launch_allocate(launch_id=launch.pk)
    held.refresh_from_db()
    reserved = message_render(message=Message.objects.get(order_reference=held.reference))
    assert store.name in reserved.text and sku.name in reserved.text
    deadline = timezone.localtime(held.collect_by)
    assert deadline.strftime("%-d %B, %H:%M") in reserved.text
    received = message_render(message=Message.objects.get(order_reference=waiting.reference))
    assert "number 1 in the queue" in received.text and store.name in received.text
