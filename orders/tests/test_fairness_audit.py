"""The fairness audit reads 0 after real allocator runs, and exactly 1 for each kind of
unfairness written straight into the database behind the allocator's back."""

import datetime

import pytest
from django.utils import timezone

from inventory.services import location_for_store, location_online_pool, stock_receive, stock_reserve_bulk
from orders.models import Order
from orders.selectors.fairness import launch_fairness
from orders.services.admission import order_admit
from orders.services.allocation import launch_allocate
from orders.services.cancellation import order_cancel

pytestmark = pytest.mark.django_db


def admit(account: str, *, fulfilment: str = "delivery") -> Order:
    return order_admit(
        launch="iphone-3g",
        customer=account,
        sku="IP3G-8GB-BLACK",
        fulfilment=fulfilment,
        store="S001" if fulfilment == "collect" else None,
        channel=Order.Channel.ONLINE,
    ).order


def violations(launch) -> dict[str, int]:
    launch.refresh_from_db()
    return {c.name: c.violations for c in launch_fairness(launch=launch).checks}


CLEAN = {"out_of_turn": 0, "during_draw": 0, "units": 0, "positions": 0}


def test_a_launch_served_by_the_allocator_audits_clean(launch_with_stock):
    """Waitlists, cancellations of waiting and of served orders, a late delivery and a
    second run: every check looks at something and finds nothing."""
    launch, sku, store, people = launch_with_stock(online_units=3, store_units=2, customers=14)
    online = [admit(p.account_number) for p in people[:10]]
    collect = [admit(p.account_number, fulfilment="collect") for p in people[10:]]
    launch_allocate(launch_id=launch.pk)
    order_cancel(order=online[5])  # waitlisted
    order_cancel(order=online[0])  # allocated: its unit goes to the head of the waitlist
    order_cancel(order=collect[3])  # waitlisted in the store
    stock_receive(location=location_online_pool(), sku=sku, quantity=2, reference="late-delivery")
    launch_allocate(launch_id=launch.pk)

    audit = launch_fairness(launch=launch)
    assert {c.name: c.violations for c in audit.checks} == CLEAN
    looked_at = {c.name: c.looked_at for c in audit.checks}
    # served: online 3, the cancelled one's unit again, 2 late units; the store 2
    assert looked_at["out_of_turn"] == 3 + 1 + 2 + 2
    assert looked_at["positions"] == 7 + 2  # waitlisted: online 7, store 2
    assert looked_at["units"] == 2  # the online pool's and the store's stock rows
    assert audit.violations == 0


def test_an_order_served_out_of_turn_is_exactly_one_violation(launch_with_stock):
    """The third order gets a unit, properly reserved in stock and ledger, while the first
    two still queue: only first come first served is broken, and once."""
    launch, sku, _, people = launch_with_stock(online_units=10, customers=5)
    orders = [admit(p.account_number) for p in people]
    Order.objects.filter(pk=orders[2].pk).update(status=Order.Status.ALLOCATED, allocated_at=timezone.now())
    stock_reserve_bulk(
        reservations={(location_online_pool().pk, sku.pk): 1}, reason="out of turn", reference="test"
    )
    assert violations(launch) == CLEAN | {"out_of_turn": 1}


def test_a_unit_sold_twice_is_exactly_one_violation(launch_with_stock):
    """A store sold its two units in turn; an extra order written as allocated there holds
    a unit nobody reserved: one stock row disagrees, and nobody was skipped."""
    launch, sku, store, people = launch_with_stock(store_units=2, customers=3)
    admit(people[0].account_number, fulfilment="collect")
    admit(people[1].account_number, fulfilment="collect")
    launch_allocate(launch_id=launch.pk)
    assert violations(launch) == CLEAN
    Order.objects.create(
        reference="LDTWICE0001",
        launch=launch,
        customer=people[2],
        sku=sku,
        channel=Order.Channel.STORE,
        fulfilment=Order.Fulfilment.COLLECT,
        store=store,
        pool=location_for_store(store=store),
        status=Order.Status.ALLOCATED,
        allocated_at=timezone.now(),
    )
    assert violations(launch) == CLEAN | {"units": 1}


def test_a_wrong_place_told_is_exactly_one_violation(launch_with_stock):
    """The allocator records the places it tells (1, 2, 3 behind the one unit); one of
    them altered afterwards is the one the replayed history disagrees with."""
    launch, *_ = launch_with_stock(online_units=1, customers=4)
    orders = [admit(f"D{n:07d}") for n in range(1, 5)]
    launch_allocate(launch_id=launch.pk)
    told = list(
        Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("pk").values_list("told_position")
    )
    assert told == [(None,), (1,), (2,), (3,)]
    assert violations(launch) == CLEAN
    Order.objects.filter(pk=orders[2].pk).update(told_position=1)
    assert violations(launch) == CLEAN | {"positions": 1}


def test_an_order_of_the_opening_draw_served_before_it_closed_is_exactly_one_violation(launch_with_stock):
    """A fair start of 30 s: a drawn order allocated 5 s after opening (its unit reserved
    properly, nobody ahead of it) breaks only the draw."""
    launch, sku, _, people = launch_with_stock(online_units=2, customers=1)
    launch.fair_start_seconds = 30
    launch.save(update_fields=["fair_start_seconds"])
    order = admit(people[0].account_number)
    Order.objects.filter(pk=order.pk).update(
        fair_draw=12345,
        status=Order.Status.ALLOCATED,
        allocated_at=launch.opens_at + datetime.timedelta(seconds=5),
    )
    stock_reserve_bulk(
        reservations={(location_online_pool().pk, sku.pk): 1}, reason="early", reference="test"
    )
    assert violations(launch) == CLEAN | {"during_draw": 1}
