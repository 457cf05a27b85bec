"""Staff cancel an order: the unit goes to the next in line, the customer hears once, and
an order already cancelled (or cancelled by two people at once) is refused, not repeated."""

import threading

import pytest
from django.db import connection

from customers.models import Message
from inventory.models import Stock
from inventory.services import location_online_pool
from orders.models import Order
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.cancellation import OrderNotCancellable, order_cancel_by_staff
from orders.services.collection import order_collect
from stores.tests.factories import UserFactory

pytestmark = [pytest.mark.services]


def admit(account: str) -> Order:
    return order_admit(
        launch="iphone-3g",
        customer=account,
        sku="IP3G-8GB-BLACK",
        fulfilment="delivery",
        channel=Order.Channel.ONLINE,
    ).order


@pytest.fixture
def one_unit_three_orders(launch_with_stock):
    """One online unit: the first order holds it, the next two wait."""
    launch, sku, _, _ = launch_with_stock(online_units=1, customers=5)
    first, second, third = (admit(f"D{n:07d}") for n in (1, 2, 3))
    launch_allocate(launch_id=launch.pk)
    return launch, sku, [Order.objects.get(pk=o.pk) for o in (first, second, third)]


def cancelled_mail(order: Order) -> list[Message]:
    return list(Message.objects.filter(kind=Message.Kind.ORDER_CANCELLED, order_reference=order.reference))


@pytest.mark.django_db
def test_cancelling_the_holder_serves_the_next_waiting_order_and_tells_the_customer(
    one_unit_three_orders, django_capture_on_commit_callbacks
):
    launch, sku, (first, second, third) = one_unit_three_orders
    assert [first.status, second.status, third.status] == ["allocated", "waitlisted", "waitlisted"]
    staff = UserFactory(username="head")

    with django_capture_on_commit_callbacks(execute=True):
        order_cancel_by_staff(order=first, reason="Customer phoned: ordered twice by mistake", user=staff)

    first.refresh_from_db()
    assert first.status == "cancelled"
    assert first.cancel_reason == "Customer phoned: ordered twice by mistake"
    # The allocator ran on commit (eager here; a nudged worker in production).
    assert Order.objects.get(pk=second.pk).status == "allocated"
    assert Order.objects.get(pk=third.pk).status == "waitlisted"
    stock = Stock.objects.get(location=location_online_pool(), sku=sku)
    assert (stock.on_hand, stock.reserved) == (1, 1)
    [mail] = cancelled_mail(first)
    assert mail.customer_id == first.customer_id
    assert mail.context["sku"] == sku.pk


@pytest.mark.django_db
def test_a_second_cancel_is_refused_and_the_customer_is_told_once(one_unit_three_orders):
    _, _, (_, second, _) = one_unit_three_orders
    staff = UserFactory(username="head")
    order_cancel_by_staff(order=second, reason="first", user=staff)
    with pytest.raises(OrderNotCancellable, match="is cancelled"):
        order_cancel_by_staff(order=Order.objects.get(pk=second.pk), reason="second", user=staff)
    assert Order.objects.get(pk=second.pk).cancel_reason == "first"
    assert len(cancelled_mail(second)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_staff_cancelling_one_order_at_once_cancel_it_once(one_unit_three_orders):
    """Both read the order as allocated; the allocator lock and the status machine let one
    win. The unit is released once (never twice: that would be an oversell) and one
    email is queued."""
    _, sku, (first, second, _) = one_unit_three_orders
    staff = UserFactory(username="head")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def cancel(reason: str) -> None:
        try:
            order = Order.objects.get(pk=first.pk)
            barrier.wait(timeout=10)
            order_cancel_by_staff(order=order, reason=reason, user=staff)
            outcomes.append("cancelled")
        except OrderNotCancellable:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel, args=(f"desk {n}",)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["cancelled", "refused"]
    assert len(cancelled_mail(first)) == 1
    stock = Stock.objects.get(location=location_online_pool(), sku=sku)
    # One unit, released once and (on commit, eagerly) given to the next order in line.
    assert (stock.on_hand, stock.reserved) == (1, 1)
    assert Order.objects.get(pk=second.pk).status == "allocated"


@pytest.mark.django_db
def test_a_collected_order_cannot_be_cancelled(launch_with_stock):
    launch, _, _, _ = launch_with_stock(store_units=1, customers=2)
    order = order_admit(
        launch="iphone-3g",
        customer="D0000001",
        sku="IP3G-8GB-BLACK",
        fulfilment="collect",
        store="S001",
        channel=Order.Channel.ONLINE,
    ).order
    launch_allocate(launch_id=launch.pk)
    order_collect(order=Order.objects.get(pk=order.pk))
    with pytest.raises(OrderNotCancellable, match="fulfilled"):
        order_cancel_by_staff(order=order, reason="too late", user=UserFactory(username="head"))
    assert cancelled_mail(order) == []
