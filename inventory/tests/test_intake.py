"""Intake end to end in process: receive, plan, distribute, allocate; store receiving;
collect deadlines; reconciliation. Every step run twice changes nothing the second time."""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from customers.models import Message
from customers.tests.factories import RegistrationFactory
from inventory.manifests import manifest_parse
from inventory.models import AllocationPlan, Delivery, Stock, StockMovement
from inventory.services import (
    DeliveryError,
    PlanInvalid,
    delivery_announce,
    location_central,
    location_online_pool,
    plan_approve,
    plan_line_set,
    stock_reconcile,
)
from inventory.tests.world import add_orders, make_launch, make_stores, waitlist_everything
from orders.models import ClaimWindow, Order, Ticket
from orders.services.collection import collect_deadlines_expire, order_collect
from orders.services.intake import delivery_intake, store_delivery_confirm
from orders.services.walkin import SoldOut, ticket_issue, ticket_serve_next
from stores.tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


def level(location, sku) -> tuple[int, int, int]:
    s = Stock.objects.filter(location=location, sku=sku).first()
    return (s.on_hand, s.reserved, s.in_transit) if s else (0, 0, 0)


def announce(reference: str, lines: dict, *, launch="iphone-3g") -> Delivery:
    body = "reference,expected_on,sku,quantity,launch\n" + "".join(
        f"{reference},{timezone.localdate()},{sku.code},{n},{launch}\n" for sku, n in lines.items()
    )
    return delivery_announce(manifest=manifest_parse(content=body.encode()), source="test")[0]


@pytest.fixture
def world():
    launch, (sku,) = make_launch()
    s0, s1, s2 = make_stores(3)
    online = location_online_pool()
    add_orders(launch=launch, sku=sku, pool=online, count=30)
    add_orders(launch=launch, sku=sku, pool=s0, count=10)
    add_orders(launch=launch, sku=sku, pool=s1, count=5)
    waitlist_everything(launch)
    for i in range(6):
        RegistrationFactory(
            launch=launch, preferred_sku=sku, preferred_store=s2.store, customer__account_number=f"R{i}"
        )
    return launch, sku, online, (s0, s1, s2)


def test_intake_waits_for_approval_then_distributes_and_serves_the_online_waitlist(world, django_user_model):
    launch, sku, online, (s0, s1, s2) = world
    delivery = announce("DLV-1", {sku: 36})
    result = delivery_intake(delivery_id=delivery.pk)
    assert result.received and result.waiting_for_approval and result.plan_status == "draft"
    assert level(location_central(), sku) == (36, 0, 0)
    plan = AllocationPlan.objects.get(delivery=delivery)
    split = {line.location.code: line.quantity for line in plan.lines.select_related("location")}
    # 45 orders wait for 36 units: 30 : 10 : 5, largest remainder; the registrations at S002
    # count only once every waiting order is covered.
    assert split == {"ONLINE": 24, "S000": 8, "S001": 4, "S002": 0}
    assert plan.lines.get(location=s0).demand_waitlisted == 10
    assert plan.lines.get(location=s2).demand_registered == 6

    # Head office moves a unit, and cannot approve a plan that gives more than delivered.
    head = django_user_model.objects.create_user("ho")
    plan_line_set(line_id=plan.lines.get(location=s2).pk, quantity=2, user=head)
    with pytest.raises(PlanInvalid):
        plan_approve(plan_id=plan.pk, user=head)
    plan_line_set(line_id=plan.lines.get(location=online).pk, quantity=22, user=head)
    plan_approve(plan_id=plan.pk, user=head)
    assert plan.lines.get(location=s2).history.first().history_user == head

    result = delivery_intake(delivery_id=delivery.pk)
    assert result.distributed and result.allocated == 22
    assert level(location_central(), sku) == (0, 0, 0)
    assert level(online, sku) == (22, 22, 0)
    assert level(s0, sku) == (0, 0, 8) and level(s2, sku) == (0, 0, 2)
    assert (
        sorted(
            Order.objects.filter(pool=online, status=Order.Status.ALLOCATED).values_list(
                "sequence", flat=True
            )
        )
        == sorted(Order.objects.filter(pool=online).values_list("sequence", flat=True))[:22]
    )

    movements = StockMovement.objects.count()
    again = delivery_intake(delivery_id=delivery.pk)
    assert not again.received and not again.distributed and again.allocated == 0
    assert StockMovement.objects.count() == movements
    assert stock_reconcile() == []


def test_auto_apply_launch_takes_a_delivery_all_the_way_in_one_run(world):
    launch, sku, online, (s0, s1, s2) = world
    launch.auto_apply_plans = True
    launch.save()
    delivery = announce("DLV-A", {sku: 60})
    result = delivery_intake(delivery_id=delivery.pk)
    assert result.distributed and result.plan_status == "applied"
    # Enough for every waiting order (45); the other 15 follow the registrations (all at S002).
    assert level(online, sku) == (30, 30, 0)
    assert level(s0, sku) == (0, 0, 10) and level(s2, sku) == (0, 0, 15)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.DISTRIBUTED
    assert stock_reconcile() == []


def test_store_receiving_serves_collect_orders_in_sequence_then_walk_ins(world, django_user_model):
    launch, sku, online, (s0, s1, s2) = world
    launch.auto_apply_plans = True
    launch.save()
    delivery = announce("DLV-S", {sku: 60})
    delivery_intake(delivery_id=delivery.pk)
    staff = django_user_model.objects.create_user("staff")
    with pytest.raises(DeliveryError, match="Say why"):
        store_delivery_confirm(delivery_id=delivery.pk, location=s0, received={sku.pk: 9}, user=staff)
    assert level(s0, sku) == (0, 0, 10)

    # One of ten arrived damaged: nine on hand, the tenth written off with the reason.
    ticket = ticket_issue(launch=launch, store=s0.store)
    with pytest.raises(SoldOut):
        ticket_serve_next(launch=launch, store=s0.store, sku=sku, user=staff)
    served = store_delivery_confirm(
        delivery_id=delivery.pk, location=s0, received={sku.pk: 9}, reason="one box crushed", user=staff
    )
    assert served == 9
    assert level(s0, sku) == (9, 9, 0)
    adjustment = StockMovement.objects.get(location=s0, kind=StockMovement.Kind.ADJUSTMENT)
    assert (adjustment.in_transit_delta, adjustment.reason) == (-1, "Short by 1: one box crushed")
    collect = list(Order.objects.filter(pool=s0).order_by("sequence").values_list("status", flat=True))
    assert collect == ["allocated"] * 9 + ["waitlisted"]
    with pytest.raises(DeliveryError, match="already received"):
        store_delivery_confirm(delivery_id=delivery.pk, location=s0, received={sku.pk: 10}, user=staff)
    # Every unit is held for a collect order, so the walk-in cannot be sold one.
    with pytest.raises(SoldOut):
        ticket_serve_next(launch=launch, store=s0.store, sku=sku, user=staff)

    # S002 had registrations only: its customers registered there are told first, and one
    # unit each is held for them (stock notices); the other 15 - held go on sale to
    # walk-ins, in ticket order.
    store_delivery_confirm(delivery_id=delivery.pk, location=s2, received={sku.pk: 15}, user=staff)
    held = ClaimWindow.objects.get(pool=s2).units
    assert 0 < held < 15
    first, second = ticket_issue(launch=launch, store=s2.store), ticket_issue(launch=launch, store=s2.store)
    assert ticket_serve_next(launch=launch, store=s2.store, sku=sku, user=staff) == first
    assert ticket_serve_next(launch=launch, store=s2.store, sku=sku, user=staff) == second
    assert ticket_serve_next(launch=launch, store=s2.store, sku=sku, user=staff) is None
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.WAITING
    assert level(s2, sku) == (13, held, 0)
    assert stock_reconcile() == []


def test_uncollected_unit_goes_to_the_next_waiting_order_and_the_customer_is_told(world, time_machine):
    launch, sku, online, (s0, s1, s2) = world
    launch.auto_apply_plans = True
    launch.save()
    delivery = announce("DLV-C", {sku: 42})  # 9 for S000's ten collect orders
    delivery_intake(delivery_id=delivery.pk)
    units = level(s0, sku)[2]
    store_delivery_confirm(delivery_id=delivery.pk, location=s0, received={sku.pk: units})
    orders = list(Order.objects.filter(pool=s0).order_by("sequence"))
    assert [o.status for o in orders].count("allocated") == units < len(orders)
    order_collect(order=orders[0])
    assert level(s0, sku) == (units - 1, units - 1, 0)

    time_machine.move_to(timezone.now() + datetime.timedelta(days=launch.collect_hold_days, hours=1))
    expired = collect_deadlines_expire()
    assert expired == units - 1
    statuses = dict(Order.objects.filter(pool=s0).values_list("sequence", "status"))
    assert statuses[orders[0].sequence] == "fulfilled"
    assert [statuses[o.sequence] for o in orders[1:units]] == ["cancelled"] * (units - 1)
    # The released units serve the next waiting orders of the pool, in sequence order.
    assert [statuses[o.sequence] for o in orders[units:]] == ["allocated"] * (len(orders) - units)
    notes = Message.objects.filter(kind=Message.Kind.COLLECTION_EXPIRED)
    assert sorted(notes.values_list("dedupe_key", flat=True)) == sorted(
        f"collection_expired:{o.reference}" for o in orders[1:units]
    )
    assert collect_deadlines_expire() == 0
    assert stock_reconcile() == []


def test_reconcile_stock_reports_drift_with_the_rows_involved(world):
    launch, sku, online, stores = world
    delivery = announce("DLV-R", {sku: 5})
    delivery_intake(delivery_id=delivery.pk)
    out = io.StringIO()
    call_command("reconcile_stock", stdout=out)
    assert "0 drift" in out.getvalue()
    Stock.objects.filter(location=location_central(), sku=sku).update(on_hand=4)  # a silent edit
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 stock row"):
        call_command("reconcile_stock", stdout=out)
    text = out.getvalue()
    assert "DRIFT CENTRAL IP3G-0: level on_hand/reserved/in_transit=(4, 0, 0) ledger=(5, 0, 0)" in text
    assert "receipt on_hand+5" in text and "ref='DLV-R'" in text


def test_partner_share_and_minimum_per_store_shape_the_suggestion(world):
    launch, sku, online, (s0, s1, s2) = world
    partner = PartnerFactory(code="cpw")
    (p0,) = make_stores(1, prefix="P", partner=partner)
    from orders.services.intake import delivery_plan_suggest

    delivery = announce("DLV-P", {sku: 40})
    delivery_intake(delivery_id=delivery.pk)
    plan = delivery_plan_suggest(delivery=delivery, minimum_per_store=2, partner_share_percent=25)
    split = {line.location.code: line.quantity for line in plan.lines.select_related("location")}
    assert split["P000"] == 10  # a quarter, though nobody waits there
    assert all(split[code] >= 2 for code in ("S000", "S001", "S002"))
    assert sum(split.values()) == 40


def test_registrations_at_a_store_without_stock_yet_count_in_the_first_plan(world):
    """A new store has no stock location until its first unit; its registered customers
    must still count when the first delivery is split."""
    launch, sku, online, (s0, s1, s2) = world
    from orders.services.intake import delivery_plan_suggest
    from stores.tests.factories import StoreFactory

    newcomer = StoreFactory(code="NEW1")
    for i in range(6):
        RegistrationFactory(
            launch=launch, preferred_sku=sku, preferred_store=newcomer, customer__account_number=f"NEW{i}"
        )
    delivery = announce("DLV-NEW", {sku: 100})
    plan = delivery_plan_suggest(delivery=delivery)
    line = plan.lines.get(location__store=newcomer)
    assert line.demand_registered == 6
    assert line.quantity > 0
