"""The launch overview's live figures: what they count, their change, the polled fragment."""

import datetime
import json
import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from customers.tests.factories import CustomerFactory
from inventory.models import StockMovement
from inventory.services import StockChange, location_online_pool, stock_apply, stock_receive
from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Order, PoolState
from orders.selectors import pulse as selectors
from stores.models import StaffMembership
from stores.tests.factories import UserFactory, head_office_login

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
NOW = datetime.datetime(2008, 7, 11, 8, 30, 20, tzinfo=UTC)


def admit(launch, sku, pool, *, at, status=Order.Status.QUEUED, n=1):
    Order.objects.bulk_create(
        [
            Order(
                reference=f"P{Order.objects.count() + i:07d}",
                launch=launch,
                customer=CustomerFactory(),
                sku=sku,
                channel=Order.Channel.ONLINE,
                fulfilment=Order.Fulfilment.DELIVERY,
                pool=pool,
                status=status,
                created_at=at,
            )
            for i in range(n)
        ]
    )


@pytest.fixture
def launch_morning(time_machine):
    time_machine.move_to(NOW, tick=False)
    cache.clear()
    black, white = SKUFactory(code="IP3G-8GB-BLACK"), SKUFactory(code="IP3G-16GB-WHITE")
    launch = LaunchFactory(slug="iphone-3g", opens_at=NOW - datetime.timedelta(hours=2), skus=[black, white])
    online = location_online_pool()
    stock_receive(location=online, sku=black, quantity=10, reference="seed")
    stock_apply(
        changes=[
            StockChange(location=online, sku=black, kind=StockMovement.Kind.ALLOCATION, reserved_delta=3)
        ]
    )
    return launch, black, white, online


def test_figures_count_units_left_sold_out_skus_the_waitlist_and_the_last_minute(launch_morning):
    launch, black, white, online = launch_morning
    admit(launch, black, online, at=NOW - datetime.timedelta(seconds=30), n=2)  # in the last minute
    admit(launch, black, online, at=NOW - datetime.timedelta(seconds=90))  # before it
    admit(launch, white, online, at=NOW - datetime.timedelta(seconds=5), status=Order.Status.WAITLISTED)
    PoolState.objects.create(launch=launch, sku=white, pool=online, waitlisted_total=4, waiting=4)

    pulse = selectors.launch_pulse(launch=launch)

    assert pulse.units_left_online.value == 10 - 3  # on hand less reserved; white has none
    assert pulse.sold_out_skus.value == 1 and pulse.sold_out_codes == ["IP3G-16GB-WHITE"]
    assert pulse.waitlist.value == 4 + 3  # the allocator's waitlist plus the queued it has not read
    assert pulse.orders_per_minute.value == 3
    assert pulse.units_left_online.change is None  # nothing to compare with yet


def test_each_figure_shows_its_change_since_about_five_minutes_ago(launch_morning, time_machine):
    launch, black, _, online = launch_morning
    selectors.launch_pulse(launch=launch)  # the first snapshot
    for minutes in range(1, 7):
        time_machine.move_to(NOW + datetime.timedelta(minutes=minutes), tick=False)
        admit(launch, black, online, at=NOW + datetime.timedelta(minutes=minutes), n=2)
        stock_apply(
            changes=[
                StockChange(location=online, sku=black, kind=StockMovement.Kind.ALLOCATION, reserved_delta=1)
            ]
        )
        pulse = selectors.launch_pulse(launch=launch)
    # Six minutes on: compared with the snapshot taken one minute in (the newest at least 5 old).
    assert pulse.since == NOW + datetime.timedelta(minutes=1)
    assert pulse.waitlist.value == 12 and pulse.waitlist.change == 12 - 2
    assert pulse.units_left_online.value == 1 and pulse.units_left_online.change == 1 - 6
    assert pulse.orders_per_minute.value == 2 and pulse.orders_per_minute.change == 0
    assert pulse.sold_out_skus.change == 0


def test_last_hour_has_a_point_per_minute_and_counts_a_finished_minute_once(
    launch_morning, django_assert_max_num_queries
):
    launch, black, _, online = launch_morning
    admit(launch, black, online, at=NOW - datetime.timedelta(minutes=59, seconds=10), n=2)
    admit(launch, black, online, at=NOW - datetime.timedelta(minutes=3), n=5)
    admit(launch, black, online, at=NOW - datetime.timedelta(seconds=10), n=1)
    admit(launch, black, online, at=NOW - datetime.timedelta(minutes=61), n=7)  # outside the hour

    series = selectors.launch_last_hour(launch=launch, now=NOW)
    assert len(series["labels"]) == len(series["counts"]) == 60
    assert series["labels"][-1] == "09:30"  # London; the minute in progress is last
    assert series["counts"][0] == 2 and series["counts"][-4] == 5 and series["counts"][-1] == 1
    assert sum(series["counts"]) == 8

    with django_assert_max_num_queries(1):  # finished minutes from the cache; only this minute counted
        again = selectors.launch_last_hour(launch=launch, now=NOW)
    assert again == series


def test_the_polled_fragment_is_the_live_panel_alone_and_small(client, launch_morning):
    launch, black, _, online = launch_morning
    admit(launch, black, online, at=NOW - datetime.timedelta(seconds=30), n=4)
    head = UserFactory(username="head")
    StaffMembership.objects.create(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, head)
    url = reverse("launch-overview", kwargs={"slug": launch.slug})

    page = client.get(url).text
    assert 'id="launch-pulse"' in page and 'hx-trigger="every 5s, poll-now"' in page
    assert "data-poll-visible-only" in page

    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="launch-pulse"')
    assert "<html" not in body and "Stock per store" not in body
    assert len(fragment.content) <= 10 * 1024
    assert re.search(r'data-field="orders_per_minute">4\b', body)
    raw = re.search(r'<script id="launch-last-hour" type="application/json">(.*?)</script>', body, re.S)
    assert json.loads(raw.group(1))["counts"][-2:] == [4, 0]  # 08:29:50 is the minute before
