"""The allocator's own rules, one run at a time (races are in test_allocation_concurrency)."""

import pytest

from customers.models import Message
from inventory.selectors import location_online_pool
from inventory.services import stock_receive
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
    monkeypatch.setattr(allocation, "admission_watermark", lambda *, launch_id: first.sequence)
    result = launch_allocate(launch_id=launch.pk)
    first.refresh_from_db()
    later.refresh_from_db()
    assert result.allocated == 1
    assert first.status == Order.Status.ALLOCATED
    assert later.status == Order.Status.QUEUED
