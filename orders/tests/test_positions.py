"""The queue's one rule, read four ways: each reading agrees with the others on every order.

order_queue_position (one order), the INSERT's RETURNING (admission), queued_positions
(bulk admission) and waitlisted_positions (campaigns) are separate SQL for speed; this
holds them to the same answer over waitlists with served and cancelled places.
"""

import pytest

from inventory.services import location_online_pool, stock_receive
from orders.models import Order
from orders.selectors.positions import order_queue_position, queued_positions, waitlisted_positions
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel

pytestmark = [pytest.mark.django_db, pytest.mark.services]


def admit(account: str, **route):
    return order_admit(
        launch="iphone-3g",
        customer=account,
        sku="IP3G-8GB-BLACK",
        fulfilment=route.get("fulfilment", "delivery"),
        store=route.get("store"),
        channel=Order.Channel.ONLINE,
    )


def test_every_reading_of_a_position_agrees(launch_with_stock):
    launch, sku, _, _ = launch_with_stock(online_units=2, store_units=1, customers=16)
    told = {}
    for n in range(1, 9):  # eight online orders, two collect
        admission = admit(f"D{n:07d}")
        told[admission.order.sequence] = admission.position
    for n in (9, 10):
        admission = admit(f"D{n:07d}", fulfilment="collect", store="S001")
        told[admission.order.sequence] = admission.position
    launch_allocate(launch_id=launch.pk)  # 2 online + 1 store served, the rest waitlisted
    stock_receive(location=location_online_pool(), sku=sku, quantity=1, reference="more")
    launch_allocate(launch_id=launch.pk)  # the head of the online waitlist is served
    cancelled = Order.objects.filter(status=Order.Status.WAITLISTED, fulfilment="delivery").order_by(
        "sequence"
    )[1]
    order_cancel(order=cancelled, reason="test: a place in the middle leaves")
    for n in range(11, 15):  # queued behind the waitlist, not yet seen by the allocator
        admission = admit(f"D{n:07d}", **({"fulfilment": "collect", "store": "S001"} if n == 14 else {}))
        told[admission.order.sequence] = admission.position

    waiting = list(
        Order.objects.filter(launch=launch, status__in=["queued", "waitlisted"]).order_by("sequence")
    )
    single = {o.sequence: order_queue_position(order=o).position for o in waiting}
    queued = [o.sequence for o in waiting if o.status == "queued"]
    listed = [o.sequence for o in waiting if o.status == "waitlisted"]
    assert queued and listed
    assert queued_positions(launch_id=launch.pk, sequences=queued) == {s: single[s] for s in queued}
    assert waitlisted_positions(launch_id=launch.pk, sequences=listed) == {s: single[s] for s in listed}
    # What admission told each queued order is still true: nobody was allocated since.
    assert {s: told[s] for s in queued} == {s: single[s] for s in queued}
    # And the positions are 1..N per pool, in sequence order.
    for pool in {o.pool_id for o in waiting}:
        assert [single[o.sequence] for o in waiting if o.pool_id == pool] == list(
            range(1, 1 + sum(o.pool_id == pool for o in waiting))
        )
