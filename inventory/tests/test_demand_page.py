"""Demand against supply: filtered by pool and SKU, sorted by any column, its terms agree."""

import re

import pytest
from django.urls import reverse

from inventory.services import location_online_pool, stock_receive
from inventory.tests.world import add_orders, make_launch, make_stores, waitlist_everything
from stores.models import StaffMembership
from stores.tests.factories import UserFactory, head_office_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def office_demand(client):
    launch, (a, b) = make_launch(skus=2)
    s0, s1 = make_stores(2)
    add_orders(launch=launch, sku=a, pool=s0, count=5)
    add_orders(launch=launch, sku=b, pool=s1, count=2, start=10)
    add_orders(launch=launch, sku=a, pool=location_online_pool(), count=3, start=20)
    waitlist_everything(launch)
    stock_receive(location=s1, sku=a, quantity=4, reference="seed")  # not from a delivery
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    return client, reverse("inventory:demand", kwargs={"slug": launch.slug}), (a, b), (s0, s1)


def table_rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-pool="([^"]+)" data-sku="([^"]+)">', html)


def test_filter_by_pool_and_sku_and_sort_by_any_column(office_demand):
    client, url, (a, b), (s0, s1) = office_demand
    everything = table_rows(client.get(url).text)
    assert len(everything) == 3 * 2 and everything[0][0] == "ONLINE"
    only_a = table_rows(client.get(url, {"sku": a.code}).text)
    assert {sku for _, sku in only_a} == {a.code} and len(only_a) == 3
    one = table_rows(client.get(url, {"pool": s0.code, "sku": a.code}).text)
    assert one == [(s0.code, a.code)]
    by_waiting = client.get(url, {"sort": "-waiting"}).text
    assert table_rows(by_waiting)[:3] == [(s0.code, a.code), ("ONLINE", a.code), (s1.code, b.code)]
    assert 'aria-sort="descending"' in by_waiting
    ascending = table_rows(client.get(url, {"sort": "waiting"}).text)
    assert ascending[-1] == (s0.code, a.code)
    csv = client.get(url, {"sku": b.code, "format": "csv"}).content.decode().splitlines()
    assert len(csv) == 1 + 3


def test_shortfall_agrees_with_the_columns_beside_it_before_any_delivery(office_demand):
    client, url, (a, _), (_, s1) = office_demand
    html = client.get(url, {"pool": s1.code, "sku": a.code}).text
    row = re.search(r'<tr data-pool="[^"]+" data-sku="[^"]+">(.*?)</tr>', html, re.S).group(1)
    cell = {
        f: int(re.search(rf'data-field="{f}">(\d+)<', row).group(1))
        for f in ("waiting", "available", "delivered", "shortfall")
    }
    assert cell == {"waiting": 0, "available": 4, "delivered": 0, "shortfall": 0}
    assert "Free now" in html and "From deliveries" in html  # both terms shown and defined
    assert "Waiting + No order yet − Free now" in html


def test_a_pool_or_column_the_report_lacks_is_a_clear_400(office_demand):
    client, url, _, _ = office_demand
    for query in ({"pool": "NOPE"}, {"sort": "password"}, {"sku": "<script>"}):
        answer = client.get(url, query)
        assert answer.status_code == 400 and b"Choose a pool and SKU" in answer.content
