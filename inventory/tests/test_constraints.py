"""Stock, locations and deliveries refuse impossible rows in the database itself.

These are the last guard behind the services: however a writer gets it wrong, a level
never goes negative and never reserves more than is on hand.
"""

import datetime

import pytest
from django.db import IntegrityError, transaction

from inventory.models import (
    AllocationPlan,
    AllocationPlanLine,
    Delivery,
    DeliveryLine,
    Location,
    Stock,
)
from inventory.tests.factories import SKUFactory, central_warehouse, online_pool, store_location
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def rejects(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


@pytest.fixture
def stock():
    return Stock.objects.create(location=online_pool(), sku=SKUFactory(), on_hand=5, reserved=2, in_transit=1)


@pytest.mark.parametrize(
    "field, value",
    [("on_hand", -1), ("reserved", -1), ("in_transit", -1), ("reserved", 6)],
    ids=["on_hand_negative", "reserved_negative", "in_transit_negative", "reserved_above_on_hand"],
)
def test_stock_level_rejects(stock, field, value):
    rejects(lambda: Stock.objects.filter(pk=stock.pk).update(**{field: value}))
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved, stock.in_transit) == (5, 2, 1)


def test_stock_may_reserve_everything_on_hand(stock):
    Stock.objects.filter(pk=stock.pk).update(reserved=5)


def test_stock_taking_on_hand_below_reserved_is_rejected(stock):
    rejects(lambda: Stock.objects.filter(pk=stock.pk).update(on_hand=1))


def test_one_stock_row_per_location_and_sku(stock):
    rejects(lambda: Stock.objects.create(location=stock.location, sku=stock.sku))


def test_store_location_must_name_its_store():
    rejects(lambda: Location.objects.create(code="NOSTORE", kind=Location.Kind.STORE, store=None))
    store_location(StoreFactory())


@pytest.mark.parametrize("kind", [Location.Kind.ONLINE, Location.Kind.CENTRAL])
def test_pool_locations_must_not_name_a_store(kind):
    rejects(lambda: Location.objects.create(code="ODD", kind=kind, store=StoreFactory()))


@pytest.mark.parametrize(
    "make, kind", [(online_pool, Location.Kind.ONLINE), (central_warehouse, Location.Kind.CENTRAL)]
)
def test_one_online_pool_and_one_central_warehouse(make, kind):
    make()
    rejects(lambda: Location.objects.create(code="SECOND", kind=kind))


def test_delivery_references_are_unique():
    Delivery.objects.create(reference="DEL-2008-28", expected_on=datetime.date(2008, 7, 11))
    rejects(lambda: Delivery.objects.create(reference="DEL-2008-28", expected_on=datetime.date(2008, 7, 18)))


def test_one_delivery_line_per_sku():
    delivery = Delivery.objects.create(reference="DEL-1", expected_on=datetime.date(2008, 7, 11))
    sku = SKUFactory()
    DeliveryLine.objects.create(delivery=delivery, sku=sku, quantity=10)
    rejects(lambda: DeliveryLine.objects.create(delivery=delivery, sku=sku, quantity=5))


def test_one_plan_line_per_sku_and_location():
    delivery = Delivery.objects.create(reference="DEL-2", expected_on=datetime.date(2008, 7, 11))
    plan = AllocationPlan.objects.create(delivery=delivery)
    sku, location = SKUFactory(), online_pool()
    AllocationPlanLine.objects.create(plan=plan, sku=sku, location=location, quantity=3)
    rejects(lambda: AllocationPlanLine.objects.create(plan=plan, sku=sku, location=location, quantity=4))
