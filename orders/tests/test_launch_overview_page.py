"""Head office's launch overview: its charts draw what the database holds, counted in SQL."""

import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import UpgradeRegistration
from customers.tests.factories import CustomerFactory
from inventory.models import StockMovement
from inventory.services import (
    StockChange,
    location_for_store,
    location_online_pool,
    stock_apply,
    stock_receive,
)
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order
from orders.selectors import launches as selectors
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, StoreFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
OPENS = datetime.datetime(2008, 7, 11, 7, 2, tzinfo=UTC)  # 08:02 in London
NOW = OPENS + datetime.timedelta(minutes=30, seconds=20)


@pytest.fixture
def launch_day(time_machine):
    """Half an hour into the window: orders at known minutes, registrations and stock."""
    time_machine.move_to(NOW, tick=False)
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(
        slug="iphone-3g", opens_at=OPENS, closes_at=OPENS + datetime.timedelta(days=2), skus=[black, white]
    )
    store = StoreFactory(code="S001")
    online, at_store = location_online_pool(), location_for_store(store=store)
    stock_receive(location=online, sku=black, quantity=10, reference="seed")
    stock_receive(location=at_store, sku=black, quantity=4, reference="seed")
    stock_receive(location=at_store, sku=white, quantity=2, reference="seed")
    stock_apply(
        changes=[
            StockChange(location=online, sku=black, kind=StockMovement.Kind.ALLOCATION, reserved_delta=3)
        ]
    )
    customers = [CustomerFactory() for _ in range(12)]
    UpgradeRegistration.objects.bulk_create(
        [UpgradeRegistration(customer=c, launch=launch, preferred_sku=black) for c in customers[:9]]
        + [UpgradeRegistration(customer=c, launch=launch, preferred_sku=white) for c in customers[9:]]
    )
    # (minutes after opening, sku, status); negative = before the window (not in the time series).
    plan = [
        (-5, black, "queued"),
        (0, black, "allocated"),
        (2, black, "allocated"),
        (2, black, "allocated"),
        (2, white, "waitlisted"),
        (7, black, "queued"),
        (7, black, "fulfilled"),
        (7, white, "cancelled"),
        (29, white, "queued"),
    ]
    Order.objects.bulk_create(
        [
            Order(
                reference=f"T{n:07d}",
                launch=launch,
                customer=customers[n],
                sku=sku,
                channel=Order.Channel.ONLINE,
                fulfilment=Order.Fulfilment.DELIVERY,
                pool=online,
                status=status,
                created_at=OPENS + datetime.timedelta(minutes=minutes, seconds=30),
            )
            for n, (minutes, sku, status) in enumerate(plan)
        ]
    )
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    return launch, head, store


def label(minutes_after_opening: int) -> str:
    return timezone.localtime(OPENS + datetime.timedelta(minutes=minutes_after_opening)).strftime("%H:%M")


def embedded(html: str) -> dict:
    raw = re.search(r'<script id="launch-charts-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(raw.group(1))


def test_chart_data_matches_the_database(client, launch_day):
    launch, head, _ = launch_day
    head_office_login(client, head)
    data = client.get(reverse("launch-charts", kwargs={"slug": launch.slug})).json()

    over_time = data["orders_over_time"]
    assert over_time["unit"] == "minute"
    assert over_time["labels"][0] == label(0) == "08:02"
    assert len(over_time["labels"]) == 31  # 08:02 .. 08:32, zeros included
    per_minute = dict(zip(over_time["labels"], over_time["counts"], strict=True))
    assert {k: v for k, v in per_minute.items() if v} == {label(0): 1, label(2): 3, label(7): 3, label(29): 1}
    in_window = Order.objects.filter(launch=launch, created_at__gte=launch.opens_at).count()
    assert over_time["total"] == sum(over_time["counts"]) == in_window == 8
    assert over_time["peak"] == {"label": label(2), "count": 3}

    by_status = dict(zip(data["by_status"]["labels"], data["by_status"]["counts"], strict=True))
    for status in Order.Status.values:
        assert by_status[status] == Order.objects.filter(launch=launch, status=status).count()
    assert sum(by_status.values()) == 9

    supply = data["stock_vs_demand"]
    assert supply["labels"] == ["IP3G-16GB-WHITE", "IP3G-8GB-BLACK"]
    assert supply["registered"] == [3, 9]
    assert supply["ordered"] == [2, 6]  # the cancelled white order is not demand
    assert supply["served"] == [0, 4]  # allocated or fulfilled
    assert supply["available"] == [2, 10 - 3 + 4]  # online on hand less reserved, plus the store's


def test_overview_page_embeds_the_same_chart_data_and_the_vendored_chart_js(client, launch_day):
    launch, head, _ = launch_day
    head_office_login(client, head)
    page = client.get(reverse("launch-overview", kwargs={"slug": launch.slug})).text
    endpoint = client.get(reverse("launch-charts", kwargs={"slug": launch.slug})).json()
    # The page draws the last hour from its live panel, not the whole window's series.
    assert embedded(page) == {k: v for k, v in endpoint.items() if k != "orders_over_time"}
    assert "/static/vendor/chart.umd.min.js" in page
    for canvas in ["rate-chart", "status-chart", "supply-chart"]:
        assert f'<canvas id="{canvas}"' in page


def test_orders_per_minute_is_one_query_whatever_the_number_of_orders(launch_day, django_assert_num_queries):
    launch, _, _ = launch_day
    with django_assert_num_queries(1):
        series = selectors.launch_orders_over_time(launch=launch)
    assert series["total"] == 8


def test_long_windows_are_bucketed_by_hour_and_keep_every_order(launch_day, time_machine):
    launch, _, _ = launch_day
    time_machine.move_to(OPENS + datetime.timedelta(days=1, hours=12), tick=False)
    series = selectors.launch_orders_over_time(launch=launch)
    assert series["unit"] == "hour"
    assert len(series["labels"]) == 37
    assert series["counts"][0] == 8 and series["total"] == 8
    assert len(series["labels"]) <= selectors.CHART_MAX_POINTS


def test_before_the_window_opens_there_is_no_series(launch_day):
    launch, _, _ = launch_day
    series = selectors.launch_orders_over_time(launch=launch, now=OPENS - datetime.timedelta(minutes=1))
    assert series == {"unit": "minute", "labels": [], "counts": [], "total": 0, "peak": None}


def test_only_head_office_gets_the_chart_data(client, launch_day):
    launch, _, store = launch_day
    charts = reverse("launch-charts", kwargs={"slug": launch.slug})
    assert client.get(charts).status_code == 302
    client.force_login(StaffMembershipFactory(store=store).user)
    assert client.get(charts).status_code == 403
    head_office_login(client, launch_day[1])
    assert client.get(reverse("launch-charts", kwargs={"slug": "no-such-launch"})).status_code == 404


def _order_at(launch, moment: datetime.datetime, reference: str) -> None:
    Order.objects.create(
        reference=reference,
        launch=launch,
        customer=CustomerFactory(),
        sku=launch.skus.first(),
        channel=Order.Channel.ONLINE,
        fulfilment=Order.Fulfilment.DELIVERY,
        pool=location_online_pool(),
        created_at=moment,
    )


def test_a_settled_minute_is_counted_once_and_recent_minutes_on_every_call(launch_day, time_machine):
    launch, _, _ = launch_day
    assert selectors.launch_orders_over_time(launch=launch)["total"] == 8
    # A row backdated into a minute counted before (admission never writes one) is not
    # seen: that minute's count was kept. An order whose created_at falls in the last
    # minute (taken before its transaction committed) still is.
    _order_at(launch, OPENS + datetime.timedelta(minutes=2, seconds=5), "T0000100")
    _order_at(launch, NOW - datetime.timedelta(seconds=40), "T0000101")
    series = selectors.launch_orders_over_time(launch=launch)
    assert series["total"] == 9
    assert dict(zip(series["labels"], series["counts"], strict=True))[label(2)] == 3

    time_machine.move_to(NOW + datetime.timedelta(minutes=5), tick=False)
    _order_at(launch, NOW + datetime.timedelta(minutes=3), "T0000102")
    series = selectors.launch_orders_over_time(launch=launch)
    per_minute = dict(zip(series["labels"], series["counts"], strict=True))
    assert series["total"] == 10
    assert per_minute[label(29)] == 2 and per_minute[label(33)] == 1  # 08:31's own and the late one


def test_an_earlier_moment_than_the_kept_counts_is_counted_afresh(launch_day):
    launch, _, _ = launch_day
    selectors.launch_orders_over_time(launch=launch)  # keeps the counts up to 08:31
    earlier = selectors.launch_orders_over_time(launch=launch, now=OPENS + datetime.timedelta(minutes=10))
    assert earlier["total"] == 7  # minutes 0, 2 and 7; nothing kept from after 08:12 leaks in
    assert earlier["labels"][-1] == label(9)
